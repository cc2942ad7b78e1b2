//! The reference cloud: `cargo run --example full_cluster [-- --out DIR]`.
//!
//! Builds the cloud of the design from one builder chain (in
//! `src/reference.rs`, so tests build the same cloud on test addresses), or
//! loads a model file with `--model cloud.toml` (TOML or JSON, as saved by
//! `model::save`; same validation), prints it, shows the plan against the bundle directory and writes every
//! artifact there atomically. Exits non-zero with every problem when the
//! model is invalid.

use clap::Parser;
use flatcar_microcloud::bundle::ChangeKind;
use flatcar_microcloud::{Bundle, BundleSecrets, RenderOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// systemd-networkd's configuration directory.
#[cfg(feature = "live")]
const NETWORKD_DIR: &str = "/etc/systemd/network";

/// Build, plan and write the reference cloud.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Load the cloud from this model file (`.toml` or `.json`) instead of
    /// building the reference cloud.
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Bundle directory.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Show the plan (with diffs) but write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print unified diffs of changed files.
    #[arg(long)]
    diff: bool,
    /// Refuse to render when any downloaded artifact has no published hash
    /// or digest (the error lists them).
    #[arg(long)]
    strict: bool,
    /// Deploy at this libvirt URI (e.g. qemu:///system): write the bundle,
    /// define the pool, volumes, networks and domains, place every VM's
    /// Ignition config at its fw_cfg path (a 0600 volume of the pool,
    /// uploaded through libvirt) and, when the URI is this machine's and the
    /// example was built with feature `live`, apply the KVM host's part
    /// (nftables, WireGuard). Prints every plan first; with --dry-run it
    /// stops there and changes nothing. Nothing is started.
    #[cfg(feature = "libvirt")]
    #[arg(long, value_name = "URI")]
    apply: Option<String>,
    /// With --apply: leave the KVM host's part (nftables, WireGuard) alone,
    /// e.g. when this machine is not the KVM host.
    #[cfg(feature = "libvirt")]
    #[arg(long)]
    no_host: bool,
    /// With --apply: place every VM's Ignition config at its domain's
    /// fw_cfg path, then start the domains in bring-up order and wait until
    /// each reports on its serial console that it is up (per-VM times; the
    /// first VM that fails or times out is named with its failed units).
    #[cfg(feature = "libvirt")]
    #[arg(long, requires = "apply")]
    start: bool,
    /// With --start: how long to wait for each VM's report, in seconds.
    #[cfg(feature = "libvirt")]
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    start_timeout: u64,
    /// With --start: at most this many VMs booting at once within a wave
    /// (a host whose cores or disks a boot storm would starve); default:
    /// the whole wave at once.
    #[cfg(feature = "libvirt")]
    #[arg(long, value_name = "N")]
    start_parallel: Option<std::num::NonZeroUsize>,
    /// With --apply: define and place everything but leave the rolling
    /// plan's steps on running VMs (live pushes, replacements, removals)
    /// pending: `running.json` keeps the model the running VMs have, and the
    /// next run lists them again.
    #[cfg(feature = "libvirt")]
    #[arg(long, requires = "apply")]
    no_rollout: bool,
    /// With --apply: the admin's private SSH key the rolling plan logs in
    /// to running VMs with (default: the generated
    /// `<out>/secrets/admin-ssh-ed25519`).
    #[cfg(feature = "libvirt")]
    #[arg(long, value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Authorize this SSH public key line for the admin user (repeatable).
    /// Without one, an ed25519 key pair is generated once into
    /// `<out>/secrets/admin-ssh-ed25519` (0600) and reused.
    #[arg(long, value_name = "KEY")]
    ssh_key: Vec<String>,
    /// Deprecated: `--apply URI` applies the host's part too. Alone, applies
    /// only the KVM host's part on this machine (in the current network
    /// namespace) after writing the bundle: print the plan, then replace the
    /// project's nftables tables in one atomic transaction (other tables
    /// stay) and bring up the WireGuard endpoint. Needs root.
    #[cfg(feature = "live")]
    #[arg(long)]
    apply_host: bool,
    /// With a model of several KVM hosts: which host this machine is, for
    /// the host part (default: the one host whose libvirt URI is local).
    /// The other hosts' parts are applied there (the same command with
    /// their name, or `host/playbook.yml` for all of them).
    #[cfg(feature = "live")]
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
    /// With several KVM hosts: where the host part installs this host's
    /// systemd-networkd files; `networkctl reload` runs only for the
    /// default directory.
    #[cfg(feature = "live")]
    #[arg(long, default_value = NETWORKD_DIR, value_name = "DIR")]
    networkd_dir: PathBuf,
    /// WireGuard backend for --apply-host: `kernel`, or `userspace`
    /// (wireguard-go) where the kernel module is missing.
    #[cfg(feature = "live")]
    #[arg(long, default_value = "kernel", value_name = "BACKEND")]
    wg_backend: String,
    /// Remove every libvirt object this cluster owns at this URI.
    #[cfg(feature = "libvirt")]
    #[arg(long, value_name = "URI")]
    destroy: Option<String>,
}

