//! Live (feature `boot-lab`, root, libvirt, QEMU/TCG, network namespaces):
//! the generated cloud under a real libvirtd, seven of its eleven VMs (one
//! of every role, both load balancers) booted from the Flatcar-like test
//! image with the Ignition configs this project renders, the flow matrix
//! between them, VRRP failover between the two real load balancers, then
//! day two (`boot_lab/day_two.rs`) on the same cloud.
//!
//! - The cloud: `reference::builder_for(&AddressPlan::test(), [key])` with
//!   the project's own admin key, the HAProxy and Keepalived extensions
//!   overridden by the ones `scripts/build-sysext` builds from Debian's
//!   binaries (served by the fake internet at the LAN gateway), domain type
//!   `qemu` (the host model's accelerator: no usable KVM for Linux guests
//!   here), TCG-suited failover timing and VM memory at most 512 MiB — all
//!   set in the model and printed.
//! - The lab: a namespace `lab` (the KVM host: its LAN bridge, its uplink,
//!   the generated host ruleset, a `libvirtd` + `virtlogd` of its own with
//!   private `/run/libvirt`, `/var/lib/libvirt`, `/etc/libvirt` and
//!   `/var/cache/libvirt` in a mount namespace of their own, so the system
//!   libvirtd other tests use is never touched); its only uplink leads to
//!   `inet` (198.18.0.1: the LAN router, DHCP for first boots, the artifact
//!   mirror); a LAN client. The QEMU threads of VMs that are up run at a
//!   higher host priority than booting ones (printed): up to nine TCG
//!   guests share two cores.
//! - Deploy: the library's own `apply::plan`/`apply`, `ignition::plan`/
//!   `apply` (upload through libvirt) and `start::start_with` (bring-up
//!   waves, two boots at a time, the serial-console up report) for the VMs
//!   of [`BOOTED`]. The other four are defined but not booted (named in
//!   the output, with why).
//! - Claims (one row each, per booted VM from its own config): Ignition
//!   succeeded, no emergency shell, hostname, static addresses and data
//!   disks as modelled, `systemctl --failed` empty, every enabled unit
//!   active, the API reached at the node's real join URL; the flow matrix;
//!   the client reaches both VIPs; `virsh destroy lb1` moves both VIPs to
//!   lb2 (client-visible outage printed and asserted against issue #15's
//!   1 s bar); lb1 started again takes them back exactly once,
//!   not before the preempt delay (outage printed and asserted the same
//!   way). Then the phase times of this part
//!   (issue #15's budget: image build included) and day two's.
//! - Where the cores go: the claims of the VMs already up run beside the
//!   last boot wave, and the other VMs' claims and the flow matrix beside
//!   lb1's second boot: a single TCG boot keeps one core busy, not two.
//!
//! Everything is removed on drop, also on failure: domains (with the
//! daemon), networks, namespaces, daemons, temp dirs, the console logs.

#![cfg(feature = "boot-lab")]

#[path = "boot_lab/day_two.rs"]
mod day_two;
#[path = "support/lb_lab.rs"]
mod lb_lab;
#[path = "boot_lab/matrix.rs"]
mod matrix;
mod support;
#[path = "boot_lab/watch.rs"]
mod watch;

use flatcar_libvirt::{apply, ignition, start};
use flatcar_microcloud::reference::{builder_for, AddressPlan};
use flatcar_microcloud::{Bundle, BundleSecrets};
use flatcar_topology::artifact::Override;
use flatcar_topology::failover::Failover;
use flatcar_topology::{Accelerator, Cluster, MiB, Name, Role};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{bridge, enslave, require, unique, veth, Daemon, Netns, TempDir};

/// The VMs booted: one of every role and both load balancers (the pair
/// that fails over), the minimum issue #15 allows when the time budget
/// does not allow all eleven under TCG. The other four (master2, master3,
/// worker2, worker3) are defined but not booted: each TCG boot costs
/// about two and a half minutes of a core (session 8 booted master2 too,
/// a server joining through the API VIP: eight boots took 606–673 s).
const BOOTED: [&str; 7] = [
    "lb1",
    "lb2",
    "infra",
    "postgresql1",
    "master1",
    "worker1",
    "storage1",
];
/// Issue #15's bar for a client-visible failover outage, printed against
/// each measured outage. With 200 ms adverts a backup takes over
/// 3 × 0.2 s + skew (~0.68 s) after the last advert it heard, plus the
/// probe's interval and its 200 ms connect deadline: destroy measured
/// 0.56–0.88 s. lb1's return measured 0.60–1.23 s until session 13, every
/// time a request in flight on lb2 that hung until its 500 ms deadline
/// (lb2 could not route its answer from a VIP it no longer held). The VIP
/// binds are `transparent` since, and the handback's own failures are
/// gone; the lab uses the reference's preempt delay again (it had raised
/// it to 60 s to keep the handback away from worker1's boot). The return's
/// outage is the handback's ([`HANDBACK_BEFORE`], [`HANDBACK_AFTER`]):
/// lb2's slow answers while it serves alone beside two TCG boots (1.10 s
/// once, at +90 s of a handback at +155 s) are a row of their own.
const OUTAGE_BAR: Duration = Duration::from_secs(1);
/// What the outage rows assert: the bar itself (it was twice the bar
/// while the handback's hung requests made the return outage 0.60–1.23 s).
const OUTAGE_LIMIT: Duration = OUTAGE_BAR;

/// The handback's window starts this long before the client's ARP entry
/// moved to lb1 (longer than any probe's deadline)…
const HANDBACK_BEFORE: Duration = Duration::from_secs(2);
/// … and ends this long after.
const HANDBACK_AFTER: Duration = Duration::from_secs(3);
/// What the row of lb2's longest gap while it serves alone, beside lb1's
/// and worker1's boots, asserts: no VRRP flap and no hung request (each
/// costs seconds). A load balancer starved by two TCG boots answered one
/// request late and lost one SYN: 1.10 s (session 13's rehearsal).
const BUSY_LIMIT: Duration = Duration::from_secs(2);

fn outage_detail(outage: Duration) -> String {
    format!(
        "{:.2} s ({} issue #15's {} s bar)",
        outage.as_secs_f64(),
        if outage < OUTAGE_BAR { "under" } else { "OVER" },
        OUTAGE_BAR.as_secs()
    )
}

/// Issue #15's time budget for this test's part before day two (image
/// build, deploy, boots, claims, failover), printed against the measured.
const BUDGET_15: Duration = Duration::from_secs(15 * 60);
/// The system extensions built from Debian's binaries (real daemons), each
/// overriding the artifact of the same name.
const SYSEXTS: [&str; 3] = ["haproxy", "keepalived", "chrony"];
/// VMs booting at once (one per host core).
const PARALLEL_BOOTS: usize = 2;
/// vCPU cap for every VM (TCG on two host cores).
const VCPU_CAP: u16 = 1;
/// Memory cap for every VM (the reference declares 36.5 GiB in all).
const MEMORY_CAP: MiB = MiB(512);
/// Per-VM wait for the up report (TCG, two VMs on two loaded cores).
const START_TIMEOUT: Duration = Duration::from_secs(1500);

/// The lab's adjustments of a model (the reference, or the reference with
/// a day-two change): the artifact overrides (the mirror's system
/// extensions), domain type `qemu`, failover timing for TCG, every VM's
/// memory capped at [`MEMORY_CAP`]. One function for every model the lab
/// runs, so a day-two plan compares like with like.
struct LabModel {
    overrides: BTreeMap<Name, Override>,
    failover: Failover,
}

