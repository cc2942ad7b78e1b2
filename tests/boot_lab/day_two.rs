//! Day two on the running lab cloud (issue #19), after the boot lab's own
//! claims: the rollout executor (`flatcar_microcloud::deploy::execute`)
//! changes the cloud of real VMs while a LAN client probes both VIPs.
//!
//! - **Add worker4** (`support::with_worker4` of the reference, the lab's
//!   adjustments applied as to the running model): `change::classify`
//!   plans lb1/lb2 live (HAProxy), worker4 create, the host part; the
//!   libvirt objects of the new model are applied as `full_cluster
//!   --apply` does (worker4 defined, every Ignition config placed), then
//!   the executor runs: the new `host/nftables.nft` in the lab namespace
//!   (never the machine's own), worker4 started by the libvirt
//!   `Machines` (`machines::Libvirt`) and booted under TCG, HAProxy's
//!   config pushed to both LBs over SSH (`OpenSsh`, the model's admin user
//!   `core` through `sudo -n`), checked and reloaded. Zero failed requests;
//!   web traffic reaches worker4.
//! - **Remove worker4**: pushes first, then cordon/drain (a **STAND-IN**
//!   for K3s: master1's `k3s kubectl` is not in this lab), then the remove
//!   (domain and volumes deleted), then the host part. Zero failed
//!   requests.
//! - **Rolling replacement of both LBs** (a first-boot change: Flatcar
//!   4152.2.0 on the load balancers; the test image is uploaded as that
//!   version's base image too): one at a time, each only after the other
//!   holds every VIP (handover), each a real TCG first boot from a fresh
//!   root overlay and its new Ignition config. The client's longest outage
//!   per VIP is printed and asserted under 1 s.
//!
//! SSH and `nft` run inside the lab namespace (the KVM host): the executor
//! runs in a thread that entered it (`lb_lab::enter_netns`), as
//! tests/rollout_live.rs does; libvirt is reached through the lab daemon's
//! Unix socket.

use super::watch::{Host, Pressure, Watch, PRESSURE_CMD};
use super::{lb_lab, support, LabModel, Rows, START_TIMEOUT};
use flatcar_libvirt::{apply, ignition};
use flatcar_microcloud::change::classify;
use flatcar_microcloud::deploy::{
    execute, BoxError, Event, Nodes, OpenSsh, Options, Remote, Target,
};
use flatcar_microcloud::machines::{owned_objects, Libvirt};
use flatcar_microcloud::{services, Bundle, BundleSecrets};
use flatcar_topology::change::VmChange;
use flatcar_topology::rollout::{Rollout, Step};
use flatcar_topology::{Channel, Cluster, FlatcarVersion, OsImage, Role};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the day-two phase needs from the running lab.
pub(super) struct RunningLab<'a> {
    /// The lab libvirtd's URI (its Unix socket).
    pub uri: &'a str,
    /// The lab namespace (the KVM host: SSH and `nft` run there).
    pub lab_ns: &'a support::Netns,
    /// The LAN client's namespace (the probes).
    pub client_ns: &'a str,
    /// The reference model before the lab's adjustments.
    pub reference: &'a Cluster,
    /// The lab's adjustments, applied to every model.
    pub model: &'a LabModel,
    /// The running cloud's model (`model` applied to `reference`).
    pub running: &'a Cluster,
    /// The running cloud's bundle (its secrets are every model's).
    pub bundle_dir: &'a Path,
    /// The test image (`flatcar-test.qcow2`).
    pub image: &'a Path,
    /// The admin's private key.
    pub key: &'a Path,
    /// A private work directory.
    pub work: &'a Path,
}

/// Connect/answer timeouts of the probes while nothing moves (adding and
/// removing a worker): a request fails when it gets no answer in 5 s. The
/// connect waits for one SYN retransmit (the kernel's, after 1 s), as every
/// TCP client does: under TCG a reload of the holder's HAProxy lost a SYN
/// in 2 of 6 pushes of session 11's stress run (1 s connect timeouts, the
/// guest answering pings within 0.21 s). Such a wait shows in the longest
/// gap printed per phase.
const STEADY: (Duration, Duration) = (Duration::from_millis(3000), Duration::from_millis(2000));
/// While VIPs move (the replacements): a lost SYN is retried by the next
/// request after 200 ms, not by the kernel after 1 s, and a connection cut
/// by a VIP move (in flight on the holder that leaves) is given up after
/// 500 ms, as a client with a deadline and a retry would (as in
/// tests/rollout_live.rs); the longest time between two answers is the
/// outage.
const MOVING: (Duration, Duration) = (Duration::from_millis(200), Duration::from_millis(500));
/// The pause between two requests of a probe.
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// One request's outcome.
struct Rec {
    vip: &'static str,
    phase: usize,
    end: Instant,
    answer: Result<String, String>,
    /// The load balancer the client's ARP entry for the VIP named when the
    /// request ended (by MAC), if known.
    holder: Option<String>,
}