/// `--destroy URI`: prints the plan (one line per object: action, kind,
/// name, reason), then removes every object this cluster owns. Returns
/// whether it ran.
#[cfg(feature = "libvirt")]
fn destroy(
    args: &Args,
    cluster: &flatcar_microcloud::topology::Cluster,
) -> Result<bool, flatcar_microcloud::libvirt::Error> {
    use flatcar_microcloud::libvirt::apply;
    let Some(uri) = &args.destroy else {
        return Ok(false);
    };
    let conn = apply::connect(uri)?;
    let plan = apply::destroy_plan(&conn, cluster)?;
    println!(
        "libvirt destroy plan at {uri}: {} change(s)",
        plan.changes()
    );
    print!("{plan}");
    if plan.changes() == 0 {
        println!("nothing changes");
        return Ok(true);
    }
    if args.dry_run {
        println!("dry run: nothing destroyed");
        return Ok(true);
    }
    let report = apply_with_bar(&conn, &plan)?;
    println!(
        "destroy: {} change(s), {} mutating libvirt call(s); every object this cluster owns is gone; foreign objects untouched",
        report.done.len(),
        report.mutations
    );
    Ok(true)
}

/// What `--apply URI` will do at the libvirt side: the object plan and the
/// Ignition placement plan, on one connection.
#[cfg(feature = "libvirt")]
struct LibvirtDeploy {
    uri: String,
    conn: flatcar_microcloud::libvirt::apply::Connect,
    plan: flatcar_microcloud::libvirt::apply::Plan,
    ignition: Vec<flatcar_microcloud::libvirt::apply::Step>,
    configs: std::collections::BTreeMap<String, Vec<u8>>,
}

/// Plans `--apply URI` (read-only) and prints both plans.
#[cfg(feature = "libvirt")]
fn plan_deploy(
    uri: &str,
    cluster: &flatcar_microcloud::topology::Cluster,
    bundle: &Bundle,
    vm_changes: &std::collections::BTreeMap<String, flatcar_microcloud::topology::change::VmChange>,
) -> Result<LibvirtDeploy, flatcar_microcloud::libvirt::Error> {
    use flatcar_microcloud::libvirt::{apply, ignition};
    use flatcar_microcloud::topology::change::VmChange;
    let conn = apply::connect(uri)?;
    let mut plan = apply::plan(&conn, cluster)?;
    // A domain whose definition is unchanged may still change while it
    // runs (or be replaced): say so next to it.
    for s in &mut plan.steps {
        match (s.kind, &s.action, vm_changes.get(&s.name)) {
            (apply::Kind::Domain, apply::Action::Unchanged, Some(c @ VmChange::Live { .. })) => {
                s.note = Some(format!("definition unchanged; running VM: {c}"));
            }
            (apply::Kind::Domain, apply::Action::Unchanged, Some(c @ VmChange::Replace { .. })) => {
                s.note = Some(format!(
                    "definition unchanged; running VM: {c}, see the rolling plan"
                ));
            }
            _ => {}
        }
    }
    let configs = bundle.ignition_configs();
    let ign = ignition::plan(&conn, cluster, &configs)?;
    println!("libvirt apply plan at {uri}: {} change(s)", plan.changes());
    print!("{plan}");
    let running = apply::running_removals(&conn, &plan)?;
    if !running.is_empty() {
        println!(
            "refusing to apply: running domain(s) {} would be deleted or recreated: drain and stop them first (rolling plan)",
            running.join(", ")
        );
    }
    let ign_changes = ign
        .iter()
        .filter(|s| s.action != apply::Action::Unchanged)
        .count();
    println!(
        "Ignition placement at {uri}: {ign_changes} change(s) (0600 volumes <vm>.ign in pool {}, the fw_cfg paths)",
        cluster.host().pool.name
    );
    for s in &ign {
        println!("{s}");
    }
    Ok(LibvirtDeploy {
        uri: uri.to_string(),
        conn,
        plan,
        ignition: ign,
        configs,
    })
}