impl LabModel {
    /// `base` adjusted for the lab, and the VMs whose memory was capped.
    fn apply(&self, base: &Cluster) -> (Cluster, Vec<String>) {
        let mut spec = base.clone().into_spec();
        spec.artifacts.overrides.extend(self.overrides.clone());
        spec.host.accelerator = Accelerator::Qemu;
        spec.failover = self.failover;
        let mut shrunk = Vec::new();
        for vm in &mut spec.vms {
            if vm.memory > MEMORY_CAP {
                shrunk.push(format!("{} {}→{} MiB", vm.name, vm.memory.0, MEMORY_CAP.0));
                vm.memory = MEMORY_CAP;
            }
            // Under TCG a second vCPU buys nothing on two host cores shared
            // by seven guests, and costs lock stalls (RCU, soft lockups).
            if vm.vcpus > VCPU_CAP {
                shrunk.push(format!("{} {}→{VCPU_CAP} vCPU", vm.name, vm.vcpus));
                vm.vcpus = VCPU_CAP;
            }
        }
        let c = Cluster::try_from(spec).expect("the lab's model is valid");
        (c, shrunk)
    }
}

/// The lab's libvirtd: started inside the lab namespace, in a mount
/// namespace of its own with private libvirt directories (bound from the
/// temp dir). Its socket is reached from outside through the temp dir.
struct LabLibvirt {
    _daemon: Daemon,
    uri: String,
    logs: Vec<PathBuf>,
}