/// Requests on both VIPs (api:6443, web:80) from the LAN client, one
/// after another per VIP, tagged with the current phase.
struct Prober {
    t0: Instant,
    stop: Arc<AtomicBool>,
    phase: Arc<AtomicUsize>,
    recs: Arc<Mutex<Vec<Rec>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Per VIP and phase: answered, failed, longest time between two
/// answers, the first failures, the answers seen.
struct Stats {
    ok: usize,
    failed: usize,
    gap: Duration,
    /// When the longest gap ended (since the day two began).
    gap_end: Duration,
    errors: Vec<String>,
    seen: BTreeSet<String>,
    /// The VIP's holder as the client saw it (its ARP entry): the first,
    /// then every change with its time. A change in a phase that moves no
    /// VIP is a VRRP blip.
    holders: Vec<String>,
}

impl Stats {
    fn show(&self, vip: &str) -> String {
        format!(
            "{vip} {} ok / {} failed, longest gap {:.0} ms (ending at +{:.1} s){}{}",
            self.ok,
            self.failed,
            self.gap.as_secs_f64() * 1e3,
            self.gap_end.as_secs_f64(),
            if self.errors.is_empty() {
                String::new()
            } else {
                format!(" {:?}", self.errors)
            },
            if self.holders.len() > 1 {
                format!("; held by {}", self.holders.join(" → "))
            } else {
                String::new()
            }
        )
    }
}

impl Prober {
    /// `lbs`: each load balancer's MAC on the LAN (as the client's ARP
    /// table writes it) and its name.
    fn start(
        client: &str,
        api: Ipv4Addr,
        web: Ipv4Addr,
        lbs: BTreeMap<String, String>,
        t0: Instant,
    ) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(AtomicUsize::new(0));
        let recs = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for (vip, addr, port) in [("api", api, 6443), ("web", web, 80)] {
            let (stop, phase, recs, ns, lbs) = (
                stop.clone(),
                phase.clone(),
                recs.clone(),
                client.to_string(),
                lbs.clone(),
            );
            threads.push(std::thread::spawn(move || {
                lb_lab::enter_netns(&ns);
                while !stop.load(Ordering::Relaxed) {
                    let p = phase.load(Ordering::Relaxed);
                    let (connect, read) = if p >= 4 { MOVING } else { STEADY };
                    // Done once the answer line is in (see `spawn_probe`).
                    let answer =
                        match lb_lab::request_line(addr, port, lb_lab::PROBE_BYTE, connect, read)
                            .map(|(t, _)| t)
                        {
                            Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
                            Ok(_) => Err("empty answer".to_string()),
                            Err(e) => Err(e),
                        };
                    let holder = super::arp_mac(addr).map(|m| lbs.get(&m).cloned().unwrap_or(m));
                    recs.lock().expect("lock").push(Rec {
                        vip,
                        phase: p,
                        end: Instant::now(),
                        answer,
                        holder,
                    });
                    std::thread::sleep(PROBE_EVERY);
                }
            }));
        }
        Prober {
            t0,
            stop,
            phase,
            recs,
            threads,
        }
    }

    fn set_phase(&self, p: usize) {
        self.phase.store(p, Ordering::Relaxed);
    }