/// Applies a planned deploy: objects first (the pool must run before its
/// volumes can be uploaded), then the Ignition configs, then a re-plan.
#[cfg(feature = "libvirt")]
fn run_deploy(
    d: &LibvirtDeploy,
    cluster: &flatcar_microcloud::topology::Cluster,
) -> Result<(), flatcar_microcloud::libvirt::Error> {
    use flatcar_microcloud::libvirt::{apply, ignition};
    let running = apply::running_removals(&d.conn, &d.plan)?;
    if !running.is_empty() {
        return Err(flatcar_microcloud::libvirt::Error::Refused {
            object: format!("domain {}", running.join(", ")),
            reason: "running, and the plan deletes or recreates it: drain it and stop it first (see the rolling plan; virsh shutdown), then apply again (nothing was changed)".into(),
        });
    }
    if d.plan.changes() > 0 {
        let report = apply_with_bar(&d.conn, &d.plan)?;
        println!(
            "apply: {} change(s), {} mutating libvirt call(s); networks and domains are defined, not started; foreign objects untouched",
            report.done.len(),
            report.mutations
        );
    }
    let uploaded = ignition::apply(&d.conn, cluster, &d.configs, &d.ignition)?;
    println!(
        "Ignition: {uploaded} config(s) uploaded, {} unchanged",
        d.ignition.len() - uploaded
    );
    let again = apply::plan(&d.conn, cluster)?;
    let again_ign = ignition::plan(&d.conn, cluster, &d.configs)?
        .iter()
        .filter(|s| s.action != apply::Action::Unchanged)
        .count();
    println!(
        "re-plan at {}: {} change(s)",
        d.uri,
        again.changes() + again_ign
    );
    Ok(())
}