impl LabLibvirt {
    fn start(lab: &Netns, dir: &Path) -> LabLibvirt {
        for d in ["run", "lib", "etc", "cache"] {
            std::fs::create_dir_all(dir.join(d)).expect("mkdir");
        }
        // The system's configuration (daemon, qemu.conf), without any
        // object definitions: nothing of the system's daemon is started here.
        support::stdout_of(
            Command::new("cp")
                .args(["-a", "/etc/libvirt/."])
                .arg(dir.join("etc")),
        );
        for sub in ["qemu", "qemu/networks", "storage", "secrets"] {
            let p = dir.join("etc").join(sub);
            if let Ok(rd) = std::fs::read_dir(&p) {
                for e in rd.flatten() {
                    let path = e.path();
                    if path.extension().is_some_and(|x| x == "xml") || path.ends_with("autostart") {
                        let _ = std::fs::remove_dir_all(&path);
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
        }
        // The directory layout (owners, modes) of the system's state dir.
        support::stdout_of(Command::new("sh").arg("-c").arg(format!(
            "cd /var/lib/libvirt && find . -mindepth 1 -maxdepth 2 -type d -not -path './images/*' | while read d; do mkdir -p {lib}/$d; chown --reference=$d {lib}/$d; chmod --reference=$d {lib}/$d; done",
            lib = dir.join("lib").display()
        )));
        for p in ["/run/libvirt", "/var/cache/libvirt"] {
            std::fs::create_dir_all(p).expect("mount point");
        }
        let script = format!(
            "set -e
mount --make-rprivate /
mount --bind {d}/run /run/libvirt
mount --bind {d}/lib /var/lib/libvirt
mount --bind {d}/etc /etc/libvirt
mount --bind {d}/cache /var/cache/libvirt
virtlogd -d -p {d}/run/virtlogd.pid
exec libvirtd -p {d}/run/libvirtd.pid",
            d = dir.display()
        );
        let daemon = lab.spawn_private_mounts(&script, &dir.join("libvirtd.log"));
        let uri = format!(
            "qemu+unix:///system?socket={}/libvirt-sock",
            dir.join("run").display()
        );
        let t0 = Instant::now();
        loop {
            if apply::connect(&uri).is_ok() {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the lab's libvirtd did not answer at {uri}: {}",
                std::fs::read_to_string(dir.join("libvirtd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        println!(
            "lab libvirtd up in {:.1} s (namespace {}, private /run/libvirt /var/lib/libvirt /etc/libvirt /var/cache/libvirt, {uri})",
            t0.elapsed().as_secs_f64(),
            lab.name
        );
        LabLibvirt {
            _daemon: daemon,
            uri,
            logs: Vec::new(),
        }
    }

    fn virsh(&self, args: &[&str]) -> String {
        support::stdout_of(Command::new("virsh").args(["-c", &self.uri]).args(args))
    }
}

impl Drop for LabLibvirt {
    fn drop(&mut self) {
        for vm in BOOTED {
            let _ = Command::new("virsh")
                .args(["-c", &self.uri, "destroy", vm])
                .output();
        }
        // The console logs live in the shared /var/log/libvirt/qemu: keep a
        // copy for reading, remove ours.
        let keep = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("out/boot-lab");
        let _ = std::fs::create_dir_all(&keep);
        for l in &self.logs {
            if let Some(name) = l.file_name() {
                let _ = std::fs::copy(l, keep.join(name));
            }
            let _ = std::fs::remove_file(l);
        }
    }
}

/// One row per claim; failures are collected and asserted at the end.
/// Rows of a thread working beside the boots are held and printed when
/// merged, so the table stays in one piece.
#[derive(Default)]
struct Rows {
    failed: Vec<String>,
    held: Option<Vec<String>>,
}

impl Rows {
    /// Rows printed when merged ([`Rows::merge`]).
    fn held() -> Rows {
        Rows {
            failed: Vec::new(),
            held: Some(Vec::new()),
        }
    }

    fn row(&mut self, claim: &str, ok: bool, detail: &str) {
        self.note(format!(
            "{:<66} {:<4} {detail}",
            claim,
            if ok { "ok" } else { "FAIL" }
        ));
        if !ok {
            self.failed.push(format!("{claim}: {detail}"));
        }
    }

    /// A line of the table that is not a claim (a gap, a second pass).
    fn note(&mut self, line: String) {
        match &mut self.held {
            Some(lines) => lines.push(line),
            None => println!("{line}"),
        }
    }

    /// Takes `other`'s rows: prints (or holds) its lines, keeps its
    /// failures.
    fn merge(&mut self, other: Rows) {
        for line in other.held.unwrap_or_default() {
            self.note(line);
        }
        self.failed.extend(other.failed);
    }
}

/// What the client saw at one moment: the request's answer (if any) and
/// which MAC the client's ARP cache has for each VIP.
#[derive(Clone, Debug)]
struct Sample {
    at: Duration,
    ok: bool,
    /// How long the request took.
    took: Duration,
    /// Why it failed, or how the connection ended after a whole answer
    /// (a reset from a new VIP holder).
    note: Option<String>,
    holders: Vec<Option<String>>,
}

/// The client's ARP entry for `vip` (this thread's network namespace).
fn arp_mac(vip: Ipv4Addr) -> Option<String> {
    let text = std::fs::read_to_string("/proc/thread-self/net/arp").ok()?;
    text.lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.first() == Some(&vip.to_string().as_str()) && f.get(2) != Some(&"0x0"))
        .and_then(|f| f.get(3).map(|m| m.to_string()))
}

/// Probes the API VIP from the client every 50 ms (connect timeout
/// 200 ms, so a lost SYN costs one probe, not the kernel's 1 s
/// retransmit; answer deadline 500 ms) and reads the ARP entries of every
/// VIP. A request counts once its whole answer (one line, as the K3s
/// stand-in answers a plain client) is in: a request caught in flight by
/// a handback gets its answer from the old holder (the VIP binds are
/// `transparent`) and may then be reset by the new one, which never knew
/// the connection; that reset is kept as the sample's note.
fn spawn_probe(
    ns: String,
    api: Ipv4Addr,
    vips: Vec<Ipv4Addr>,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Sample>>>,
    t0: Instant,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        lb_lab::enter_netns(&ns);
        while !stop.load(Ordering::Relaxed) {
            let at = t0.elapsed();
            let r = lb_lab::request_line(
                api,
                6443,
                lb_lab::PROBE_BYTE,
                Duration::from_millis(200),
                Duration::from_millis(500),
            );
            let took = t0.elapsed() - at;
            let (ok, note) = match r {
                Ok((t, end)) => (!t.trim().is_empty(), end),
                Err(e) => (false, Some(e)),
            };
            let holders = vips.iter().map(|v| arp_mac(*v)).collect();
            log.lock().expect("log").push(Sample {
                at,
                ok,
                took,
                note,
                holders,
            });
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

/// The probes of an outage's `span` ([`longest_outage`]) and the one after
/// it, one line each, for the log: when each started, how long it took,
/// what ended it, who held the VIPs.
fn outage_timeline(
    samples: &[Sample],
    span: std::ops::Range<usize>,
    who: &dyn Fn(&Option<String>) -> String,
) -> String {
    if span.is_empty() {
        return "  (no failed probe)".into();
    }
    samples[span.start..(span.end + 1).min(samples.len())]
        .iter()
        .map(|s| {
            format!(
                "  +{:.3} s {:>4} ms {:<4} {} {}",
                s.at.as_secs_f64(),
                s.took.as_millis(),
                if s.ok { "ok" } else { "FAIL" },
                s.holders.iter().map(who).collect::<Vec<_>>().join(","),
                s.note.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Host priority (nice) of the QEMU threads of VMs that are up, in the lab.
const UP_NICE: &str = "-5";
/// Host priority (nice) of the load balancers' QEMU threads, from their
/// start: ahead of every other VM, up or booting. Set after CI's reset in
/// day two's remove, at [`UP_NICE`] then; it did not stop that: session
/// 10's run 4 saw the api VIP on lb2 for 3 s during the push to lb2 with
/// the load balancers at -10.
const LB_NICE: &str = "-10";

/// Keeps the QEMU threads (every thread: nice is per thread on Linux) of
/// every VM that reported up on its serial console at [`UP_NICE`], and of
/// the VMs in `always` (the load balancers) from their start at
/// [`LB_NICE`], the
/// others while they boot at the default, checking every second until
/// `stop`, so VMs that start later (lb1's second boot, day two's new VMs)
/// get it too. The load balancers from their start: lb1 may take the VIPs
/// back before its up report (after its preempt delay), and a load
/// balancer still at the default answered its first requests late beside
/// worker1's boot (a 1.01 s outage). A KVM host gives every vCPU time of
/// its own; in the lab up to nine
/// TCG guests share two cores, and without this a boot starves the
/// running cloud: a load balancer misses VRRP adverts (and takes the
/// VIPs), a backend misses HAProxy's 250 ms check timeout (and is marked
/// down). Printed as a lab measure, not part of the model. Only QEMU
/// processes in the lab namespace `lab_ns` are touched.
fn spawn_up_priority(
    lab_ns: String,
    always: Vec<String>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut done: std::collections::BTreeSet<u32> = std::collections::BTreeSet::new();
        while !stop.load(Ordering::Relaxed) {
            let pids = Command::new("ip")
                .args(["netns", "pids", &lab_ns])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for pid in pids.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(&cmdline);
                if !cmdline.starts_with("/usr/bin/qemu-system") {
                    continue;
                }
                let Some(guest) = cmdline
                    .split(['\0', ','])
                    .find_map(|a| a.strip_prefix("guest="))
                else {
                    continue;
                };
                // The console log starts over at every start of the
                // domain (append off): a report in it is this boot's.
                let up = || {
                    let console =
                        std::fs::read(format!("/var/log/libvirt/qemu/{guest}-serial.log"))
                            .unwrap_or_default();
                    flatcar_topology::provision::ready::last_report(&String::from_utf8_lossy(
                        &console,
                    ))
                    .is_some()
                };
                let nice = if always.iter().any(|a| a == guest) {
                    LB_NICE
                } else if up() {
                    UP_NICE
                } else {
                    continue;
                };
                let tids: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
                    .map(|d| {
                        d.filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                let fresh: Vec<&String> = tids
                    .iter()
                    .filter(|t| t.parse().is_ok_and(|t: u32| !done.contains(&t)))
                    .collect();
                if fresh.is_empty() {
                    continue;
                }
                let mut args = vec!["-n", nice, "-p"];
                args.extend(fresh.iter().map(|t| t.as_str()));
                if Command::new("renice")
                    .args(&args)
                    .output()
                    .is_ok_and(|o| o.status.success())
                {
                    done.extend(fresh.iter().filter_map(|t| t.parse::<u32>().ok()));
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    })
}

/// The longest run of failed probes within `from..`: its length in time,
/// from the last answer (or `from`) to the next answer (or the last probe,
/// when none came), and the probes that span it (the answer before it, if
/// any, through the one that ended it), empty when no probe failed.
fn longest_outage(samples: &[Sample], from: Duration) -> (Duration, std::ops::Range<usize>) {
    let mut worst = (Duration::ZERO, 0..0);
    let mut first_failed: Option<usize> = None;
    let mut last_ok = from;
    let mut last_ok_i = samples.iter().rposition(|s| s.at < from && s.ok);
    for (i, s) in samples.iter().enumerate().filter(|(_, s)| s.at >= from) {
        if s.ok {
            if let Some(f) = first_failed.take() {
                let gap = s.at - last_ok;
                if gap > worst.0 {
                    worst = (gap, last_ok_i.unwrap_or(f)..i + 1);
                }
            }
            last_ok = s.at;
            last_ok_i = Some(i);
        } else if first_failed.is_none() {
            first_failed = Some(i);
        }
    }
    if let (Some(f), Some(l)) = (first_failed, samples.last()) {
        let gap = l.at - last_ok;
        if gap > worst.0 {
            worst = (gap, last_ok_i.unwrap_or(f)..samples.len());
        }
    }
    worst
}

/// Units a Flatcar image has and the test image lacks (named as gaps, not
/// passes).
const IMAGE_GAPS: [&str; 1] = ["systemd-sysupdate.timer"];

/// The units a VM's Ignition config enables: `enabled` units and the
/// `*.wants/` links it writes.
fn enabled_units(config: &serde_json::Value) -> Vec<String> {
    let mut units: Vec<String> = config["systemd"]["units"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|u| u["enabled"] == serde_json::Value::Bool(true))
        .filter_map(|u| u["name"].as_str().map(str::to_string))
        .collect();
    units.extend(
        config["storage"]["links"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["path"].as_str())
            .filter(|p| p.starts_with("/etc/systemd/system/") && p.contains(".wants/"))
            .filter_map(|p| p.rsplit('/').next().map(str::to_string)),
    );
    units.sort();
    units.dedup();
    units
}

/// A K3s node's join URL (`server:` in its generated `config.yaml`).
fn join_url(bundle: &Path, vm: &str) -> Option<(Ipv4Addr, u16)> {
    let config = std::fs::read_to_string(bundle.join("k3s").join(vm).join("config.yaml")).ok()?;
    support::join_target(&config)
}

#[test]
fn generated_cloud_boots_under_libvirt_and_the_load_balancers_fail_over() {
    let t_all = Instant::now();
    // Where the time goes: (phase, end since the test began).
    let mut phases: Vec<(&str, Duration)> = Vec::new();
    for tool in [
        "libvirtd",
        "virtlogd",
        "virsh",
        "unshare",
        "busybox",
        "dnsmasq",
        "ssh",
        "nft",
        "socat",
        "python3",
        "qemu-system-x86_64",
        "tcpdump",
        "ping",
    ] {
        require(tool);
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = TempDir::new("bootlab");
    let gen = work.path().join("generated");
    let mirror = gen.join("mirror");
    std::fs::create_dir_all(&mirror).expect("mkdir");

    // 1. The image (cached between runs) and the extensions built against it.
    let t = Instant::now();
    let image = work.path().join("image");
    support::stdout_of(Command::new(repo.join("scripts/build-test-image")).arg(&image));
    let image_s = t.elapsed().as_secs_f64();
    // The build's own time, from the image's manifest ("built … in N s"):
    // scripts/test builds the image in the background beside the other
    // tests, so this test usually finds it cached.
    let built_s: Option<f64> = std::fs::read_to_string(image.join("manifest.txt"))
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("built "))
                .and_then(|l| l.rsplit_once(" in "))
                .and_then(|(_, n)| n.trim_end_matches(" s").parse().ok())
        });
    let cached = image_s < 30.0;
    let sysexts: Vec<PathBuf> = support::stdout_of(
        Command::new(repo.join("scripts/build-sysext"))
            .arg("--status")
            .arg(image.join("dpkg-status"))
            .arg(&mirror)
            .args(SYSEXTS),
    )
    .lines()
    .map(PathBuf::from)
    .collect();
    assert_eq!(
        sysexts.len(),
        SYSEXTS.len(),
        "build-sysext prints one image each"
    );
    let standins: Vec<PathBuf> =
        support::stdout_of(Command::new(repo.join("scripts/build-standins")).arg(&mirror))
            .lines()
            .map(PathBuf::from)
            .collect();
    println!(
        "test image and extensions ready in {:.0} s (image {image_s:.0} s: {})",
        t.elapsed().as_secs_f64(),
        match (cached, built_s) {
            (true, Some(b)) => format!("cached; its build took {b:.0} s, in the background of scripts/test or an earlier run"),
            (true, None) => "cached".to_string(),
            (false, _) => "built now".to_string(),
        }
    );
    phases.push((
        "test image (built or cached) and extensions",
        t_all.elapsed(),
    ));

    // 2. The model: the test plan, the project's admin key, the lab's
    //    mirror, domain type qemu, TCG failover timing, memory capped.
    let plan = AddressPlan::test();
    let bundle_dir = gen.join("bundle");
    let mut secrets = BundleSecrets::from_bundle_dir(&bundle_dir);
    let key = flatcar_microcloud::admin_key::load_or_generate(&mut secrets, "admin@boot-lab")
        .expect("admin key");
    let reference = builder_for(&plan, &[key.as_str()]).build().expect("valid");
    let gw = plan.lan.addr().octets();
    let router = Ipv4Addr::new(gw[0], gw[1], gw[2], 1);
    // The artifact mirror is on the fake internet, not on the LAN: VMs on
    // the NAT networks reach the internet side through the host (a flow of
    // the model), not the LAN.
    let mirror_addr = Ipv4Addr::new(198, 18, 100, 1);
    let mirror_url = format!("http://{mirror_addr}:8080");
    let mut overrides = BTreeMap::new();
    for (name, img) in SYSEXTS.iter().zip(&sysexts) {
        let file = img.file_name().expect("file name").to_string_lossy();
        let sha = std::fs::read_to_string(img.with_extension("raw.sha256")).expect("sha file");
        let mut with = Override::file(
            &format!("{mirror_url}/{file}"),
            &format!("sha256-{}", sha.split_whitespace().next().expect("hash")),
        )
        .expect("override");
        with.version = file
            .strip_prefix(&format!("{name}-"))
            .and_then(|v| v.strip_suffix("-x86-64.raw"))
            .map(str::to_string);
        overrides.insert(Name::new(*name).expect("name"), with);
    }
    // What cannot be had here: K3s (server and agent), served as the
    // artifact the generated configs download (named STAND-IN wherever it
    // acts).
    for file in &standins {
        let name = file.file_name().expect("file name").to_string_lossy();
        let sha = std::fs::read_to_string(file.with_file_name(format!("{name}.sha256")))
            .expect("sha file");
        let url = format!("{mirror_url}/{name}");
        let with = Override::file(
            &url,
            &format!("sha256-{}", sha.split_whitespace().next().expect("hash")),
        )
        .expect("override");
        // build-standins names each file <artifact>-standin.
        let artifact = name.strip_suffix("-standin").expect("<artifact>-standin");
        println!("artifact {artifact}: STAND-IN from {url} (sha256 pinned)");
        overrides.insert(Name::new(artifact).expect("name"), with);
    }
    let tcg = Failover {
        // 200 ms: a backup takes over ~0.72 s after the last advert it
        // heard. 150 ms (~0.54 s) let a backup starved for a moment take
        // the VIPs while lb1 held them (lb2 MASTER for 80 ms, the client's
        // ARP entry on lb2: a 5.4 s gap in day two), as 100 ms did.
        vrrp_advert_ms: Some(200),
        // 2 s: every check of a K3s server is a TLS handshake, and at 1 s
        // the checks of both load balancers cost each API stand-in ~15 % of
        // an emulated core, the load balancers as much, on two host cores
        // the idle cloud already keeps ~95 % busy (session 11: spurious
        // VRRP takeovers by lb2 while the host was saturated).
        check_inter_ms: Some(2000),
        vrrp_rlimit_rttime_ms: Some(2000),
        track_interval_s: Some(5),
    };
    let lab_model = LabModel {
        overrides,
        failover: tcg,
    };
    let (cluster, shrunk) = lab_model.apply(&reference);
    println!("{}", cluster.summary());
    println!(
        "lab model: domain type {}, {}; memory capped at {} MiB, vCPUs at {VCPU_CAP}: {}",
        cluster.host().accelerator,
        tcg.describe().expect("stated"),
        MEMORY_CAP.0,
        shrunk.join(", ")
    );
    let bundle = Bundle::render(&cluster, &mut secrets).expect("renders");
    bundle.write_to(&bundle_dir).expect("writes the bundle");
    let configs = bundle.ignition_configs();
    let id = gen.join("id");
    std::fs::copy(
        bundle_dir
            .join("secrets")
            .join(flatcar_microcloud::admin_key::SECRET_NAME),
        &id,
    )
    .expect("admin key");
    let admin = serde_json::from_slice::<serde_json::Value>(&configs["lb1"]).expect("json")
        ["passwd"]["users"][0]["name"]
        .as_str()
        .expect("admin user")
        .to_string();

    // 3. Namespaces: the fake internet (LAN router, DHCP, mirror), the lab
    //    (KVM host), a LAN client.
    let u = unique("bl");
    let inet = Netns::new(&format!("{u}-inet"));
    let lab = Netns::new(&format!("{u}-lab"));
    let client = Netns::new(&format!("{u}-cl"));
    let lan = cluster.lan().expect("a LAN");
    let host = cluster.host();
    bridge(&lab, lan.bridge.as_str());
    veth(&lab, host.uplink.as_str(), &inet, "lan0");
    enslave(&lab, host.uplink.as_str(), lan.bridge.as_str());
    lab.addr(lan.bridge.as_str(), host.address, lan.cidr.prefix_len());
    lab.ip(&["route", "add", "default", "via", &router.to_string()]);
    lab.sysctl("net.ipv4.ip_forward", "1");
    inet.addr("lan0", router, lan.cidr.prefix_len());
    inet.ip(&["link", "set", "lo", "up"]);
    inet.ip(&["addr", "add", &format!("{mirror_addr}/32"), "dev", "lo"]);
    for net in cluster.networks().iter().filter(|n| !n.is_lan()) {
        inet.ip(&[
            "route",
            "add",
            &net.cidr.to_string(),
            "via",
            &host.address.to_string(),
        ]);
    }
    let client_addr = Ipv4Addr::new(gw[0], gw[1], gw[2], 50);
    veth(&client, "eth0", &lab, "cl0");
    enslave(&lab, "cl0", lan.bridge.as_str());
    client.addr("eth0", client_addr, lan.cidr.prefix_len());
    let dhcp = lan.dhcp.expect("the LAN has a DHCP range");
    let _httpd = inet.spawn(&[
        "busybox",
        "httpd",
        "-f",
        "-p",
        &format!("{mirror_addr}:8080"),
        "-h",
        mirror.to_str().expect("utf8"),
    ]);
    let _dnsmasq = inet.spawn(&[
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--port=0",
        "--no-resolv",
        "--interface=lan0",
        "--bind-interfaces",
        &format!("--dhcp-range={},{},10m", dhcp.start, dhcp.end),
        &format!("--dhcp-leasefile={}", work.path().join("leases").display()),
        "--pid-file=",
    ]);
    println!(
        "lab: {} (KVM host {} on {}, uplink {} → {} only), fake internet {} (LAN router {router}, DHCP {dhcp}, mirror {mirror_url}), LAN client {} ({client_addr})",
        lab.name, host.address, lan.bridge, host.uplink, inet.name, inet.name, client.name
    );

    // 4. The generated host ruleset, inside the lab only.
    let rules = bundle_dir.join("host/nftables.nft");
    lab.exec(&["nft", "-f", rules.to_str().expect("utf8")]);
    let tables =
        String::from_utf8_lossy(&lab.exec(&["nft", "list", "tables"]).stdout).replace('\n', "; ");
    println!("host ruleset applied in {} only: {tables}", lab.name);

    // 5. libvirtd in the lab; the base image in its pool; apply + Ignition.
    let mut lv = LabLibvirt::start(&lab, &work.path().join("libvirt"));
    let conn = apply::connect(&lv.uri).expect("connects");
    let t = Instant::now();
    let objects = apply::plan(&conn, &cluster).expect("plans");
    print!("{objects}");
    apply::apply(&conn, &objects).expect("applies");
    // The base image over the placeholder apply created, as a user uploads
    // the Flatcar image (the test image takes its place).
    let base = cluster.spec().image.volume_name();
    lv.virsh(&[
        "vol-upload",
        "--pool",
        host.pool.name.as_str(),
        &base,
        image.join("flatcar-test.qcow2").to_str().expect("utf8"),
    ]);
    println!("base image {base}: the test image uploaded (virsh vol-upload)");
    let ign = ignition::plan(&conn, &cluster, &configs).expect("Ignition plan");
    let uploaded = ignition::apply(&conn, &cluster, &configs, &ign).expect("uploads");
    let again = apply::plan(&conn, &cluster).expect("re-plans").changes();
    println!(
        "apply: {} change(s), {uploaded} Ignition config(s) uploaded, re-plan {again} change(s), {:.1} s",
        objects.changes(),
        t.elapsed().as_secs_f64()
    );
    phases.push((
        "model, namespaces, libvirtd, apply, Ignition upload",
        t_all.elapsed(),
    ));
    for vm in cluster.vms() {
        let xml = lv.virsh(&["dumpxml", vm.name.as_str()]);
        assert!(
            xml.contains("<domain type='qemu'"),
            "{}: domain type from the model",
            vm.name
        );
    }

    // 6. Start the VMs of BOOTED (bring-up waves, serial-console up
    //    report); the QEMU threads of VMs that are up at a higher host
    //    priority than those still booting.
    let up_stop = Arc::new(AtomicBool::new(false));
    let lbs: Vec<String> = cluster
        .with_role(Role::LoadBalancer)
        .map(|v| v.name.to_string())
        .collect();
    let up_priority = spawn_up_priority(lab.name.clone(), lbs.clone(), up_stop.clone());
    println!(
        "lab: the QEMU threads of {} run at nice {LB_NICE} (from their start), of every other VM that reported up at {UP_NICE}, booting ones at 0 (up to nine TCG guests share two cores; on a KVM host each vCPU has time of its own)",
        lbs.join(", ")
    );
    for vm in BOOTED {
        lv.logs
            .push(PathBuf::from(flatcar_libvirt::domain::console_log_path(
                cluster.vm(vm).expect("in the model"),
            )));
        lv.logs
            .push(PathBuf::from(format!("/var/log/libvirt/qemu/{vm}.log")));
    }
    // 7. The claims, over SSH from the LAN client (a LAN machine reaches
    //    the NAT networks through the KVM host, as the model routes them).
    for net in cluster.networks().iter().filter(|n| !n.is_lan()) {
        client.ip(&[
            "route",
            "add",
            &net.cidr.to_string(),
            "via",
            &host.address.to_string(),
        ]);
    }
    let ssh = |addr: Ipv4Addr, cmd: &str| -> String {
        let o = client.try_exec(&[
            "ssh",
            "-n",
            "-q",
            "-i",
            id.to_str().expect("utf8"),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=60",
            "-o",
            "BatchMode=yes",
            &format!("{admin}@{addr}"),
            cmd,
        ]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // The address the claims reach a VM at: its LAN address if it has
    // one, else its primary address.
    let reach = |name: &str| -> Ipv4Addr {
        let vm = cluster.vm(name).expect("in the model");
        cluster
            .nics(vm)
            .into_iter()
            .find(|n| n.network.name == lan.name)
            .map(|n| n.address)
            .or_else(|| vm.primary_address())
            .expect("an address")
    };
    // A VM's own claims: from its serial console, Ignition succeeded and
    // no emergency shell (read before lb1's second boot: its console log
    // starts over then); over SSH, from its own config, hostname, static
    // addresses, data disks, `systemctl --failed`, every enabled unit, the
    // API at its join URL.
    let vm_claims = |rows: &mut Rows, name: &str| {
        let vm = cluster.vm(name).expect("in the model");
        let console = std::fs::read_to_string(flatcar_libvirt::domain::console_log_path(vm))
            .unwrap_or_default();
        rows.row(
            &format!("{name}: Ignition succeeded (first boot, from fw_cfg)"),
            console.contains("flatcar-first-boot-done: Ignition succeeded"),
            "serial console",
        );
        rows.row(
            &format!("{name}: no emergency shell"),
            !console.contains("Entering emergency mode"),
            "serial console",
        );
        let config: serde_json::Value =
            serde_json::from_slice(&configs[name]).expect("Ignition JSON");
        let units = enabled_units(&config);
        let mounts: Vec<String> = vm
            .data_disks
            .iter()
            .map(|d| format!("/var/mnt/{}", d.name))
            .collect();
        // NFS shares, mounted on first use: the claim's own access mounts
        // the share through its automount point and writes to it (a hard
        // mount: SIGKILL after 30 s if the storage node does not answer).
        let automounts: Vec<&String> = units.iter().filter(|u| u.ends_with(".automount")).collect();
        let join = join_url(&bundle_dir, name);
        let script = format!(
            "echo host=$(hostname); ip -4 -o addr show | awk '{{print \"addr=\" $2 \"/\" $4}}'; \
             echo failed=$(systemctl --failed --no-legend --plain | cut -d' ' -f1 | tr '\\n' ' '); \
             for u in {units}; do echo unit=$u $(systemctl show -p LoadState -p ActiveState -p Result -p ExecMainExitTimestampMonotonic $u | tr '\\n' ' '); done; \
             for m in {mounts}; do echo mount=$m $(findmnt -n -o SOURCE,FSTYPE $m); done; \
             for a in {automounts}; do w=$(systemctl show -p Where --value $a); \
               r=$(timeout -s KILL 30 sh -c \"touch $w/.fmc-boot-lab && rm $w/.fmc-boot-lab && echo written\" 2>&1 | tr '\\n' ' '); \
               echo share=$w $(findmnt -n -o FSTYPE -T $w | tail -n 1) $r; done; \
             echo boot=$(systemd-analyze time 2>&1 | head -n 1); \
             systemd-analyze critical-chain --no-pager flatcar-microcloud-ready.service 2>/dev/null | tail -n +4 | head -n 12 | sed 's/^[^[:alnum:]@]*/chain=/'; \
             {api}",
            units = units.join(" "),
            mounts = mounts.join(" "),
            automounts = automounts
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            api = join.map_or_else(String::new, |(a, p)| format!(
                "echo api=$(curl -ksS --max-time 10 https://{a}:{p}/ping 2>&1)"
            )),
        );
        let state = ssh(reach(name), &script);
        let get = |k: &str| -> Vec<String> {
            state
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(|v| v.trim().to_string())
                .collect()
        };
        // Where the boot's time went (printed, no claim): the guest's own
        // account, and the chain of units the up report waited for (each
        // with the time it became active, "@", and its own start time, "+").
        println!(
            "{name} boot (guest's systemd-analyze): {}; the up report's critical chain: {}",
            get("boot").join(" "),
            get("chain").join(" ← ")
        );
        rows.row(
            &format!("{name}: hostname as modelled"),
            get("host") == [name.to_string()],
            &format!("{:?}", get("host")),
        );
        let addrs = get("addr");
        for nic in cluster.nics(vm) {
            let want = format!("{}/{}", nic.address, nic.prefix);
            rows.row(
                &format!("{name}: static address {want} on {}", nic.network.name),
                addrs.iter().any(|a| a.ends_with(&format!("/{want}"))),
                &addrs.join(" "),
            );
        }
        for m in get("mount") {
            let mut w = m.split_whitespace();
            let (at, source, fs) = (w.next(), w.next(), w.next());
            rows.row(
                &format!("{name}: data disk mounted at {}", at.unwrap_or("?")),
                source.is_some() && fs == Some("ext4"),
                &format!("{} {}", source.unwrap_or("not mounted"), fs.unwrap_or("")),
            );
        }
        for share in get("share") {
            // `share=WHERE FSTYPE written`
            let mut w = share.split_whitespace();
            let (at, fs) = (w.next().unwrap_or("?"), w.next().unwrap_or(""));
            rows.row(
                &format!("{name}: NFS share at {at} mounted on first use and writable"),
                fs.starts_with("nfs") && share.ends_with(" written"),
                &share,
            );
        }
        rows.row(
            &format!("{name}: systemctl --failed is empty"),
            get("failed") == [String::new()],
            &format!("{:?}", get("failed")),
        );
        for u in get("unit") {
            // `unit=NAME LoadState=… ActiveState=… Result=… ExecMain…=…`
            let mut w = u.split_whitespace();
            let unit = w.next().unwrap_or_default().to_string();
            let props: BTreeMap<&str, &str> = w.filter_map(|kv| kv.split_once('=')).collect();
            let prop = |k: &str| props.get(k).copied().unwrap_or("?");
            let (load, active, result) = (prop("LoadState"), prop("ActiveState"), prop("Result"));
            if load == "not-found" && IMAGE_GAPS.contains(&unit.as_str()) {
                rows.note(format!(
                    "{:<66} {:<4} {unit} enabled by the config; Debian 12 has no systemd-sysupdate (Flatcar ships it)",
                    format!("{name}: {unit}"),
                    "GAP"
                ));
                continue;
            }
            // A oneshot without RemainAfterExit is inactive once it ran
            // and succeeded (its main process has an exit time).
            let ran = !matches!(prop("ExecMainExitTimestampMonotonic"), "0" | "?");
            let ok = load == "loaded"
                && (active == "active" || (active == "inactive" && result == "success" && ran));
            rows.row(
                &format!("{name}: {unit} (enabled by its config) active"),
                ok,
                &format!("{load} {active} {result}"),
            );
        }
        if let Some((a, p)) = join {
            let api = get("api");
            rows.row(
                &format!("{name}: reaches the API at its join URL https://{a}:{p}"),
                api == ["pong".to_string()],
                &format!("{api:?} (GET /ping, STAND-IN K3s behind HAProxy)"),
            );
        }
    };

    // 7b. The flow matrix between real VMs (and the LAN client): every
    //     service the lab runs, tried from every single-NIC VM on another
    //     network; expected open exactly when a flow of the model admits it.
    // The flows the host ruleset is built from: the model's own (declared
    // and VIP-implied) and the services' (as the bundle renders it).
    let mut flows = cluster.flows();
    flows.extend(
        flatcar_microcloud::services::compose(&cluster, &mut secrets)
            .expect("composes")
            .flows,
    );
    // The K3s servers among the booted VMs: the API VIP's backends.
    let servers: Vec<&str> = BOOTED
        .into_iter()
        .filter(|vm| cluster.vm(vm).expect("vm").has(Role::Master))
        .collect();
    let services: Vec<matrix::Service> = BOOTED
        .iter()
        .map(|vm| (*vm, 22, "sshd"))
        .chain(servers.iter().map(|vm| (*vm, 6443, "K3s API (STAND-IN)")))
        .chain([
            ("postgresql1", 5432, "PostgreSQL"),
            ("storage1", 2049, "NFS"),
            ("infra", 53, "DNS (STAND-IN CoreDNS)"),
            ("worker1", 30080, "ingress (STAND-IN)"),
        ])
        .map(|(vm, port, what)| matrix::Service {
            vm: vm.to_string(),
            addr: reach(vm),
            port,
            what,
        })
        .collect();
    let mut sources: Vec<(String, Ipv4Addr)> = BOOTED
        .iter()
        .filter(|vm| cluster.nics(cluster.vm(vm).expect("vm")).len() == 1)
        .map(|vm| (vm.to_string(), reach(vm)))
        .collect();
    sources.push(("lan client".to_string(), client_addr));
    // The matrix rows of every source for the targets `only` keeps; the
    // counts of flows found open and closed as the model says.
    let flow_matrix = |rows: &mut Rows, only: &(dyn Fn(&matrix::Service) -> bool + Sync)| {
        // One source's rows (held) and counts of flows open and closed as
        // the model says; every source probes at once (each waits out
        // the 4 s timeouts of its closed flows), the rows in source order.
        let per_source = |src: &str, src_addr: Ipv4Addr| -> (Rows, usize, usize) {
            let mut rows = Rows::held();
            let (mut open_ok, mut closed_ok) = (0, 0);
            let targets: Vec<&matrix::Service> = services
                .iter()
                .filter(|s| only(s) && !matrix::same_network(&cluster, src_addr, s.addr))
                .collect();
            let script =
                matrix::probe_script(&targets.iter().map(|s| (s.addr, s.port)).collect::<Vec<_>>());
            let probe = || -> Vec<(Ipv4Addr, u16)> {
                let out = if src == "lan client" {
                    String::from_utf8_lossy(&client.try_exec(&["bash", "-c", &script]).stdout)
                        .into_owned()
                } else {
                    ssh(src_addr, &script)
                };
                matrix::opened(&out)
            };
            // What the model admits, per target.
            let admitted: Vec<_> = targets
                .iter()
                .map(|s| matrix::admitted(&cluster, &flows, src_addr, s.addr, s.port))
                .collect();
            let mut opened = probe();
            // A second pass when a flow the model admits did not connect: a
            // rehearsal saw infra's first two of ten parallel connects time
            // out (4 s) while the other eight went through the same gateway.
            // The union counts: a closed flow that opens in either pass fails.
            let missed = targets
                .iter()
                .zip(&admitted)
                .any(|(s, flow)| flow.is_some() && !opened.contains(&(s.addr, s.port)));
            if missed {
                let again = probe();
                rows.note(format!(
                    "flow matrix: {src}: a second probe pass (an admitted flow did not connect in the first); opened then: {again:?}"
                ));
                opened.extend(again);
            }
            for (s, flow) in targets.iter().zip(admitted) {
                let is_open = opened.contains(&(s.addr, s.port));
                let ok = is_open == flow.is_some();
                match (ok, is_open) {
                    (true, true) => open_ok += 1,
                    (true, false) => closed_ok += 1,
                    _ => {}
                }
                rows.row(
                    &format!(
                        "flow {src} → {} {}:{} {}",
                        s.vm,
                        s.addr,
                        s.port,
                        if flow.is_some() { "open" } else { "closed" }
                    ),
                    ok,
                    &format!(
                        "{} ({}); {}",
                        if is_open {
                            "connected"
                        } else {
                            "no connection"
                        },
                        s.what,
                        flow.map_or_else(|| "no flow".to_string(), |f| f.to_string())
                    ),
                );
            }
            (rows, open_ok, closed_ok)
        };
        let results: Vec<(Rows, usize, usize)> = std::thread::scope(|sc| {
            let probes: Vec<_> = sources
                .iter()
                .map(|(src, addr)| sc.spawn(|| per_source(src, *addr)))
                .collect();
            probes
                .into_iter()
                .map(|h| h.join().expect("flow matrix probe"))
                .collect()
        });
        let (mut open_ok, mut closed_ok) = (0, 0);
        for (r, o, c) in results {
            rows.merge(r);
            open_ok += o;
            closed_ok += c;
        }
        (open_ok, closed_ok)
    };

    // The boots: the waves of BOOTED, two VMs at a time. The first waves
    // boot here; the last wave boots beside lb1's second boot (after the
    // power cut below), so that two boots share the two cores instead of
    // each running alone on one.
    let waves: Vec<Vec<String>> = start::waves(&cluster)
        .into_iter()
        .map(|w| {
            w.into_iter()
                .filter(|n| BOOTED.contains(&n.as_str()))
                .collect::<Vec<_>>()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let wave_of = |vm: &str| waves.iter().position(|w| w.iter().any(|n| n == vm));
    let (last_wave, first_waves) = waves.split_last().expect("VMs to boot");
    let first: Vec<&str> = first_waves.iter().flatten().map(String::as_str).collect();
    let last: Vec<&str> = last_wave.iter().map(String::as_str).collect();
    // The failover needs both load balancers and an API server up, the
    // web VIP's check a worker: the last wave must not hold them.
    assert!(
        first.contains(&"lb1") && first.contains(&"lb2") && first.contains(&"master1"),
        "lb1, lb2 and master1 boot before the last wave"
    );
    let t = Instant::now();
    // Two boots at a time (two cores): six TCG boots at once starved each
    // other until units hit their start timeouts.
    let boot = |conn: &apply::Connect, only: &[&str], quiet: bool| -> Vec<start::Started> {
        let opts = start::Options {
            only,
            timeout: START_TIMEOUT,
            parallel: std::num::NonZeroUsize::new(PARALLEL_BOOTS),
        };
        let started = start::start_with(conn, &cluster, &opts, &mut |e| {
            if !(quiet && matches!(e, start::Event::Waiting(..))) {
                println!("  [{:>6.1} s] {e:?}", t.elapsed().as_secs_f64())
            }
        });
        started.unwrap_or_else(|e| {
            for l in &lv.logs {
                let text = std::fs::read_to_string(l).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                eprintln!(
                    "--- {}:\n{}",
                    l.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            panic!("start failed: {e}")
        })
    };
    let mut started = boot(&conn, &first, false);
    phases.push((
        "boots of the first waves (two at a time, TCG)",
        t_all.elapsed(),
    ));
    let mut rows = Rows::default();
    println!();
    println!("{:<66} {:<4} DETAIL", "CLAIM", "");
    // lb1's claims before its power cut (its second boot is not a first
    // boot, and its console log starts over).
    vm_claims(&mut rows, "lb1");

    // 8. The client reaches both VIPs; then the failover.
    let api = cluster.vip("api").expect("api VIP").address;
    let web = cluster.vip("web").expect("web VIP").address;
    let internal = cluster
        .vip("api-internal")
        .expect("api-internal VIP")
        .address;
    let wait_answer = |addr: Ipv4Addr, port: u16| -> Option<String> {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            if let Some(a) = lb_lab::connect(&client.name, addr, port, Duration::from_secs(2)) {
                return Some(a);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        None
    };
    let a = wait_answer(api, 6443);
    rows.row(
        &format!("LAN client reaches the api VIP {api}:6443"),
        a.as_deref().is_some_and(|a| servers.contains(&a)),
        &format!("answer {a:?} (a K3s server's STAND-IN behind HAProxy)"),
    );
    let mac = |name: &str, net: &str| -> String {
        let vm = cluster.vm(name).expect("vm");
        cluster
            .nics(vm)
            .into_iter()
            .find(|n| n.network.name.as_str() == net)
            .expect("nic")
            .mac
            .to_string()
    };
    let (lb1_mac, lb2_mac) = (mac("lb1", lan.name.as_str()), mac("lb2", lan.name.as_str()));
    let who = |m: &Option<String>| -> String {
        match m.as_deref() {
            Some(x) if x == lb1_mac => "lb1".into(),
            Some(x) if x == lb2_mac => "lb2".into(),
            Some(x) => x.to_string(),
            None => "-".into(),
        }
    };
    // Both LAN VIPs in the client's ARP cache.
    let _ = lb_lab::connect(&client.name, web, 80, Duration::from_secs(2));
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let t0 = Instant::now();
    let probe = spawn_probe(
        client.name.clone(),
        api,
        vec![api, web],
        stop.clone(),
        samples.clone(),
        t0,
    );
    std::thread::sleep(Duration::from_secs(3));
    let before: Vec<String> = samples
        .lock()
        .expect("log")
        .last()
        .map(|s| s.holders.iter().map(who).collect())
        .unwrap_or_default();
    rows.row(
        "before: lb1 holds both LAN VIPs",
        before == ["lb1", "lb1"],
        &format!("{before:?} (client ARP)"),
    );

    let cut = t0.elapsed();
    lv.virsh(&["destroy", "lb1"]);
    println!(
        "virsh destroy lb1 at {:.1} s (power cut)",
        cut.as_secs_f64()
    );
    let moved = support::wait_until(Duration::from_secs(30), || {
        samples
            .lock()
            .expect("log")
            .last()
            .is_some_and(|s| s.ok && s.holders.iter().all(|h| who(h) == "lb2"))
    });
    std::thread::sleep(Duration::from_secs(3));
    let (outage1, span1) = longest_outage(&samples.lock().expect("log"), cut);
    // From the power cut (the call) to the first probe that both got an
    // answer and saw lb2 as the holder of both VIPs.
    let moved_after = samples
        .lock()
        .expect("log")
        .iter()
        .find(|s| s.at >= cut && s.ok && s.holders.iter().all(|h| who(h) == "lb2"))
        .map(|s| s.at - cut);
    rows.row(
        "virsh destroy lb1: both VIPs move to lb2",
        moved.is_some(),
        &format!(
            "{:.2} s after the destroy call (client ARP + answers)",
            moved_after.unwrap_or_default().as_secs_f64()
        ),
    );
    rows.row(
        "client-visible outage (api VIP, 50 ms probes, 200/500 ms deadlines)",
        outage1 < OUTAGE_LIMIT,
        &outage_detail(outage1),
    );
    rows.note(outage_timeline(&samples.lock().expect("log"), span1, &who));
    let internal_on_lb2 = ssh(reach("lb2"), "ip -4 -o addr show");
    rows.row(
        &format!("lb2 holds api-internal {internal} too"),
        internal_on_lb2.contains(&format!(" {internal}/")),
        "lb2's addresses over SSH",
    );

    // lb1 back: its second boot (no Ignition), then preempt after the delay.
    let preempt = match cluster.vip("api").expect("api").preempt {
        flatcar_topology::Preempt::AfterSecs(s) => s,
        p => panic!("the reference preempts after a delay, not {p:?}"),
    };
    // lb1's second boot (no Ignition) takes about two minutes of one core
    // under TCG: meanwhile the other VMs' claims and the flow matrix (every
    // target but lb1) run on the other, as the cloud runs on lb2 alone.
    let (last_started, first_rows) = std::thread::scope(|s| {
        let back_t = Instant::now();
        lv.virsh(&["start", "lb1"]);
        let back_at = t0.elapsed();
        println!("virsh start lb1 at {:.1} s", back_at.as_secs_f64());
        // Beside lb1's second boot: the last wave's boots (a connection
        // of their own) and the claims of the first waves' other VMs.
        let last_boots = s.spawn(|| {
            let conn = apply::connect(&lv.uri).expect("connects");
            boot(&conn, &last, true)
        });
        let claims = s.spawn(|| {
            let mut rows = Rows::held();
            for name in first.iter().filter(|n| **n != "lb1") {
                vm_claims(&mut rows, name);
            }
            rows
        });
        let lb1_lan = reach("lb1");
        let returned = support::wait_until(START_TIMEOUT, || {
            samples
                .lock()
                .expect("log")
                .last()
                .is_some_and(|s| s.holders.iter().all(|h| who(h) == "lb1"))
        });
        println!(
            "lb1 took the VIPs back {:.0} s after its start",
            back_t.elapsed().as_secs_f64()
        );
        std::thread::sleep(Duration::from_secs(20));
        stop.store(true, Ordering::Relaxed);
        probe.join().expect("probe");
        let log = samples.lock().expect("log").clone();
        // The handback: from 2 s before the client's ARP entry moved to
        // lb1 (longer than any probe's deadline) to 3 s after. Before it,
        // lb2 serves alone beside lb1's and worker1's boots: its gaps then
        // are the saturated TCG host's, printed and bounded in a row of
        // their own.
        let handback_at = log
            .iter()
            .find(|s| s.at >= back_at && who(&s.holders[0]) == "lb1")
            .map(|s| s.at);
        let window_from =
            handback_at.map_or(back_at, |h| h.saturating_sub(HANDBACK_BEFORE).max(back_at));
        let in_window: Vec<Sample> = log
            .iter()
            .filter(|s| {
                s.at >= window_from && handback_at.is_none_or(|h| s.at <= h + HANDBACK_AFTER)
            })
            .cloned()
            .collect();
        let (outage2, span2) = longest_outage(&in_window, window_from);
        let alone: Vec<Sample> = log
            .iter()
            .filter(|s| s.at >= back_at && s.at < window_from)
            .cloned()
            .collect();
        let (busy, busy_span) = longest_outage(&alone, back_at);
        // Holder changes of the api VIP after lb1's start.
        let mut moves = Vec::new();
        let mut last: Option<String> = None;
        for s in log.iter().filter(|s| s.at >= back_at) {
            let h = who(&s.holders[0]);
            if h == "-" {
                continue;
            }
            if last.as_ref().is_some_and(|l| *l != h) {
                moves.push(format!(
                    "{}→{h} at {:.1} s",
                    last.clone().unwrap_or_default(),
                    s.at.as_secs_f64()
                ));
            }
            last = Some(h);
        }
        rows.row(
            "lb1 back: the VIPs move back to lb1 exactly once",
            returned.is_some() && moves.len() == 1,
            &moves.join(", "),
        );
        // In lb1's own clock: BACKUP at Keepalived's start, MASTER after the delay.
        let journal = ssh(
            lb1_lan,
            "sudo journalctl -b0 -u keepalived -o short-unix --no-pager | grep 'vip_api) Entering'",
        );
        let stamp = |what: &str| -> Option<f64> {
            journal
                .lines()
                .find(|l| l.contains(what))
                .and_then(|l| l.split_whitespace().next())
                .and_then(|t| t.parse().ok())
        };
        let (backup, master) = (
            stamp("Entering BACKUP STATE"),
            stamp("Entering MASTER STATE"),
        );
        let waited = backup.zip(master).map(|(b, m)| m - b);
        rows.row(
            &format!("lb1 back: not before the preempt delay ({preempt} s)"),
            waited.is_some_and(|w| w >= f64::from(preempt) - 0.1),
            &waited.map_or_else(
                || format!("no BACKUP/MASTER lines in lb1's journal: {journal:?}"),
                |w| format!("BACKUP → MASTER after {w:.1} s in lb1's journal"),
            ),
        );
        rows.row(
            "client-visible outage when lb1 takes the VIPs back",
            handback_at.is_some() && outage2 < OUTAGE_LIMIT,
            &format!(
                "{} (probes from {} s before the client's ARP moved to lb1 to {} s after)",
                outage_detail(outage2),
                HANDBACK_BEFORE.as_secs(),
                HANDBACK_AFTER.as_secs()
            ),
        );
        rows.note(outage_timeline(&in_window, span2, &who));
        rows.row(
            "lb2 alone beside lb1's and worker1's boots: longest gap",
            busy < BUSY_LIMIT,
            &format!(
                "{:.2} s (no failover: the two TCG boots saturate the host's cores; bounded at {} s)",
                busy.as_secs_f64(),
                BUSY_LIMIT.as_secs()
            ),
        );
        rows.note(outage_timeline(&alone, busy_span, &who));

        (
            last_boots.join().expect("the last wave's boots"),
            claims.join().expect("claims beside lb1's second boot"),
        )
    });
    rows.merge(first_rows);
    started.extend(last_started);
    let boot_times: Vec<String> = started
        .iter()
        .map(|s| {
            format!(
                "{} {:.0} s (wave {})",
                s.vm,
                s.took.as_secs_f64(),
                wave_of(&s.vm).map_or(0, |w| w + 1)
            )
        })
        .collect();
    println!("booted: {}", boot_times.join(", "));
    let not_booted: Vec<String> = cluster
        .vms()
        .iter()
        .filter(|v| !BOOTED.contains(&v.name.as_str()))
        .map(|v| {
            format!(
                "{} ({})",
                v.name,
                v.roles
                    .iter()
                    .map(|r| format!("{r:?}"))
                    .collect::<Vec<_>>()
                    .join("+")
            )
        })
        .collect();
    println!(
        "defined, not booted: {} — every role has a booted VM above; under TCG each further boot costs minutes of both cores",
        not_booted.join(", ")
    );
    phases.push((
        "VIPs, failover; lb1's second boot beside the last wave's boots and the first VMs' claims",
        t_all.elapsed(),
    ));

    // 9. The last wave's claims, the flow matrix (every VM up again), the
    //    web VIP (its backend, worker1, booted in the last wave).
    for name in &last {
        vm_claims(&mut rows, name);
    }
    phases.push(("the last wave's claims", t_all.elapsed()));
    let (open_ok, closed_ok) = flow_matrix(&mut rows, &|_| true);
    println!(
        "flow matrix between real VMs: {open_ok} open and {closed_ok} closed as the model says"
    );
    let w = wait_answer(web, 80);
    rows.row(
        &format!("LAN client reaches the web VIP {web}:80"),
        w.as_deref() == Some("worker1"),
        &format!("answer {w:?} (STAND-IN worker1 ingress behind HAProxy)"),
    );
    phases.push(("the flow matrix, the web VIP", t_all.elapsed()));
    let part_15 = t_all.elapsed();

    // 10. Day two on the running cloud (issue #19).
    day_two::run(
        &day_two::RunningLab {
            uri: &lv.uri,
            lab_ns: &lab,
            client_ns: &client.name,
            reference: &reference,
            model: &lab_model,
            running: &cluster,
            bundle_dir: &bundle_dir,
            image: &image,
            key: &id,
            work: &work.path().join("day-two"),
        },
        &mut rows,
    );

    phases.push((
        "day two (issue #19): add, remove, replace both LBs",
        t_all.elapsed(),
    ));
    println!();
    println!("where the time went (wall clock, this machine):");
    let mut from = Duration::ZERO;
    for (phase, end) in &phases {
        println!("  {:>6.0} s  {phase}", (*end - from).as_secs_f64());
        from = *end;
    }
    let verdict = |d: f64| {
        if d <= BUDGET_15.as_secs_f64() {
            "within"
        } else {
            "OVER"
        }
    };
    let part = part_15.as_secs_f64();
    println!(
        "issue #15's part (image step {image_s:.0} s included, before day two): {part:.0} s of its {:.0} s budget ({}); whole test {:.0} s",
        BUDGET_15.as_secs_f64(),
        verdict(part),
        t_all.elapsed().as_secs_f64()
    );
    if let (true, Some(b)) = (cached, built_s) {
        let serial = part - image_s + b;
        println!(
            "  with the image built in line instead of found cached ({b:.0} s, its manifest): {serial:.0} s ({})",
            verdict(serial)
        );
    }
    println!("boots: {}", boot_times.join(", "));
    up_stop.store(true, Ordering::Relaxed);
    up_priority.join().expect("priority thread");
    drop(conn);
    assert!(
        rows.failed.is_empty(),
        "claims failed:\n{}",
        rows.failed.join("\n")
    );
}