    fn stats(&self, phase: usize, vip: &str) -> Stats {
        let recs = self.recs.lock().expect("lock");
        let mut s = Stats {
            ok: 0,
            failed: 0,
            gap: Duration::ZERO,
            gap_end: Duration::ZERO,
            errors: Vec::new(),
            seen: BTreeSet::new(),
            holders: Vec::new(),
        };
        let mut last: Option<Instant> = None;
        let mut holder: Option<&String> = None;
        for r in recs.iter().filter(|r| r.vip == vip && r.phase == phase) {
            if let Some(h) = r.holder.as_ref().filter(|h| Some(*h) != holder) {
                s.holders.push(if holder.is_none() {
                    h.clone()
                } else {
                    format!(
                        "{h} (+{:.2} s)",
                        r.end.duration_since(self.t0).as_secs_f64()
                    )
                });
                holder = Some(h);
            }
            match &r.answer {
                Ok(name) => {
                    s.ok += 1;
                    s.seen.insert(name.clone());
                    if let Some(l) = last {
                        if r.end - l > s.gap {
                            s.gap = r.end - l;
                            s.gap_end = r.end.duration_since(self.t0);
                        }
                    }
                    last = Some(r.end);
                }
                Err(e) => {
                    s.failed += 1;
                    if s.errors.len() < 5 {
                        s.errors.push(format!(
                            "{e} at +{:.1} s",
                            r.end.duration_since(self.t0).as_secs_f64()
                        ));
                    }
                }
            }
        }
        s
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Destroys the VMs day two creates and keeps their console logs (in
/// `out/boot-lab/`), also on failure; the lab's own drop handles lb1/lb2.
struct Created {
    uri: String,
    vms: Vec<String>,
}

impl Drop for Created {
    fn drop(&mut self) {
        let keep = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("out/boot-lab");
        let _ = std::fs::create_dir_all(&keep);
        for vm in &self.vms {
            let _ = Command::new("virsh")
                .args(["-c", &self.uri, "destroy", vm])
                .output();
            for l in [
                format!("/var/log/libvirt/qemu/{vm}-serial.log"),
                format!("/var/log/libvirt/qemu/{vm}.log"),
            ] {
                let p = PathBuf::from(&l);
                if let Some(name) = p.file_name() {
                    let _ = std::fs::copy(&p, keep.join(name));
                }
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

/// **STAND-IN** for K3s's node operations (master1's `k3s kubectl` is not
/// in this lab): cordon and uncordon are recorded; a drain stops the
/// node's workload — its K3s agent with the ingress stand-in — over SSH,
/// as evicting its pods would.
struct K3sStandin {
    ssh: OpenSsh,
    cluster: Cluster,
    log: Arc<Mutex<Vec<String>>>,
}

impl K3sStandin {
    fn note(&self, s: String) {
        println!("      {s}");
        self.log.lock().expect("log").push(s);
    }
}

impl Nodes for K3sStandin {
    fn cordon(&mut self, node: &str) -> Result<(), BoxError> {
        self.note(format!(
            "STAND-IN cordon {node} (for `k3s kubectl cordon` on master1: the K3s stand-in has no kubectl)"
        ));
        Ok(())
    }
    fn drain(&mut self, node: &str) -> Result<(), BoxError> {
        let t = Target::of(&self.cluster, node).ok_or("not in the model")?;
        let out = self.ssh.run(
            &t,
            "systemctl stop k3s-agent.service; systemctl is-active k3s-agent.service || true",
            b"",
        )?;
        self.note(format!(
            "STAND-IN drain {node} (for `k3s kubectl drain`): its workload stopped over SSH (k3s-agent {})",
            out.trim()
        ));
        Ok(())
    }
    fn uncordon(&mut self, node: &str) -> Result<(), BoxError> {
        self.note(format!(
            "STAND-IN uncordon {node} (for `k3s kubectl uncordon`)"
        ));
        Ok(())
    }
}

/// A model's bundle, rendered with the running cloud's secrets and
/// written to its own directory.
struct Rendered {
    dir: PathBuf,
    configs: BTreeMap<String, Vec<u8>>,
    composed: flatcar_topology::provision::Composed,
}

fn render(cluster: &Cluster, previous: &Path, dir: PathBuf) -> Rendered {
    let mut secrets = BundleSecrets::from_bundle_dir(previous);
    let bundle = Bundle::render(cluster, &mut secrets).expect("renders");
    bundle.write_to(&dir).expect("writes the bundle");
    let configs = bundle.ignition_configs();
    let mut secrets = BundleSecrets::from_bundle_dir(previous);
    let composed =
        services::compose_after(cluster, secrets.previous_zones(), &mut secrets).expect("composes");
    Rendered {
        dir,
        configs,
        composed,
    }
}

fn label(c: &BTreeMap<String, VmChange>, vm: &str) -> &'static str {
    c.get(vm).map_or("none", VmChange::label)
}

/// The domains running in the lab.
fn running(uri: &str) -> BTreeSet<String> {
    support::stdout_of(Command::new("virsh").args(["-c", uri, "list", "--name"]))
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The steps of VMs this lab runs (or creates); the others are printed
/// (their pushes are the fast tier's: tests/deploy.rs).
fn lab_steps(rollout: &Rollout, lab_vms: &BTreeSet<String>) -> Rollout {
    let mut kept = Rollout::default();
    for s in &rollout.steps {
        let vms: Vec<&str> = match s {
            Step::Host => vec![],
            Step::Create { vm }
            | Step::WaitReady { vm }
            | Step::Cordon { vm }
            | Step::Drain { vm }
            | Step::Uncordon { vm }
            | Step::Push { vm, .. }
            | Step::Replace { vm, .. }
            | Step::Remove { vm } => vec![vm.as_str()],
            Step::HandOver { from, to, .. } => vec![from.as_str(), to.as_str()],
            _ => vec![],
        };
        if vms.iter().all(|v| lab_vms.contains(*v)) {
            kept.steps.push(s.clone());
        } else {
            println!("    not booted in this lab, left out: {s}");
        }
    }
    kept
}

/// One day-two change, as `full_cluster --apply` carries it out: the
/// classification, the libvirt objects (minus those of the VMs the rollout
/// replaces or removes: their step does them), every Ignition config
/// placed, then the rollout by the executor from the lab namespace.
struct Change<'a> {
    lab: &'a RunningLab<'a>,
    old: &'a Cluster,
    new: &'a Cluster,
    to: &'a Rendered,
}

/// What one change did.
struct Done {
    changes: BTreeMap<String, VmChange>,
    host: bool,
    rollout: Rollout,
    took: Duration,
    uploaded_bases: Vec<String>,
    /// The step that failed, with its causes (the phase's later claims
    /// fail; the next phase still runs).
    failed: Option<String>,
}

impl Done {
    fn row(&self, rows: &mut Rows, phase: &str) {
        rows.row(
            &format!("{phase}: the rollout ran every step"),
            self.failed.is_none(),
            &self.failed.clone().unwrap_or_else(|| {
                format!(
                    "{} steps in {:.0} s",
                    self.rollout.steps.len(),
                    self.took.as_secs_f64()
                )
            }),
        );
    }
}

impl Change<'_> {
    fn run(&self, t_all: Instant, nodes_log: &Arc<Mutex<Vec<String>>>) -> Done {
        let lab = self.lab;
        let mut secrets = BundleSecrets::from_bundle_dir(lab.bundle_dir);
        let changes = classify(self.old, self.new, &mut secrets).expect("classifies");
        print!("{changes}");
        let rollout = changes.rollout(self.old, self.new);
        let mut in_lab = running(lab.uri);
        in_lab.extend(
            changes
                .vms
                .iter()
                .filter(|(_, c)| matches!(c, VmChange::Create))
                .map(|(v, _)| v.clone()),
        );
        let rollout = lab_steps(&rollout, &in_lab);
        println!("rolling plan ({} steps in this lab):", rollout.steps.len());
        print!("{rollout}");

        // The libvirt side, as `--apply` does it.
        let conn = apply::connect(lab.uri).expect("connects");
        let mut plan = apply::plan(&conn, self.new).expect("plans");
        let deferred: BTreeSet<String> = changes
            .vms
            .iter()
            .filter(|(_, c)| matches!(c, VmChange::Replace { .. } | VmChange::Remove))
            .flat_map(|(vm, _)| owned_objects(self.new, self.old, vm))
            .collect();
        plan.steps.retain(|s| {
            !(deferred.contains(&s.name)
                && matches!(s.kind, apply::Kind::Domain | apply::Kind::Volume))
        });
        let bases = flatcar_libvirt::volume::base_images(self.new);
        let new_bases: Vec<String> = plan
            .steps
            .iter()
            .filter(|s| {
                s.kind == apply::Kind::Volume
                    && s.action == apply::Action::Create
                    && bases.contains(&s.name)
            })
            .map(|s| s.name.clone())
            .collect();
        println!(
            "libvirt plan (the rollout's VMs deferred to their step): {} change(s)",
            plan.changes()
        );
        for s in plan
            .steps
            .iter()
            .filter(|s| s.action != apply::Action::Unchanged)
        {
            println!("  {s}");
        }
        apply::apply(&conn, &plan).expect("applies");
        for base in &new_bases {
            // As a user uploads the new Flatcar image: the test image stands
            // in for every version.
            support::stdout_of(Command::new("virsh").args([
                "-c",
                lab.uri,
                "vol-upload",
                "--pool",
                self.new.host().pool.name.as_str(),
                base,
                lab.image.join("flatcar-test.qcow2").to_str().expect("utf8"),
            ]));
            println!("  base image {base}: the test image uploaded (stands in for that version)");
        }
        let ign = ignition::plan(&conn, self.new, &self.to.configs).expect("Ignition plan");
        let n = ignition::apply(&conn, self.new, &self.to.configs, &ign).expect("uploads");
        println!("  Ignition: {n} config(s) placed");
        drop(conn);

        // The rollout, from the lab namespace.
        let rules = self.to.dir.join("host/nftables.nft");
        let t0 = Instant::now();
        let r = std::thread::scope(|s| {
            s.spawn(|| {
                lb_lab::enter_netns(&lab.lab_ns.name);
                let conn = apply::connect(lab.uri).expect("connects");
                let ns = lab.lab_ns.name.clone();
                let host = Box::new(move || -> Result<(), BoxError> {
                    let o = Command::new("ip")
                        .args(["netns", "exec", &ns, "nft", "-f"])
                        .arg(&rules)
                        .output()?;
                    if !o.status.success() {
                        return Err(String::from_utf8_lossy(&o.stderr).into_owned().into());
                    }
                    println!(
                        "      host: the new {} applied in {ns} only",
                        rules.display()
                    );
                    Ok(())
                });
                let mut machines = Libvirt::new(&conn, self.old, self.new, &self.to.configs, host);
                machines.timeout = START_TIMEOUT;
                let mux = lab.work.join("mux");
                let ssh = OpenSsh::new(lab.key.to_path_buf(), lab.work.join("known_hosts"))
                    .reuse_connections(mux)
                    .expect("mux dir");
                let mut remote = ssh.clone();
                let mut nodes = K3sStandin {
                    ssh,
                    cluster: if self.new.vm("worker4").is_some() {
                        self.new.clone()
                    } else {
                        self.old.clone()
                    },
                    log: nodes_log.clone(),
                };
                let options = Options {
                    handover: Duration::from_secs(30),
                    ssh_ready: Duration::from_secs(300),
                    poll: Duration::from_millis(100),
                };
                let r = execute(
                    &rollout,
                    self.old,
                    self.new,
                    &self.to.composed,
                    &mut remote,
                    &mut machines,
                    &mut nodes,
                    &options,
                    &mut |e| match e {
                        Event::Started(i, step) => println!(
                            "  {:>3}. {step}  [at +{:.1} s]",
                            i + 1,
                            t_all.elapsed().as_secs_f64()
                        ),
                        Event::Done(_, _, took) => {
                            println!("       done in {:.1} s", took.as_secs_f64())
                        }
                        _ => {}
                    },
                );
                remote.close();
                nodes.ssh.close();
                r
            })
            .join()
            .expect("executor thread")
        });
        if let Err(e) = &r {
            println!("ROLLOUT FAILED: {e}");
            for vm in in_lab.iter() {
                let log = format!("/var/log/libvirt/qemu/{vm}-serial.log");
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(25).collect();
                println!(
                    "--- {log} (last lines):\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        let failed = r.err().map(|e| {
            let mut chain = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                chain.push_str(&format!(": {s}"));
                src = s.source();
            }
            chain
        });
        Done {
            failed,
            changes: changes.vms,
            host: changes.host,
            rollout,
            took: t0.elapsed(),
            uploaded_bases: new_bases,
        }
    }
}

/// `cmd` on `vm` over SSH from the lab namespace, through `sudo -n`.
fn ssh_on(lab: &RunningLab, cluster: &Cluster, vm: &str, cmd: &str) -> String {
    let t = Target::of(cluster, vm).expect("target");
    let mut ssh = OpenSsh::new(lab.key.to_path_buf(), lab.work.join("known_hosts"));
    std::thread::scope(|s| {
        s.spawn(|| {
            lb_lab::enter_netns(&lab.lab_ns.name);
            ssh.run(&t, cmd, b"")
                .unwrap_or_else(|e| format!("ERROR {e}"))
        })
        .join()
        .expect("ssh thread")
    })
}

/// Day two's diagnostics of the load balancers (`watch.rs`): printed per
/// phase, never claims.
struct Diagnostics {
    watch: Watch,
    /// Each load balancer's pressure counters at the last phase's end.
    pressure: BTreeMap<String, Pressure>,
    /// The current phase's start (seconds since day two's start).
    from: f64,
    /// The KVM host's counters at the current phase's start.
    host: Host,
}

impl Diagnostics {
    /// Reads each load balancer's pressure counters; the lines since the
    /// last reading.
    fn pressures(&mut self, lab: &RunningLab, cluster: &Cluster) -> Vec<String> {
        let mut out = Vec::new();
        for vm in cluster.with_role(Role::LoadBalancer) {
            let name = vm.name.to_string();
            let now = Pressure::parse(&ssh_on(lab, cluster, &name, PRESSURE_CMD));
            if let Some(before) = self.pressure.get(&name) {
                out.push(format!("{name}: {}", now.since(before)));
            }
            self.pressure.insert(name, now);
        }
        out
    }

    /// Starts a phase: its window and the host's counters from now.
    fn begin(&mut self, t_all: Instant) {
        self.from = t_all.elapsed().as_secs_f64();
        self.host = Host::read();
    }

    /// Prints what the wire, the pings and the host's counters saw since
    /// [`Diagnostics::begin`].
    fn window(&self, phase: &str, t_all: Instant) {
        for l in self
            .watch
            .report(phase, self.from, t_all.elapsed().as_secs_f64())
        {
            println!("{l}");
        }
        println!("{phase} KVM host: {}", Host::read().since(&self.host));
    }

    /// Prints a phase's lines: [`Diagnostics::window`], each load
    /// balancer's stalls; when a VIP moved (`moved`) in a phase that moves
    /// none, both load balancers' Keepalived and kernel journals too.
    fn phase(
        &mut self,
        lab: &RunningLab,
        cluster: &Cluster,
        phase: &str,
        t_all: Instant,
        moved: bool,
    ) {
        self.window(phase, t_all);
        for l in self.pressures(lab, cluster) {
            println!("{phase} pressure {l}");
        }
        if moved {
            for vm in cluster.with_role(Role::LoadBalancer) {
                let name = vm.name.as_str();
                println!(
                    "--- {phase}: a VIP moved; {name}'s journal (Keepalived, then the kernel; guest clock, day two began {:.0} s ago):\n{}",
                    t_all.elapsed().as_secs_f64(),
                    ssh_on(
                        lab,
                        cluster,
                        name,
                        "journalctl -o short-precise --no-pager -u keepalived.service | tail -n 40; journalctl -o short-precise --no-pager -k | tail -n 20; date +%H:%M:%S.%N"
                    )
                );
            }
        }
    }
}

/// The step positions in `rollout` (its display), in order.
fn in_order(rollout: &Rollout, parts: &[&str]) -> bool {
    let text = rollout.to_string();
    let pos: Vec<Option<usize>> = parts.iter().map(|p| text.find(p)).collect();
    pos.iter().all(Option::is_some) && pos.windows(2).all(|w| w[0] < w[1])
}

/// The day-two phase: add worker4, remove it, replace both LBs; one row
/// per claim into `rows`.
pub(super) fn run(lab: &RunningLab, rows: &mut Rows) {
    let t_all = Instant::now();
    std::fs::create_dir_all(lab.work).expect("work dir");
    println!();
    println!("=== day two (issue #19): the running lab cloud changed by the rollout executor ===");
    let api = lab.running.vip("api").expect("api VIP").address;
    let web = lab.running.vip("web").expect("web VIP").address;
    let _created = Created {
        uri: lab.uri.to_string(),
        vms: vec!["worker4".into()],
    };
    let nodes_log = Arc::new(Mutex::new(Vec::new()));
    let lbs = lab
        .running
        .with_role(Role::LoadBalancer)
        .flat_map(|vm| {
            lab.running
                .nics(vm)
                .into_iter()
                .map(move |n| (n.mac.to_string(), vm.name.to_string()))
        })
        .collect();
    let prober = Prober::start(lab.client_ns, api, web, lbs, t_all);
    let mut diag = Diagnostics {
        watch: Watch::start(lab.lab_ns, lab.running, lab.work, t_all.elapsed()),
        pressure: BTreeMap::new(),
        from: 0.0,
        host: Host::read(),
    };
    diag.pressures(lab, lab.running);
    std::thread::sleep(Duration::from_secs(2));

    let previous = add_and_remove(lab, rows, &prober, &nodes_log, t_all, &mut diag);

    // 3. Rolling replacement of both LBs: their Flatcar version.
    prober.set_phase(4);
    diag.begin(t_all);
    let mut spec = lab.reference.clone().into_spec();
    for vm in spec.vms.iter_mut().filter(|v| v.has(Role::LoadBalancer)) {
        vm.image = Some(OsImage {
            channel: Channel::Stable,
            version: FlatcarVersion::new("4152.2.0").expect("version"),
        });
    }
    let (upgraded, _) = lab
        .model
        .apply(&Cluster::try_from(spec).expect("valid with the LBs upgraded"));
    let up_bundle = render(&upgraded, &previous, lab.work.join("bundle-upgrade"));
    println!("--- rolling replacement of lb1 and lb2 (Flatcar 4152.2.0 on the load balancers)");
    let done = Change {
        lab,
        old: lab.running,
        new: &upgraded,
        to: &up_bundle,
    }
    .run(t_all, &nodes_log);
    done.row(rows, "replace");
    // lb1 back: after its preempt delay it takes the VIPs back (the client
    // keeps probing through that move too).
    // The preempt delay after its Keepalived's start, with margin for a
    // loaded host.
    let preempt = match upgraded.vip("api").map(|v| v.preempt) {
        Some(flatcar_topology::Preempt::AfterSecs(s)) => u64::from(s),
        _ => 0,
    };
    let back = support::wait_until(Duration::from_secs(preempt + 90), || {
        ssh_on(lab, &upgraded, "lb1", "ip -4 -o addr show").contains(&format!(" {api}/"))
    });
    std::thread::sleep(Duration::from_secs(3));
    let one_at_a_time = in_order(
        &done.rollout,
        &[
            "handover  api, api-internal, web from lb2 to lb1",
            "replace   lb2",
            "wait      lb2 ready",
            "handover  api, api-internal, web from lb1 to lb2",
            "replace   lb1",
            "wait      lb1 ready",
        ],
    ) || in_order(
        &done.rollout,
        &[
            "handover  api, api-internal, web from lb1 to lb2",
            "replace   lb1",
            "wait      lb1 ready",
            "handover  api, api-internal, web from lb2 to lb1",
            "replace   lb2",
            "wait      lb2 ready",
        ],
    );
    rows.row(
        "replace: plan lb1, lb2 replace; one at a time, handover first",
        label(&done.changes, "lb1") == "replace"
            && label(&done.changes, "lb2") == "replace"
            && one_at_a_time,
        &format!(
            "lb1 {}, lb2 {}; new base image(s) {:?}; rollout {:.0} s",
            label(&done.changes, "lb1"),
            label(&done.changes, "lb2"),
            done.uploaded_bases,
            done.took.as_secs_f64()
        ),
    );
    for lb in ["lb1", "lb2"] {
        let vm = upgraded.vm(lb).expect("lb");
        let console = std::fs::read_to_string(flatcar_libvirt::domain::console_log_path(vm))
            .unwrap_or_default();
        let root = flatcar_libvirt::volume::root_volume(vm);
        let backing = support::stdout_of(Command::new("virsh").args([
            "-c",
            lab.uri,
            "vol-dumpxml",
            "--pool",
            upgraded.host().pool.name.as_str(),
            &root,
        ]));
        let base = flatcar_libvirt::volume::image_of(&upgraded, vm).volume_name();
        rows.row(
            &format!("replace: {lb} a fresh first boot on the new image, ready"),
            console.contains("flatcar-first-boot-done: Ignition succeeded")
                && console.contains(&format!("flatcar-microcloud-ready: host={lb} failed=0"))
                && backing.contains(&base),
            &format!("root {root} backed by {base}: {}", backing.contains(&base)),
        );
    }
    let (a, w) = (prober.stats(4, "api"), prober.stats(4, "web"));
    // The LBs rebooted: their pressure counters started over; the wire,
    // the pings and the host only.
    diag.window("replace", t_all);
    rows.row(
        "replace: VIPs back on lb1 after its preempt delay",
        back.is_some(),
        "lb1's addresses over SSH",
    );
    drop(prober);
    println!(
        "replace: longest outage api VIP {:.2} s, web VIP {:.2} s (probes every {} ms, {} ms connect timeout)",
        a.gap.as_secs_f64(),
        w.gap.as_secs_f64(),
        PROBE_EVERY.as_millis(),
        MOVING.0.as_millis()
    );
    rows.row(
        "replace: client's longest outage per VIP < 1 s",
        a.gap < Duration::from_secs(1) && w.gap < Duration::from_secs(1) && a.ok > 0 && w.ok > 0,
        &format!("{}; {}", a.show("api"), w.show("web")),
    );
    println!("day two: {:.0} s", t_all.elapsed().as_secs_f64());
}

/// Phases 1 and 2: worker4 added, then removed; the last bundle's
/// directory (its secrets are the next change's).
fn add_and_remove(
    lab: &RunningLab,
    rows: &mut Rows,
    prober: &Prober,
    nodes_log: &Arc<Mutex<Vec<String>>>,
    t_all: Instant,
    diag: &mut Diagnostics,
) -> PathBuf {
    // 1. Add worker4.
    prober.set_phase(1);
    diag.begin(t_all);
    let (added, _) = lab.model.apply(&support::with_worker4(lab.reference));
    let add_bundle = render(&added, lab.bundle_dir, lab.work.join("bundle-add"));
    println!("--- add worker4 (model: reference + worker4, the lab's adjustments)");
    let _join = join_standin(lab, &added, &add_bundle.configs["worker4"]);
    let done = Change {
        lab,
        old: lab.running,
        new: &added,
        to: &add_bundle,
    }
    .run(t_all, nodes_log);
    done.row(rows, "add");
    rows.row(
        "add: plan lb1, lb2 live, worker4 create, host part changes",
        label(&done.changes, "lb1") == "live"
            && label(&done.changes, "lb2") == "live"
            && label(&done.changes, "worker4") == "create"
            && done.host,
        &format!(
            "lb1 {}, lb2 {}, worker4 {}, host {}",
            label(&done.changes, "lb1"),
            label(&done.changes, "lb2"),
            label(&done.changes, "worker4"),
            done.host
        ),
    );
    let w4 = added.vm("worker4").expect("worker4");
    let w4_addr = added.nics(w4)[0].address;
    let console =
        std::fs::read_to_string(flatcar_libvirt::domain::console_log_path(w4)).unwrap_or_default();
    rows.row(
        "add: worker4 created and booted (TCG, Ignition from fw_cfg)",
        console.contains("flatcar-first-boot-done: Ignition succeeded")
            && console.contains("flatcar-microcloud-ready: host=worker4 failed=0"),
        &format!(
            "rollout {:.0} s (host, create, wait ready, pushes)",
            done.took.as_secs_f64()
        ),
    );
    let ruleset = support::stdout_of(Command::new("ip").args([
        "netns",
        "exec",
        &lab.lab_ns.name,
        "nft",
        "list",
        "table",
        "inet",
        "microcloud",
    ]));
    rows.row(
        "add: the host ruleset (lab namespace) admits worker4's flows",
        ruleset.contains(&w4_addr.to_string()),
        &format!(
            "{} rule line(s) name {w4_addr}",
            ruleset
                .lines()
                .filter(|l| l.contains(&w4_addr.to_string()))
                .count()
        ),
    );
    for lb in ["lb1", "lb2"] {
        // Each LB's own file (they differ: each binds its own addresses).
        let want = match &add_bundle.composed.nodes[lb].files["/etc/haproxy/haproxy.cfg"].contents {
            flatcar_topology::provision::Contents::Inline(b) => {
                String::from_utf8_lossy(b).into_owned()
            }
            _ => panic!("inline"),
        };
        let got = ssh_on(lab, &added, lb, "cat /etc/haproxy/haproxy.cfg");
        let state = ssh_on(
            lab,
            &added,
            lb,
            "stat -c %a /etc/haproxy/haproxy.cfg; systemctl is-active haproxy",
        );
        let state = state.split_whitespace().collect::<Vec<_>>().join(" ");
        rows.row(
            &format!("add: {lb}'s haproxy.cfg is the new model's, HAProxy active"),
            got == want && state == "644 active",
            &format!(
                "{} bytes, identical {}, mode and state {state:?}",
                got.len(),
                got == want
            ),
        );
    }
    let want_a = w4_addr.to_string();
    if dns_worker4(lab, &added).is_some() {
        let answered = support::wait_until(Duration::from_secs(30), || {
            dns_worker4(lab, &added).as_deref() == Some(want_a.as_str())
        });
        rows.row(
            "add: infra's DNS answers for worker4 (zone pushed, CoreDNS reloaded)",
            answered.is_some(),
            &format!(
                "worker4.{} → {:?}",
                added.domain(),
                dns_worker4(lab, &added).unwrap_or_default()
            ),
        );
    } else {
        println!("infra is not booted in this lab: worker4's DNS name is not asked");
    }
    let reached = support::wait_until(Duration::from_secs(60), || {
        prober
            .stats(1, "web")
            .seen
            .iter()
            .any(|a| a.contains("worker4"))
    });
    std::thread::sleep(Duration::from_secs(2));
    let (a, w) = (prober.stats(1, "api"), prober.stats(1, "web"));
    rows.row(
        "add: web traffic reaches worker4 through the web VIP",
        reached.is_some(),
        &format!(
            "answers seen: {}",
            w.seen.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
    );
    diag.phase(
        lab,
        &added,
        "add",
        t_all,
        a.holders.len() > 1 || w.holders.len() > 1,
    );
    rows.row(
        "add: zero failed requests on both VIPs throughout",
        a.failed == 0 && w.failed == 0 && a.ok > 0 && w.ok > 0,
        &format!("{}; {}", a.show("api"), w.show("web")),
    );

    // 2. Remove worker4.
    prober.set_phase(2);
    diag.begin(t_all);
    let removed = lab.running;
    let remove_bundle = render(removed, &add_bundle.dir, lab.work.join("bundle-remove"));
    println!("--- remove worker4 (back to the running model)");
    let done = Change {
        lab,
        old: &added,
        new: removed,
        to: &remove_bundle,
    }
    .run(t_all, nodes_log);
    done.row(rows, "remove");
    let order = in_order(
        &done.rollout,
        &[
            "push      lb1",
            "push      lb2",
            "drain     worker4",
            "remove    worker4",
        ],
    );
    rows.row(
        "remove: plan lb1, lb2 live, worker4 remove; pushes, drain, remove",
        label(&done.changes, "lb1") == "live"
            && label(&done.changes, "lb2") == "live"
            && label(&done.changes, "worker4") == "remove"
            && order,
        &format!(
            "in order: {order}; {}",
            nodes_log.lock().expect("log").join("; ")
        ),
    );
    let domains =
        support::stdout_of(Command::new("virsh").args(["-c", lab.uri, "list", "--all", "--name"]));
    let vols = support::stdout_of(Command::new("virsh").args([
        "-c",
        lab.uri,
        "vol-list",
        lab.running.host().pool.name.as_str(),
    ]));
    rows.row(
        "remove: worker4's domain and volumes deleted",
        !domains.contains("worker4") && !vols.contains("worker4"),
        &format!(
            "rollout {:.0} s; left: {:?}",
            done.took.as_secs_f64(),
            vols.lines()
                .filter(|l| l.contains("worker4"))
                .collect::<Vec<_>>()
        ),
    );
    if dns_worker4(lab, &added).is_some() {
        let _ = support::wait_until(Duration::from_secs(30), || {
            dns_worker4(lab, &added).is_some_and(|a| a.is_empty())
        });
        let a = dns_worker4(lab, &added).unwrap_or_default();
        rows.row(
            "remove: infra's DNS no longer answers for worker4",
            a.is_empty(),
            &format!("worker4.{} → {a:?}", added.domain()),
        );
    }
    prober.set_phase(3);
    std::thread::sleep(Duration::from_secs(3));
    let after = prober.stats(3, "web").seen;
    let (a, w) = (prober.stats(2, "api"), prober.stats(2, "web"));
    diag.phase(
        lab,
        removed,
        "remove",
        t_all,
        a.holders.len() > 1 || w.holders.len() > 1,
    );
    rows.row(
        "remove: zero failed requests; worker4 out of the rotation",
        a.failed == 0
            && w.failed == 0
            && a.ok > 0
            && w.ok > 0
            && !after.iter().any(|x| x.contains("worker4")),
        &format!(
            "{}; {}; answering after: {}",
            a.show("api"),
            w.show("web"),
            after.into_iter().collect::<Vec<_>>().join(", ")
        ),
    );

    remove_bundle.dir
}

/// A **STAND-IN** K3s server (tests/boot/standins/k3s, `k3s server`) for
/// worker4's join when master1 is not booted in this lab: a namespace of
/// its own on the k8s bridge at master2's address, the cluster's token.
/// HAProxy's API backends check it up (TLS `/readyz`), and worker4's agent
/// joins through the api-internal VIP as it would with K3s.
struct JoinStandin {
    _daemon: support::Daemon,
    _ns: support::Netns,
}

fn join_standin(lab: &RunningLab, cluster: &Cluster, worker: &[u8]) -> Option<JoinStandin> {
    if running(lab.uri).contains("master1") {
        println!("master1 runs in this lab: worker4's agent joins it");
        return None;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/boot/standins/k3s");
    assert!(
        script.exists(),
        "the K3s stand-in {} is missing",
        script.display()
    );
    let m2 = cluster.vm("master2").expect("master2");
    let nic = cluster.nics(m2).into_iter().next().expect("a NIC");
    // The cluster's (agent) token, as worker4's Ignition config carries it.
    let config: serde_json::Value = serde_json::from_slice(worker).expect("json");
    let token = config["storage"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| {
            f["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/etc/rancher/k3s/") && p.ends_with("token"))
        })
        .and_then(|f| f["contents"]["source"].as_str())
        .and_then(|s| s.strip_prefix("data:;base64,"))
        .map(|b| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .expect("base64")
        })
        .expect("worker4's token file");
    let dir = lab.work.join("k3s-master2");
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    std::fs::write(dir.join("token"), &token).expect("token");
    std::fs::write(
        dir.join("config.yaml"),
        format!(
            "cluster-init: true\nnode-name: master2\nnode-ip: {}\ntoken-file: {}\n",
            nic.address,
            dir.join("token").display()
        ),
    )
    .expect("config");
    let ns = support::Netns::new(&support::unique("d2m2"));
    support::stdout_of(Command::new("ip").args([
        "link",
        "add",
        "d2m2",
        "netns",
        &lab.lab_ns.name,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &ns.name,
    ]));
    support::stdout_of(Command::new("ip").args([
        "-n",
        &lab.lab_ns.name,
        "link",
        "set",
        "d2m2",
        "master",
        nic.network.bridge.as_str(),
        "up",
    ]));
    ns.addr("eth0", nic.address, nic.prefix);
    ns.ip(&[
        "route",
        "add",
        "default",
        "via",
        &nic.network.gateway.to_string(),
    ]);
    let daemon = ns.spawn_logged(
        &[
            "env",
            &format!("K3S_CONFIG_FILE={}", dir.join("config.yaml").display()),
            &format!("K3S_DATA_DIR={}", dir.join("data").display()),
            "python3",
            script.to_str().expect("utf8"),
            "server",
        ],
        &dir.join("log"),
    );
    println!(
        "STAND-IN K3s server (tests/boot/standins/k3s) at master2's {} on {} ({}): master1 is not booted in this lab; worker4's agent joins through the api-internal VIP",
        nic.address, nic.network.bridge, ns.name
    );
    Some(JoinStandin {
        _daemon: daemon,
        _ns: ns,
    })
}

/// `worker4.<domain>` asked of infra's DNS from the lab namespace (`dig
/// +short`), or `None` when infra is not booted in this lab.
fn dns_worker4(lab: &RunningLab, cluster: &Cluster) -> Option<String> {
    if !running(lab.uri).contains("infra") {
        return None;
    }
    let infra = Target::of(cluster, "infra")?.address;
    let name = format!("worker4.{}", cluster.domain());
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.lab_ns.name,
            "dig",
            "+short",
            "+time=1",
            "+tries=1",
        ])
        .arg(format!("@{infra}"))
        .arg(&name)
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&o.stdout).trim().to_string())
}