/// `--start` (after `--apply` placed every VM's Ignition config at its
/// fw_cfg path): starts the domains in bring-up waves, printing progress and
/// per-VM times, and names the first VM that fails or times out.
#[cfg(feature = "libvirt")]
fn start(args: &Args, cluster: &flatcar_microcloud::topology::Cluster) -> Result<(), String> {
    use flatcar_microcloud::libvirt::{apply, start};
    let Some(uri) = &args.apply else {
        return Ok(());
    };
    let conn = apply::connect(uri).map_err(|e| e.to_string())?;
    let t0 = std::time::Instant::now();
    let timeout = std::time::Duration::from_secs(args.start_timeout);
    let opts = start::Options {
        only: &[],
        timeout,
        parallel: args.start_parallel,
    };
    let started = start::start_with(&conn, cluster, &opts, &mut |e| match e {
        start::Event::NetworkStarted(n) => println!("network {n}: started"),
        start::Event::Wave(i, vms) => println!("start wave {}: {}", i + 1, vms.join(", ")),
        start::Event::Starting(vm) => println!("  {vm}: started, waiting for its report"),
        start::Event::AlreadyRunning(vm) => println!("  {vm}: already running"),
        start::Event::Waiting(vm, t) => println!("  {vm}: waiting ({} s)", t.as_secs()),
        start::Event::Up(vm, t) => println!("  {vm}: up in {:.1} s", t.as_secs_f64()),
        _ => {}
    })
    .map_err(|e| e.to_string())?;
    println!(
        "start: {} VM(s) up in {:.1} s",
        started.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Carries the rolling plan out on the running cloud: live pushes over SSH
/// (the admin key, `<out>.known_hosts`, one reused connection per VM),
/// VIP handovers, drains with `k3s kubectl` on a master, replacements and
/// removals through libvirt; prints each step with its time and stops at
/// the first failure, naming the VM and the step.
#[cfg(feature = "libvirt")]
fn run_rollout(
    args: &Args,
    d: &LibvirtDeploy,
    old: &flatcar_microcloud::topology::Cluster,
    cluster: &flatcar_microcloud::topology::Cluster,
    rollout: &flatcar_microcloud::topology::rollout::Rollout,
    secrets: &mut BundleSecrets,
    mut host_step: impl FnMut(&mut BundleSecrets) -> Result<(), String>,
) -> Result<(), String> {
    use flatcar_microcloud::deploy::{self, K3sOverSsh, OpenSsh, Target};
    use flatcar_microcloud::topology::Role;
    let composed =
        flatcar_microcloud::services::compose_after(cluster, secrets.previous_zones(), secrets)
            .map_err(|e| e.to_string())?;
    let key = args.identity.clone().unwrap_or_else(|| {
        args.out
            .join("secrets")
            .join(flatcar_microcloud::admin_key::SECRET_NAME)
    });
    let known_hosts = PathBuf::from(format!("{}.known_hosts", args.out.display()));
    let mux = std::env::temp_dir().join(format!("fmc-ssh-{}", std::process::id()));
    let mut ssh = OpenSsh::new(key, known_hosts)
        .reuse_connections(mux.clone())
        .map_err(|e| e.to_string())?;
    let master = cluster
        .with_role(Role::Master)
        .next()
        .and_then(|m| Target::of(cluster, m.name.as_str()));
    let mut k3s = master.map(|master| K3sOverSsh {
        remote: ssh.clone(),
        master,
        drain_timeout: std::time::Duration::from_secs(600),
    });
    let mut no_k3s = ();
    let nodes: &mut dyn deploy::Nodes = match &mut k3s {
        Some(k) => k,
        None => &mut no_k3s,
    };
    let mut host_secrets = BundleSecrets::from_bundle_dir(&args.out);
    let mut machines = flatcar_microcloud::machines::Libvirt::new(
        &d.conn,
        old,
        cluster,
        &d.configs,
        Box::new(move || host_step(&mut host_secrets).map_err(Into::into)),
    );
    machines.timeout = std::time::Duration::from_secs(args.start_timeout);
    println!("rollout: {} step(s)", rollout.steps.len());
    let r = deploy::execute(
        rollout,
        old,
        cluster,
        &composed,
        &mut ssh,
        &mut machines,
        nodes,
        &deploy::Options::default(),
        &mut |e| match e {
            deploy::Event::Started(i, s) => println!("  {:>3}. {s}", i + 1),
            deploy::Event::Done(_, _, t) => println!("       done in {:.1} s", t.as_secs_f64()),
            _ => {}
        },
    );
    ssh.close();
    if let Some(k) = &mut k3s {
        k.remote.close();
    }
    let _ = std::fs::remove_dir_all(&mux);
    let report = r.map_err(|e| {
        let mut text = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            text.push_str(&format!(": {s}"));
            src = s.source();
        }
        text
    })?;
    println!("rollout: {} step(s) done", report.steps.len());
    Ok(())
}

/// Whether a libvirt URI names this machine (`qemu:///system`,
/// `test:///default`): no host part between `//` and the path.
#[cfg(feature = "libvirt")]
fn is_local(uri: &str) -> bool {
    uri.split_once("://")
        .is_some_and(|(_, rest)| rest.starts_with('/'))
}

/// Applies `plan`, drawing a progress bar on stderr for multi-object plans
/// (hidden when stderr is not a terminal) from the library's progress callback.
#[cfg(feature = "libvirt")]
fn apply_with_bar(
    conn: &flatcar_microcloud::libvirt::apply::Connect,
    plan: &flatcar_microcloud::libvirt::apply::Plan,
) -> Result<flatcar_microcloud::libvirt::apply::Report, flatcar_microcloud::libvirt::Error> {
    let total = plan.changes();
    let bar = (total > 1).then(|| {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let r = flatcar_microcloud::libvirt::apply::apply_with(conn, plan, &mut |i, _, s| {
        if let Some(b) = &bar {
            b.set_position(i.saturating_sub(1) as u64);
            b.set_message(s.to_string());
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    r
}

#[cfg(feature = "live")]
/// The KVM host this machine is: `--host NAME`, else the only host (one
/// host), else the one host whose libvirt URI is local.
fn this_host<'a>(
    args: &Args,
    cluster: &'a flatcar_topology::Cluster,
) -> Result<&'a flatcar_topology::KvmHost, String> {
    let hosts = cluster.kvm_hosts();
    let names = || {
        hosts
            .iter()
            .map(|h| h.name.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(name) = &args.host {
        return hosts
            .iter()
            .find(|h| h.name.as_str() == name)
            .copied()
            .ok_or_else(|| {
                format!(
                    "--host {name}: no such KVM host (the model has {})",
                    names()
                )
            });
    }
    if !cluster.is_multi_host() {
        return Ok(cluster.host());
    }
    let local: Vec<&flatcar_topology::KvmHost> = hosts
        .iter()
        .enumerate()
        .filter(|(i, h)| is_local(h.libvirt_uri(*i == 0).as_str()))
        .map(|(_, h)| *h)
        .collect();
    match local.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "no KVM host of the model ({}) has a local libvirt URI: name this machine with --host",
            names()
        )),
        many => Err(format!(
            "hosts {} all have a local libvirt URI: name this machine with --host",
            many.iter()
                .map(|h| h.name.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(feature = "live")]
/// The host part's plan for this machine's KVM host (read-only: `nft list
/// tables`), printed; with several hosts, how the others get theirs.
fn plan_host(
    args: &Args,
    cluster: &flatcar_topology::Cluster,
    secrets: &mut BundleSecrets,
) -> Result<
    (
        flatcar_net::ruleset::Ruleset,
        flatcar_microcloud::host::HostPlan,
    ),
    String,
> {
    use flatcar_microcloud::host;
    let me = this_host(args, cluster)?;
    let composed =
        flatcar_microcloud::services::compose(cluster, secrets).map_err(|e| e.to_string())?;
    let ruleset = flatcar_net::ruleset::build_for(cluster, &composed.flows, me);
    let existing = host::existing_tables(&["nft"]).map_err(|e| e.to_string())?;
    let plan = host::plan_for(cluster, me, &ruleset, &existing);
    print!("{plan}");
    if cluster.is_multi_host() {
        for (i, h) in cluster.kvm_hosts().iter().enumerate() {
            if h.name != me.name {
                println!(
                    "host part of {name} ({uri}): not this machine: there, --host {name}, or for every host: ansible-playbook -i host/inventory.yml host/playbook.yml (--limit {name})",
                    name = h.name,
                    uri = h.libvirt_uri(i == 0)
                );
            }
        }
    }
    Ok((ruleset, plan))
}

#[cfg(feature = "live")]
/// Installs `files` into `dir` (each written to a temporary file, then
/// renamed over the old one), mode 0644; returns how many changed.
fn install_networkd(
    dir: &std::path::Path,
    files: &std::collections::BTreeMap<String, String>,
) -> Result<usize, String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut changed = 0;
    for (name, text) in files {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|old| &old == text) {
            continue;
        }
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        changed += 1;
    }
    Ok(changed)
}

#[cfg(feature = "live")]
/// The host part: nftables (one transaction, our tables only), then the
/// WireGuard endpoint.
fn apply_host(
    args: &Args,
    cluster: &flatcar_topology::Cluster,
    secrets: &mut BundleSecrets,
    ruleset: &flatcar_net::ruleset::Ruleset,
    plan: &flatcar_microcloud::host::HostPlan,
) -> Result<(), String> {
    use flatcar_microcloud::host;
    use flatcar_topology::provision::SecretStore;
    if let Some(n) = &plan.networkd {
        // Bridges and VXLAN ports first (libvirt's networks and the
        // ruleset name them), and forwarding on.
        let changed = install_networkd(&args.networkd_dir, &n.files)?;
        println!(
            "networkd: {changed} of {} file(s) changed in {}",
            n.files.len(),
            args.networkd_dir.display()
        );
        if args.networkd_dir == std::path::Path::new(NETWORKD_DIR) {
            let ok = std::process::Command::new("networkctl")
                .arg("reload")
                .status()
                .map_err(|e| format!("networkctl: {e}"))?;
            if !ok.success() {
                return Err("networkctl reload failed".into());
            }
            println!("networkd: reloaded");
        } else {
            println!(
                "networkd: not {NETWORKD_DIR}, so no networkctl reload (install them there yourself)"
            );
        }
        let ok = std::process::Command::new("sysctl")
            .args(["-q", "-w", "net.ipv4.ip_forward=1"])
            .status()
            .map_err(|e| format!("sysctl: {e}"))?;
        if !ok.success() {
            return Err("sysctl -w net.ipv4.ip_forward=1 failed".into());
        }
        println!("sysctl: net.ipv4.ip_forward=1");
    }
    host::apply_ruleset(ruleset, &["nft"]).map_err(|e| e.to_string())?;
    println!(
        "nftables: applied {} table(s) in one transaction",
        plan.tables.len()
    );
    if let (Some(wg), Some(vpn)) = (&plan.wireguard, cluster.vpn()) {
        use flatcar_net::wireguard;
        let key = |id: &flatcar_topology::SecretId, s: &mut BundleSecrets| {
            s.get_or_create(id, &|| {
                wireguard::generate()
                    .map_err(|e| flatcar_topology::Error::service("flatcar-net", e))
            })
            .map_err(|e| e.to_string())
            .and_then(|k| wireguard::keypair(id, k).map_err(|e| e.to_string()))
        };
        let endpoint = key(&wireguard::ENDPOINT_SECRET, secrets)?;
        let mut peers = Vec::new();
        for p in &vpn.peers {
            peers.push((p.clone(), key(&wireguard::peer_secret(p), secrets)?));
        }
        let backend = match args.wg_backend.as_str() {
            "userspace" => wireguard::Backend::Userspace,
            _ => wireguard::Backend::Kernel,
        };
        if matches!(backend, wireguard::Backend::Kernel) {
            let link = std::process::Command::new("ip")
                .args(["link", "add", &wg.interface, "type", "wireguard"])
                .status()
                .map_err(|e| format!("ip: {e}"))?;
            if !link.success() {
                println!(
                    "wireguard: ip link add {} failed (exists, or no kernel module)",
                    wg.interface
                );
            }
        }
        wireguard::apply(&wg.interface, backend, cluster, &endpoint, &peers)
            .map_err(|e| e.to_string())?;
        for cmd in [
            vec![
                "addr",
                "replace",
                wg.address.as_str(),
                "dev",
                wg.interface.as_str(),
            ],
            vec!["link", "set", wg.interface.as_str(), "up"],
        ] {
            let ok = std::process::Command::new("ip")
                .args(&cmd)
                .status()
                .map_err(|e| format!("ip: {e}"))?;
            if !ok.success() {
                return Err(format!("ip {} failed", cmd.join(" ")));
            }
        }
        println!(
            "wireguard: {} up at {}, listening on {}, {} peer(s)",
            wg.interface,
            wg.address,
            wg.port,
            peers.len()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut secrets = BundleSecrets::from_bundle_dir(&args.out);
    let keys: Vec<String> = if args.ssh_key.is_empty() && args.model.is_none() {
        match flatcar_microcloud::admin_key::load_or_generate(&mut secrets, "admin@microcloud") {
            Ok(k) => {
                println!(
                    "admin SSH key: {}/secrets/{} (log in with ssh -i)",
                    args.out.display(),
                    flatcar_microcloud::admin_key::SECRET_NAME
                );
                vec![k.as_str().to_string()]
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        args.ssh_key.clone()
    };
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let cluster = match &args.model {
        Some(path) => match flatcar_microcloud::model::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => match flatcar_microcloud::reference::cluster_for(
            &flatcar_microcloud::reference::AddressPlan::reference(),
            &key_refs,
        ) {
            Ok(c) => c,
            Err(problems) => {
                eprint!("{problems}");
                return ExitCode::FAILURE;
            }
        },
    };
    print!("{}", cluster.summary());
    println!();
    println!("bring-up order at first boot (each stage starts once the ones before it run):");
    print!("{}", cluster.bring_up());
    println!();
    #[cfg(feature = "libvirt")]
    match destroy(&args, &cluster) {
        Ok(true) => return ExitCode::SUCCESS,
        Ok(false) => {}
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let options = if args.strict {
        RenderOptions::strict()
    } else {
        RenderOptions::default()
    };
    let mut bundle = match Bundle::render_opts(&cluster, &mut secrets, options) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("downloads: {} artifact(s)", bundle.downloads().len());
    for a in bundle.downloads().values() {
        let mark = if a.is_verified() {
            "verified  "
        } else {
            "UNVERIFIED"
        };
        println!("  {mark} {a}");
    }
    let unverified = bundle.unverified();
    if !unverified.is_empty() {
        println!(
            "warning: {} unverified artifact(s) (no published hash found; --strict refuses them):",
            unverified.len()
        );
        for a in unverified {
            println!("  {} {} ({})", a.name(), a.version(), a.source());
        }
    }
    println!();
    // What the new model means for the cloud applied from the previous
    // bundle's model: per VM none / live / replace / create / remove, and
    // the rolling plan that carries it out.
    let previous = [flatcar_microcloud::bundle::RUNNING_MODEL, "cluster.json"]
        .iter()
        .map(|f| args.out.join(f))
        .find(|p| p.exists());
    let mut running = None;
    let mut host_changed = false;
    let vm_changes = if let Some(previous) = previous {
        let classified = flatcar_microcloud::model::load(&previous).and_then(|old| {
            let c = flatcar_microcloud::change::classify(&old, &cluster, &mut secrets)?;
            Ok((old, c))
        });
        let vms = match classified {
            Ok((old, changes)) if changes.is_empty() => {
                println!(
                    "running cloud: nothing changes (model as in {})",
                    previous.display()
                );
                running = Some(old);
                changes.vms
            }
            Ok((old, changes)) => {
                print!("{changes}");
                println!("rolling plan (one VM down at most; live changes pushed over SSH with the admin key):");
                print!("{}", changes.rollout(&old, &cluster));
                running = Some(old);
                host_changed = changes.host;
                changes.vms
            }
            Err(e) => {
                eprintln!("error: previous model {}: {e}", previous.display());
                return ExitCode::FAILURE;
            }
        };
        println!();
        vms
    } else {
        std::collections::BTreeMap::new()
    };
    // Live pushes, replacements and drained removals: `--apply` carries
    // them out with the rolling plan (below), after which the running cloud
    // has the new model; the bundle records it. Without --apply they stay
    // pending and the bundle keeps the model the running VMs have.
    use flatcar_microcloud::topology::change::VmChange;
    let pending: Vec<&String> = vm_changes
        .iter()
        .filter(|(_, c)| {
            matches!(
                c,
                VmChange::Live { .. } | VmChange::Replace { .. } | VmChange::Remove
            )
        })
        .map(|(n, _)| n)
        .collect();
    #[cfg(feature = "libvirt")]
    let (applying, rolling) = (args.apply.is_some(), !args.no_rollout);
    #[cfg(not(feature = "libvirt"))]
    let (applying, rolling) = (false, false);
    let record = match (applying && (rolling || pending.is_empty()), &running) {
        (true, _) => Some(&cluster),
        (false, Some(old)) => Some(old),
        (false, None) => None,
    };
    if let Some(model) = record {
        if let Err(e) = bundle.record_running(model) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let plan = match bundle.plan(&args.out) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{plan}");
    if args.diff || args.dry_run {
        for c in plan
            .changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Changed)
        {
            match &c.diff {
                Some(d) => print!("{d}"),
                None => println!("  (secret {} changed; not shown)", c.path),
            }
        }
    }
    #[cfg(not(feature = "libvirt"))]
    let _ = vm_changes;
    // `--apply URI`: every plan first (libvirt objects, Ignition placement,
    // the host part), then, unless --dry-run, the bundle and the apply.
    #[cfg(feature = "libvirt")]
    let mut deploy = match &args.apply {
        None => None,
        Some(uri) => match plan_deploy(uri, &cluster, &bundle, &vm_changes) {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    #[cfg(feature = "libvirt")]
    let host_wanted = args.apply.as_deref().is_some_and(is_local) && !args.no_host;
    #[cfg(feature = "libvirt")]
    if let Some(uri) = args.apply.as_deref() {
        if args.no_host {
            println!("host part: skipped (--no-host)");
        } else if !is_local(uri) && cluster.is_multi_host() {
            println!(
                "host part: {uri} is another machine: apply every host's part with ansible-playbook -i host/inventory.yml host/playbook.yml"
            );
        } else if !is_local(uri) {
            println!(
                "host part: {uri} is another machine: apply host/ there (ansible-playbook -i HOST, host/playbook.yml)"
            );
        } else if cfg!(not(feature = "live")) {
            println!(
                "host part: not built in (feature live): apply host/ with ansible-playbook -i localhost, host/playbook.yml"
            );
        }
    }
    #[cfg(feature = "live")]
    let host_plan = if host_wanted || args.apply_host {
        if args.apply_host && args.apply.is_none() {
            println!("note: --apply-host is deprecated: --apply URI applies the host part too");
        }
        match plan_host(&args, &cluster, &mut secrets) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("error: host plan: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    if args.dry_run {
        println!("dry run: nothing written, nothing applied");
        return ExitCode::SUCCESS;
    }
    // The rolling plan for the running VMs (empty on a first deploy).
    #[cfg(feature = "libvirt")]
    let rollout = match &running {
        Some(old) => flatcar_microcloud::change::Changes {
            vms: vm_changes.clone(),
            host: host_changed,
        }
        .rollout(old, &cluster),
        None => Default::default(),
    };
    #[cfg(not(feature = "libvirt"))]
    let _ = host_changed;
    #[cfg(feature = "libvirt")]
    if let Some(d) = &mut deploy {
        // The libvirt steps of VMs the rolling plan replaces or removes run
        // at their step of the rollout (after the drain or VIP handover),
        // not here.
        if let (Some(old), true) = (&running, rolling) {
            let deferred: std::collections::BTreeSet<String> = pending
                .iter()
                .flat_map(|vm| flatcar_microcloud::machines::owned_objects(&cluster, old, vm))
                .collect();
            d.plan.steps.retain(|s| {
                !(deferred.contains(&s.name)
                    && matches!(
                        s.kind,
                        flatcar_microcloud::libvirt::apply::Kind::Domain
                            | flatcar_microcloud::libvirt::apply::Kind::Volume
                    ))
            });
        }
        if let Err(e) = run_deploy(d, &cluster) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    #[cfg(feature = "libvirt")]
    let host_in_rollout = rollout
        .steps
        .iter()
        .any(|s| matches!(s, flatcar_microcloud::topology::rollout::Step::Host));
    #[cfg(feature = "libvirt")]
    let rollout = if rolling { rollout } else { Default::default() };
    #[cfg(feature = "libvirt")]
    if let (Some(d), Some(old), false) = (&deploy, &running, rollout.steps.is_empty()) {
        #[cfg(feature = "live")]
        let host_step = |secrets: &mut BundleSecrets| -> Result<(), String> {
            match &host_plan {
                Some((ruleset, plan)) => apply_host(&args, &cluster, secrets, ruleset, plan),
                None => {
                    println!("  host part: not applied here (see above)");
                    Ok(())
                }
            }
        };
        #[cfg(not(feature = "live"))]
        let host_step = |_: &mut BundleSecrets| -> Result<(), String> {
            println!("  host part: not built in (feature live): apply host/ with ansible-playbook");
            Ok(())
        };
        if let Err(e) = run_rollout(&args, d, old, &cluster, &rollout, &mut secrets, host_step) {
            eprintln!("error: {e}");
            eprintln!(
                "  the steps before it are done; {} keeps the previous model: fix the cause and run --apply again",
                args.out.display()
            );
            return ExitCode::FAILURE;
        }
    }
    #[cfg(all(feature = "libvirt", not(feature = "live")))]
    let _ = host_in_rollout;
    #[cfg(feature = "live")]
    if let (Some((ruleset, plan)), false) = (&host_plan, host_in_rollout) {
        if let Err(e) = apply_host(&args, &cluster, &mut secrets, ruleset, plan) {
            eprintln!("error: host part: {e}");
            return ExitCode::FAILURE;
        }
    }
    #[cfg(all(feature = "libvirt", not(feature = "live")))]
    let _ = host_wanted;
    // The bundle last: it records what was applied.
    if plan.is_empty() {
        println!("{} is up to date: nothing to write", args.out.display());
    } else if let Err(e) = bundle.write_to(&args.out) {
        eprintln!("error: {e} (the previous bundle is intact)");
        return ExitCode::FAILURE;
    } else {
        println!(
            "wrote {} files to {}",
            bundle.files().len(),
            args.out.display()
        );
    }
    println!(
        "diagram: {0}/diagram/cloud.dot (dot -Tsvg), {0}/diagram/cloud.mmd (Mermaid)",
        args.out.display()
    );
    #[cfg(feature = "libvirt")]
    if args.start {
        if let Err(e) = start(&args, &cluster) {
            eprintln!("error: --start: {e}");
            return ExitCode::FAILURE;
        }
    }
    if applying && !rolling && !pending.is_empty() {
        let names: Vec<&str> = pending.iter().map(|n| n.as_str()).collect();
        println!(
            "pending on running VMs (--no-rollout; see the rolling plan): {}",
            names.join(", ")
        );
        println!(
            "  their new files are in the bundle and in each VM's <vm>.ign; {} still records the model they run",
            flatcar_microcloud::bundle::RUNNING_MODEL
        );
    } else if applying && !pending.is_empty() {
        let names: Vec<&str> = pending.iter().map(|n| n.as_str()).collect();
        println!(
            "done on running VMs (rolling plan): {}; {} records the new model",
            names.join(", "),
            flatcar_microcloud::bundle::RUNNING_MODEL
        );
    }
    ExitCode::SUCCESS
}
