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
    /// Define the pool, volumes, networks and domains at this libvirt URI
    /// (e.g. qemu:///system); prints the plan first. Nothing is started.
    #[cfg(feature = "libvirt")]
    #[arg(long, value_name = "URI")]
    apply: Option<String>,
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
    /// Authorize this SSH public key line for the admin user (repeatable).
    /// Without one, an ed25519 key pair is generated once into
    /// `<out>/secrets/admin-ssh-ed25519` (0600) and reused.
    #[arg(long, value_name = "KEY")]
    ssh_key: Vec<String>,
    /// After writing the bundle, apply the KVM host's part on this machine
    /// (in the current network namespace): print the plan, then replace the
    /// project's nftables tables in one atomic transaction (other tables
    /// stay) and bring up the WireGuard endpoint. Needs root.
    #[cfg(feature = "live")]
    #[arg(long)]
    apply_host: bool,
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

/// `--apply URI` / `--destroy URI`: prints the plan (one line per object:
/// action, kind, name, reason), then applies it. Returns whether one ran.
#[cfg(feature = "libvirt")]
fn libvirt(
    args: &Args,
    cluster: &flatcar_microcloud::topology::Cluster,
) -> Result<bool, flatcar_microcloud::libvirt::Error> {
    use flatcar_microcloud::libvirt::apply;
    let (uri, destroying) = match (&args.apply, &args.destroy) {
        (_, Some(uri)) => (uri, true),
        (Some(uri), None) => (uri, false),
        (None, None) => return Ok(false),
    };
    let conn = apply::connect(uri)?;
    let plan = if destroying {
        apply::destroy_plan(&conn, cluster)?
    } else {
        apply::plan(&conn, cluster)?
    };
    let verb = if destroying { "destroy" } else { "apply" };
    println!("libvirt {verb} plan at {uri}: {} change(s)", plan.changes());
    print!("{plan}");
    if plan.changes() == 0 {
        println!("nothing changes");
        return Ok(true);
    }
    let report = apply_with_bar(&conn, &plan)?;
    let what = if destroying {
        "every object this cluster owns is gone"
    } else {
        "networks and domains are defined, not started"
    };
    println!(
        "{verb}: {} change(s), {} mutating libvirt call(s); {what}; foreign objects untouched",
        report.done.len(),
        report.mutations
    );
    if !destroying {
        let again = apply::plan(&conn, cluster)?;
        println!("re-plan at {uri}: {} change(s)", again.changes());
    }
    Ok(true)
}

/// `--start`: places each VM's Ignition config at its fw_cfg path, then
/// starts the domains in bring-up order, printing progress and per-VM times.
#[cfg(feature = "libvirt")]
fn start(
    args: &Args,
    cluster: &flatcar_microcloud::topology::Cluster,
    secrets: &mut BundleSecrets,
) -> Result<(), String> {
    use flatcar_ignition::IgnitionJson;
    use flatcar_microcloud::libvirt::{apply, start};
    let Some(uri) = &args.apply else {
        return Ok(());
    };
    let composed =
        flatcar_microcloud::services::compose(cluster, secrets).map_err(|e| e.to_string())?;
    for (name, node) in &composed.nodes {
        let json = node.ignition_json().map_err(|e| e.to_string())?;
        let path = start::place_ignition(cluster, name, &json).map_err(|e| e.to_string())?;
        println!("ignition: {name} → {path} (0600)");
    }
    let conn = apply::connect(uri).map_err(|e| e.to_string())?;
    let t0 = std::time::Instant::now();
    let timeout = std::time::Duration::from_secs(args.start_timeout);
    let started = start::start(&conn, cluster, timeout, &mut |e| match e {
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
/// `--apply-host`: the plan, then nftables (one transaction, our tables
/// only), then the WireGuard endpoint.
fn apply_host(
    args: &Args,
    cluster: &flatcar_topology::Cluster,
    secrets: &mut BundleSecrets,
) -> Result<(), String> {
    use flatcar_microcloud::host;
    use flatcar_topology::provision::SecretStore;
    let composed =
        flatcar_microcloud::services::compose(cluster, secrets).map_err(|e| e.to_string())?;
    let ruleset = flatcar_net::ruleset::build(cluster, &composed.flows);
    let existing = host::existing_tables(&["nft"]).map_err(|e| e.to_string())?;
    let plan = host::plan(cluster, &ruleset, &existing);
    print!("{plan}");
    host::apply_ruleset(&ruleset, &["nft"]).map_err(|e| e.to_string())?;
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
    match libvirt(&args, &cluster) {
        Ok(true) => {
            if args.start && args.destroy.is_none() {
                if let Err(e) = start(&args, &cluster, &mut secrets) {
                    eprintln!("error: --start: {e}");
                    return ExitCode::FAILURE;
                }
            }
            return ExitCode::SUCCESS;
        }
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
    let bundle = match Bundle::render_opts(&cluster, &mut secrets, options) {
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
    if args.dry_run {
        println!("dry run: nothing written");
        return ExitCode::SUCCESS;
    }
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
    #[cfg(feature = "live")]
    if args.apply_host {
        if let Err(e) = apply_host(&args, &cluster, &mut secrets) {
            eprintln!("error: --apply-host: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
