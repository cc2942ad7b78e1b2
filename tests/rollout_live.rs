//! Day two, live, in network namespaces: the rollout executor
//! (`flatcar_microcloud::deploy`) changes a running load-balancing tier
//! over real SSH while a client probes both VIPs.
//!
//! The lab (test address plan, 198.18.0.0/15 only): a switch namespace
//! with the LAN and k8s bridges; the KVM host (`adm`, on both, where the
//! executor and its `ssh` run); a client on the LAN; masters and workers
//! as listeners (the K3s API stand-in and socat, as in tests/lb_live.rs);
//! and each load balancer as a "VM": its own network namespace *and* mount
//! namespace (private `/run`, `/etc/haproxy`, `/etc/keepalived`, `/opt`),
//! provisioned from the files of its composed Ignition node, running the
//! real sshd (authorizing the model's admin key), HAProxy and Keepalived.
//!
//! Stand-ins, named where they act: systemd (a `systemctl` script that
//! starts, stops, reloads and reports the units as their unit files do),
//! the VM recreate (every process of the VM's namespaces is killed, its
//! files are provisioned again from the new composition, sshd gets new host
//! keys, its units start again: what a fresh root disk + Ignition does),
//! K3s (cordon/drain/uncordon: a drain stops the node's workload), the KVM
//! host's ruleset (proven in tests/host_live.rs). The lab logs in as root
//! (this machine has no `core` user); on a VM the same scripts run through
//! `sudo -n`.
//!
//! Phases: (1) add worker4 to the model: the plan says lb1/lb2 live and
//! worker4 create; the executor creates worker4, pushes HAProxy's config to
//! both LBs over SSH, checks and reloads it; web traffic reaches worker4;
//! zero failed requests. (2) remove it: pushes first, then the drain
//! (stand-in), then the remove; zero failed requests. (3) a first-boot
//! change of both LBs (a Flatcar upgrade): rolling replacement, one LB at a
//! time, each only after the other holds the VIPs; the longest outage of
//! either VIP stays under 1 s.

#[path = "support/lb_lab.rs"]
mod lb_lab;
mod support;

use flatcar_microcloud::change::{classify, Changes};
use flatcar_microcloud::deploy::{
    execute, BoxError, Event, Machines, Nodes, OpenSsh, Options, Remote, Target,
};
use flatcar_microcloud::reference::{cluster_for, AddressPlan};
use flatcar_microcloud::{admin_key, services, Error};
use flatcar_topology::change::VmChange;
use flatcar_topology::provision::{Composed, Contents, MemorySecrets};
use flatcar_topology::rollout::{Rollout, Step};
use flatcar_topology::{Channel, Cluster, FlatcarVersion, OsImage, Role};
use lb_lab::{enter_netns, request, spawn_backends};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// The directories of a lab VM that are its own (bind-mounted over the
/// machine's in the VM's mount namespace); provisioned files elsewhere are
/// not written (the lab VM runs only the LB tier and sshd).
const PRIVATE: [&str; 3] = ["/etc/haproxy", "/etc/keepalived", "/opt"];

/// Stand-in for systemd's `systemctl` (a network namespace has no systemd):
/// starts, stops, reloads and reports the load balancer's units as their
/// unit files do — HAProxy in master-worker mode (reload: check, then
/// SIGUSR2 to the master), Keepalived VRRP-only (reload: SIGHUP; stop:
/// SIGTERM, which sends priority 0 and releases the VIPs), the generated
/// HAProxy watcher. `@LOG@` is the VM's log directory.
const SYSTEMCTL: &str = r#"#!/bin/sh
# systemctl stand-in (namespace lab): no systemd in a network namespace.
set -u
LOG=@LOG@
q=0
cmd=$1; shift
if [ "${1:-}" = --quiet ]; then q=1; shift; fi
unit=${1:-}
pidfile() {
  case "$1" in
  haproxy.service) echo /run/haproxy/haproxy.pid ;;
  keepalived.service) echo /run/keepalived.pid ;;
  haproxy-watch.service) echo /run/haproxy-watch.pid ;;
  *) echo /nonexistent ;;
  esac
}
pid() { cat "$(pidfile "$1")" 2>/dev/null; }
alive() {
  p=$(pid "$1") || return 1
  [ -n "$p" ] || return 1
  s=$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$p/stat" 2>/dev/null) || return 1
  [ -n "$s" ] && [ "$s" != Z ]
}
waitfor() { i=0; until "$@"; do sleep 0.02; i=$((i+1)); [ $i -lt 500 ] || return 1; done; }
echo "$(date +%T.%N) systemctl $cmd $unit" >> "$LOG/systemctl.log"
case "$cmd" in
start)
  case "$unit" in
  haproxy.service)
    mkdir -p /run/haproxy
    setsid nice -n -10 haproxy -W -db -f /etc/haproxy/haproxy.cfg </dev/null >>"$LOG/haproxy.log" 2>&1 &
    waitfor alive haproxy.service && waitfor test -S /run/haproxy/admin.sock ;;
  haproxy-watch.service)
    setsid sh /opt/bin/haproxy-watch </dev/null >>"$LOG/watch.log" 2>&1 &
    echo $! > /run/haproxy-watch.pid
    waitfor test -s /run/haproxy/down ;;
  keepalived.service)
    setsid keepalived --dont-fork --log-console --vrrp -f /etc/keepalived/keepalived.conf \
      -p /run/keepalived.pid -r /run/vrrp.pid -c /run/checkers.pid -b /run/bfd.pid \
      </dev/null >>"$LOG/keepalived.log" 2>&1 &
    waitfor alive keepalived.service ;;
  *) echo "systemctl stand-in: no unit $unit" >&2; exit 5 ;;
  esac ;;
reload)
  case "$unit" in
  haproxy.service) haproxy -c -q -f /etc/haproxy/haproxy.cfg && kill -USR2 "$(pid haproxy.service)" ;;
  keepalived.service) kill -HUP "$(pid keepalived.service)" ;;
  *) echo "systemctl stand-in: cannot reload $unit" >&2; exit 1 ;;
  esac ;;
stop)
  p=$(pid "$unit") || exit 0
  kill -TERM "$p" 2>/dev/null
  waitfor eval '! alive "$unit"' ;;
is-active)
  if alive "$unit"; then [ $q = 1 ] || echo active; exit 0; fi
  [ $q = 1 ] || echo inactive
  exit 3 ;;
*) echo "systemctl stand-in: $cmd not supported" >&2; exit 1 ;;
esac
"#;

/// A lab VM: its network namespace (processes, links) and its files.
struct LabVm {
    ns: Netns,
    root: PathBuf,
    /// The init process (mount namespace, units, then sshd); with the
    /// backends' listeners for a worker.
    daemons: Vec<Daemon>,
    /// Pids of its workload (a worker's web listeners), for the drain.
    workload: Vec<u32>,
    boots: u32,
}

/// The lab. Dropping it kills every process and deletes every namespace.
struct Lab {
    vms: BTreeMap<String, LabVm>,
    backends: Vec<(String, Netns, Vec<Daemon>)>,
    client: Netns,
    adm: Netns,
    sw: Netns,
    prefix: String,
    /// The model the machines are created/replaced from, and its files.
    cluster: Cluster,
    composed: Composed,
    log: Vec<String>,
    tmp: TempDir,
}

impl Lab {
    fn attach(&self, ns: &Netns, vm: &flatcar_topology::Vm) {
        for nic in self.cluster.nics(vm) {
            let port = format!("{}{}", short(vm.name.as_str()), nic.index);
            veth(ns, nic.ifname.as_str(), &self.sw, &port);
            let br = if nic.network.name.as_str() == "lan" {
                "brlan"
            } else {
                "brk8s"
            };
            enslave(&self.sw, &port, br);
            ns.addr(nic.ifname.as_str(), nic.address, nic.prefix);
        }
    }

    /// Writes the VM's files from its composed node and starts its init:
    /// a private mount namespace, the units, the ready mark, then sshd.
    fn boot(&mut self, name: &str) {
        let node = self.composed.nodes.get(name).expect("composed node");
        let vm = self.vms.get_mut(name).expect("lab vm");
        vm.boots += 1;
        let root = vm.root.clone();
        let _ = std::fs::remove_dir_all(&root);
        for d in ["etc/haproxy", "etc/keepalived", "opt/bin", "ssh", "log"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        for (path, f) in &node.files {
            if !PRIVATE.iter().any(|p| path.starts_with(&format!("{p}/"))) {
                continue;
            }
            let Contents::Inline(bytes) = &f.contents else {
                continue;
            };
            let dst = root.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
            std::fs::write(&dst, bytes).expect("write");
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(f.mode)).expect("chmod");
        }
        for (k, v) in &node.sysctls {
            vm.ns.sysctl(k, v);
        }
        std::fs::write(
            root.join("ssh/authorized_keys"),
            node.ssh_keys.join("\n") + "\n",
        )
        .expect("keys");
        let c = self.cluster.vm(name).expect("vm");
        let addr = self.cluster.nics(c)[0].address;
        let sshd = format!(
            "ListenAddress {addr}\nHostKey {r}/ssh/host_key\nAuthorizedKeysFile {r}/ssh/authorized_keys\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nStrictModes no\nPidFile /run/sshd.pid\n",
            r = root.display()
        );
        std::fs::write(root.join("ssh/sshd_config"), sshd).expect("sshd_config");
        let ctl = root.join("systemctl");
        std::fs::write(
            &ctl,
            SYSTEMCTL.replace("@LOG@", &root.join("log").display().to_string()),
        )
        .expect("systemctl");
        std::fs::set_permissions(&ctl, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut units = Vec::new();
        if node.files.contains_key("/etc/haproxy/haproxy.cfg") {
            units.push("haproxy.service");
        }
        if node.files.contains_key(flatcar_lb::haproxy::WATCH_SCRIPT) {
            units.push("haproxy-watch.service");
        }
        if node.files.contains_key("/etc/keepalived/keepalived.conf") {
            units.push("keepalived.service");
        }
        let r = root.display();
        let mut init = format!(
            "set -e\nmount -t tmpfs tmpfs /run\nmkdir -p /run/sshd\n\
             mount --bind {r}/etc/haproxy /etc/haproxy\nmount --bind {r}/etc/keepalived /etc/keepalived\n\
             mount --bind {r}/opt /opt\nmount --bind {r}/systemctl /usr/bin/systemctl\n\
             ssh-keygen -q -t ed25519 -N '' -f {r}/ssh/host_key\n"
        );
        for u in units {
            init.push_str(&format!("systemctl start {u}\n"));
        }
        // The serial console's ready line, as a file.
        init.push_str(&format!(
            "echo up > {r}/ready\nexec /usr/sbin/sshd -D -e -f {r}/ssh/sshd_config\n"
        ));
        std::fs::write(root.join("init"), init).expect("init");
        let d = vm.ns.spawn_private_mounts(
            &format!("exec sh {}", root.join("init").display()),
            &root.with_extension("log"),
        );
        vm.daemons.push(d);
    }

    fn new_vm(&mut self, name: &str) {
        let ns = Netns::new(&format!("{}{}", self.prefix, short(name)));
        let vm = self.cluster.vm(name).expect("vm").clone();
        self.attach(&ns, &vm);
        let mut daemons = Vec::new();
        if vm.has(Role::Master) || vm.has(Role::Worker) {
            daemons = spawn_backends(&self.cluster, &vm, &ns);
        }
        let workload = daemons.iter().filter_map(Daemon::pid).collect();
        let root = self.tmp.path().join(name);
        self.vms.insert(
            name.to_string(),
            LabVm {
                ns,
                root,
                daemons,
                workload,
                boots: 0,
            },
        );
        self.boot(name);
    }

    fn note(&mut self, s: String) {
        println!("    {s}");
        self.log.push(s);
    }
}

/// Interface names must stay short (15 bytes).
fn short(name: &str) -> String {
    name.replace("worker", "w").replace("master", "m")
}

impl Machines for Lab {
    fn host(&mut self) -> Result<(), BoxError> {
        self.note("host: stand-in: the KVM host's ruleset is not on this lab's path (tests/host_live.rs applies it)".into());
        Ok(())
    }
    fn create(&mut self, vm: &str) -> Result<(), BoxError> {
        self.new_vm(vm);
        self.note(format!("create {vm}: new namespace, its NICs on the bridges, provisioned from its Ignition node, booted (stand-in for starting its domain)"));
        Ok(())
    }
    fn wait_ready(&mut self, vm: &str) -> Result<(), BoxError> {
        let ready = self.vms.get(vm).ok_or("no such lab VM")?.root.join("ready");
        wait_until(Duration::from_secs(30), || ready.exists())
            .map(|_| ())
            .ok_or_else(|| format!("{vm} did not report ready").into())
    }
    fn replace(&mut self, vm: &str) -> Result<(), BoxError> {
        let v = self.vms.get_mut(vm).ok_or("no such lab VM")?;
        v.ns.kill_all();
        for mut d in v.daemons.drain(..) {
            d.kill();
        }
        self.boot(vm);
        let boots = self.vms[vm].boots;
        self.note(format!("replace {vm}: stand-in for the VM recreate: every process killed, files provisioned again from the new model, new SSH host key, units started (boot {boots})"));
        Ok(())
    }
    fn remove(&mut self, vm: &str) -> Result<(), BoxError> {
        self.vms.remove(vm).ok_or("no such lab VM")?;
        self.note(format!(
            "remove {vm}: namespace and processes deleted (stand-in for undefining its domain)"
        ));
        Ok(())
    }
}

/// K3s stand-in: cordon/uncordon are recorded; a drain stops the node's
/// workload (its web listeners), as evicting its pods would.
struct K3sStandin {
    /// Node → pids of its workload.
    workloads: BTreeMap<String, Vec<u32>>,
    log: Vec<String>,
}

impl Nodes for K3sStandin {
    fn cordon(&mut self, node: &str) -> Result<(), BoxError> {
        let s = format!("cordon {node}: stand-in for `k3s kubectl cordon` (K3s cannot run here)");
        println!("    {s}");
        self.log.push(s);
        Ok(())
    }
    fn drain(&mut self, node: &str) -> Result<(), BoxError> {
        let pids = self
            .workloads
            .remove(node)
            .ok_or("no workload known on that node")?;
        for pid in &pids {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        let s = format!("drain {node}: stand-in for `k3s kubectl drain` (K3s cannot run here): its workload (web listeners) stopped");
        println!("    {s}");
        self.log.push(s);
        Ok(())
    }
    fn uncordon(&mut self, node: &str) -> Result<(), BoxError> {
        let s = format!("uncordon {node}: stand-in for `k3s kubectl uncordon`");
        println!("    {s}");
        self.log.push(s);
        Ok(())
    }
}

/// The lab logs in as root (no `core` user on this machine): the same
/// scripts, without `sudo -n`.
struct AsRoot(OpenSsh);

impl Remote for AsRoot {
    fn run(&mut self, t: &Target, script: &str, stdin: &[u8]) -> Result<String, Error> {
        let t = Target {
            user: "root".into(),
            ..t.clone()
        };
        let t0 = Instant::now();
        let r = self.0.run(&t, script, stdin);
        println!(
            "      ssh {} [{:.0} ms] {script}",
            t.vm,
            t0.elapsed().as_secs_f64() * 1e3
        );
        r
    }
    fn forget(&mut self, t: &Target) -> Result<(), Error> {
        self.0.forget(t)
    }
}

/// One request's outcome.
struct Rec {
    vip: &'static str,
    phase: usize,
    end: Instant,
    answer: Result<String, String>,
}

/// A probe's connect timeout: a SYN lost in a VIP move is retried by the
/// next request, not by the kernel 1 s later.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// A probe's budget for the answer (answers take a few ms): a connection
/// cut by a VIP move is given up after this, as a client with a deadline
/// and a retry would, instead of stalling the probe.
const ANSWER_TIMEOUT: Duration = Duration::from_millis(500);

/// The pause between two requests of a probe (~40 requests/s per VIP: the
/// lab shares two cores with everything else).
const PROBE_EVERY: Duration = Duration::from_millis(20);

/// Clients on both VIPs (api:6443 → a master, web:80 → a worker), one
/// request after another ([`PROBE_EVERY`] apart) per VIP, from the client
/// namespace, each with [`CONNECT_TIMEOUT`] and [`ANSWER_TIMEOUT`].
struct Prober {
    t0: Instant,
    stop: Arc<AtomicBool>,
    phase: Arc<AtomicUsize>,
    recs: Arc<Mutex<Vec<Rec>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Prober {
    fn start(client: &str, api: Ipv4Addr, web: Ipv4Addr, t0: Instant) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(AtomicUsize::new(0));
        let recs = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for (vip, addr, port, want) in [("api", api, 6443, "master"), ("web", web, 80, "worker")] {
            let (stop, phase, recs, ns) = (
                stop.clone(),
                phase.clone(),
                recs.clone(),
                client.to_string(),
            );
            threads.push(std::thread::spawn(move || {
                enter_netns(&ns);
                while !stop.load(Ordering::Relaxed) {
                    let p = phase.load(Ordering::Relaxed);
                    let got = request(addr, port, CONNECT_TIMEOUT, ANSWER_TIMEOUT);
                    let answer = match got {
                        Ok(t) if t.trim().starts_with(want) => Ok(t.trim().to_string()),
                        Ok(t) => Err(format!("unexpected answer {t:?}")),
                        Err(e) => Err(e),
                    };
                    recs.lock().expect("lock").push(Rec {
                        vip,
                        phase: p,
                        end: Instant::now(),
                        answer,
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

    /// Per VIP in `phase`: (answered, failed, longest time between two
    /// answers, first failures, answering backends).
    fn stats(&self, phase: usize, vip: &str) -> (usize, usize, Duration, Vec<String>, Vec<String>) {
        let recs = self.recs.lock().expect("lock");
        let mut ok = 0;
        let mut failed = Vec::new();
        let mut gap = Duration::ZERO;
        let mut last: Option<Instant> = None;
        let mut seen = std::collections::BTreeSet::new();
        for r in recs.iter().filter(|r| r.vip == vip && r.phase == phase) {
            match &r.answer {
                Ok(name) => {
                    ok += 1;
                    seen.insert(name.clone());
                    if let Some(l) = last {
                        gap = gap.max(r.end - l);
                    }
                    last = Some(r.end);
                }
                Err(e) => failed.push(format!(
                    "{e} at +{:.2} s",
                    r.end.duration_since(self.t0).as_secs_f64()
                )),
            }
        }
        let n = failed.len();
        failed.truncate(5);
        (ok, n, gap, failed, seen.into_iter().collect())
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

/// Keeps the steps of VMs this lab has (the LB tier and worker4); prints
/// the others (DNS, NFS, PostgreSQL pushes: the fast tier checks them).
fn lab_steps(rollout: &Rollout, lab_vms: &[&str]) -> Rollout {
    let mut kept = Rollout::default();
    for s in &rollout.steps {
        let vm = match s {
            Step::Host => None,
            Step::Create { vm }
            | Step::WaitReady { vm }
            | Step::Cordon { vm }
            | Step::Drain { vm }
            | Step::Uncordon { vm }
            | Step::Push { vm, .. }
            | Step::Replace { vm, .. }
            | Step::Remove { vm } => Some(vm.as_str()),
            Step::HandOver { from, .. } => Some(from.as_str()),
            _ => None,
        };
        if vm.is_none_or(|v| lab_vms.contains(&v)) {
            kept.steps.push(s.clone());
        } else {
            println!("    not in this lab (no such VM here): {s}");
        }
    }
    kept
}

fn run_rollout(
    lab: &mut Lab,
    nodes: &mut K3sStandin,
    ssh: &mut AsRoot,
    old: &Cluster,
    new: &Cluster,
    rollout: &Rollout,
    t_test: Instant,
) -> Duration {
    let adm = lab.adm.name.clone();
    let composed = services::compose(new, &mut MemorySecrets::default()).expect("composes");
    lab.cluster = new.clone();
    lab.composed = services::compose(new, &mut MemorySecrets::default()).expect("composes");
    let options = Options {
        handover: Duration::from_secs(10),
        ssh_ready: Duration::from_secs(20),
        poll: Duration::from_millis(20),
    };
    let t0 = Instant::now();
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            // The executor and its ssh run on the KVM host (adm).
            enter_netns(&adm);
            execute(
                rollout,
                old,
                new,
                &composed,
                ssh,
                lab,
                nodes,
                &options,
                &mut |e| {
                    if let Event::Done(i, step, took) = e {
                        println!(
                            "  {:>3}. {step}  [{:.0} ms, done at +{:.2} s]",
                            i + 1,
                            took.as_secs_f64() * 1e3,
                            t_test.elapsed().as_secs_f64()
                        );
                    }
                },
            )
        })
        .join()
        .expect("executor thread")
    });
    if let Err(e) = &r {
        let mut chain = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            chain.push_str(&format!(": {s}"));
            src = s.source();
        }
        panic!("rollout failed: {chain}");
    }
    t0.elapsed()
}

/// Whether `addr` is configured in namespace `ns` (a VIP holder).
fn holds_in(ns: &str, addr: Ipv4Addr) -> bool {
    std::process::Command::new("ip")
        .args(["-n", ns, "-4", "-o", "addr", "show"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(" {addr}/")))
}

fn label(c: &Changes, vm: &str) -> &'static str {
    c.vms.get(vm).map_or("none", VmChange::label)
}

fn row(claim: &str, measured: String) {
    println!("ROW | {claim:<62} | {measured}");
}

#[test]
fn add_remove_worker4_and_replace_both_lbs_over_ssh_under_a_probing_client() {
    let t_test = Instant::now();
    for t in [
        "haproxy",
        "keepalived",
        "socat",
        "python3",
        "openssl",
        "ssh",
        "ssh-keygen",
        "unshare",
        "/usr/sbin/sshd",
    ] {
        require(t);
    }
    let tmp = TempDir::new("roll");
    // The admin key pair, as the example generates it; ssh uses it as is.
    let private = admin_key::generate("admin@lab").expect("key");
    let public = admin_key::public_key(&private).expect("public key");
    let key = tmp.path().join("admin-ssh-ed25519");
    std::fs::write(&key, private.expose()).expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let old = cluster_for(&AddressPlan::test(), &[public.as_str()]).expect("valid");
    let api = old.vip("api").expect("api").address;
    let web = old.vip("web").expect("web").address;

    let prefix = unique("r");
    let sw = Netns::new(&format!("{prefix}sw"));
    bridge(&sw, "brlan");
    bridge(&sw, "brk8s");
    let adm = Netns::new(&format!("{prefix}adm"));
    veth(&adm, "eth0", &sw, "adm0");
    enslave(&sw, "adm0", "brlan");
    adm.addr("eth0", Ipv4Addr::new(198, 18, 0, 40), 24);
    veth(&adm, "eth1", &sw, "adm1");
    enslave(&sw, "adm1", "brk8s");
    adm.addr("eth1", Ipv4Addr::new(198, 18, 4, 1), 24);
    let client = Netns::new(&format!("{prefix}cl"));
    veth(&client, "eth0", &sw, "cl0");
    enslave(&sw, "cl0", "brlan");
    client.addr("eth0", lb_lab::CLIENT.parse().expect("ip"), 24);
    let composed = services::compose(&old, &mut MemorySecrets::default()).expect("composes");
    let mut lab = Lab {
        vms: BTreeMap::new(),
        backends: Vec::new(),
        client,
        adm,
        sw,
        prefix: prefix.clone(),
        cluster: old.clone(),
        composed,
        log: Vec::new(),
        tmp,
    };
    // The running cloud from the unchanged model: backends, then the LBs.
    let vms: Vec<flatcar_topology::Vm> = old.vms().to_vec();
    for vm in vms
        .iter()
        .filter(|v| v.has(Role::Master) || v.has(Role::Worker))
    {
        let ns = Netns::new(&format!("{prefix}{}", short(vm.name.as_str())));
        lab.attach(&ns, vm);
        let d = spawn_backends(&old, vm, &ns);
        lab.backends.push((vm.name.to_string(), ns, d));
    }
    for lb in ["lb1", "lb2"] {
        lab.new_vm(lb);
    }
    let lb_ns: Vec<String> = ["lb1", "lb2"]
        .iter()
        .map(|n| lab.vms[*n].ns.name.clone())
        .collect();
    let vips_on = |i: usize| holds_in(&lb_ns[i], api) && holds_in(&lb_ns[i], web);
    wait_until(Duration::from_secs(20), || vips_on(0)).unwrap_or_else(|| {
        panic!(
            "lb1 holds both VIPs; init log: {}",
            std::fs::read_to_string(lab.vms["lb1"].root.with_extension("log")).unwrap_or_default()
        )
    });
    let client_ns = lab.client.name.clone();
    wait_until(Duration::from_secs(10), || {
        lb_lab::connect(&client_ns, web, 80, Duration::from_millis(300)).is_some()
            && lb_lab::connect(&client_ns, api, 6443, Duration::from_millis(300)).is_some()
    })
    .expect("both VIPs answer");
    println!("lab up in {:.1} s", t_test.elapsed().as_secs_f64());

    let mut ssh = AsRoot(
        OpenSsh::new(key.clone(), lab.tmp.path().join("known_hosts"))
            .reuse_connections(lab.tmp.path().join("ssh-mux"))
            .expect("mux dir"),
    );
    let mut nodes = K3sStandin {
        workloads: BTreeMap::new(),
        log: Vec::new(),
    };
    let prober = Prober::start(&client_ns, api, web, t_test);
    std::thread::sleep(Duration::from_millis(500));
    let mut rows = Vec::new();

    // Phase 1: add worker4.
    prober.phase.store(1, Ordering::Relaxed);
    let new = with_worker4(&old);
    let changes = classify(&old, &new, &mut MemorySecrets::default()).expect("classifies");
    print!("{changes}");
    let plan_ok = label(&changes, "lb1") == "live"
        && label(&changes, "lb2") == "live"
        && label(&changes, "worker4") == "create";
    rows.push((
        "plan: lb1 and lb2 live (HAProxy), worker4 create".to_string(),
        format!(
            "lb1 {}, lb2 {}, worker4 {}",
            label(&changes, "lb1"),
            label(&changes, "lb2"),
            label(&changes, "worker4")
        ),
        plan_ok,
    ));
    let rollout = lab_steps(&changes.rollout(&old, &new), &["lb1", "lb2", "worker4"]);
    println!("phase 1: add worker4");
    let took1 = run_rollout(&mut lab, &mut nodes, &mut ssh, &old, &new, &rollout, t_test);
    // worker4's workload, for the drain stand-in.
    nodes
        .workloads
        .insert("worker4".into(), lab.vms["worker4"].workload.clone());
    // The pushed file is the new model's, with its Ignition mode.
    let want = match &lab.composed.nodes["lb1"].files["/etc/haproxy/haproxy.cfg"].contents {
        Contents::Inline(b) => b.clone(),
        _ => panic!("inline"),
    };
    let cfg = lab.vms["lb1"].root.join("etc/haproxy/haproxy.cfg");
    let got = std::fs::read(&cfg).expect("pushed cfg");
    let mode = std::fs::metadata(&cfg).expect("meta").permissions().mode() & 0o7777;
    rows.push((
        "push: lb1's haproxy.cfg is the new model's, mode 0644".into(),
        format!(
            "{} bytes, identical {}, mode {mode:o}",
            got.len(),
            got == want
        ),
        got == want && mode == 0o644,
    ));
    let reached = wait_until(Duration::from_secs(5), || {
        prober.stats(1, "web").4.iter().any(|w| w == "worker4")
    })
    .is_some();
    std::thread::sleep(Duration::from_millis(300));
    let (web_ok, web_fail, web_gap, web_err, seen) = prober.stats(1, "web");
    let (api_ok, api_fail, api_gap, api_err, _) = prober.stats(1, "api");
    rows.push((
        "add: web traffic reaches worker4 through the VIP".into(),
        format!("backends answering: {}", seen.join(", ")),
        reached,
    ));
    rows.push((
        "add: zero failed requests on both VIPs throughout".into(),
        format!(
            "web {web_ok} ok / {web_fail} failed (longest gap {:.0} ms), api {api_ok} ok / {api_fail} failed (longest gap {:.0} ms), rollout {:.1} s {web_err:?} {api_err:?}",
            web_gap.as_secs_f64() * 1e3,
            api_gap.as_secs_f64() * 1e3,
            took1.as_secs_f64()
        ),
        web_fail == 0 && api_fail == 0 && web_ok > 0 && api_ok > 0,
    ));

    // Phase 2: remove worker4.
    prober.phase.store(2, Ordering::Relaxed);
    let back = classify(&new, &old, &mut MemorySecrets::default()).expect("classifies");
    print!("{back}");
    let rollout = lab_steps(&back.rollout(&new, &old), &["lb1", "lb2", "worker4"]);
    println!("phase 2: remove worker4");
    let took2 = run_rollout(&mut lab, &mut nodes, &mut ssh, &new, &old, &rollout, t_test);
    std::thread::sleep(Duration::from_millis(300));
    let text = rollout.to_string();
    let order = |a: &str, b: &str| match (text.find(a), text.find(b)) {
        (Some(x), Some(y)) => x < y,
        _ => false,
    };
    rows.push((
        "remove: pushes, then drain (stand-in), then remove".into(),
        nodes.log.join("; "),
        order("push      lb2", "drain     worker4")
            && order("drain     worker4", "remove    worker4"),
    ));
    let (web_ok, web_fail, web_gap, web_err, _) = prober.stats(2, "web");
    let (api_ok, api_fail, api_gap, api_err, _) = prober.stats(2, "api");
    // After the remove, worker4 no longer answers.
    prober.phase.store(3, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    let after = prober.stats(3, "web").4;
    rows.push((
        "remove: zero failed requests; worker4 gone from the rotation".into(),
        format!(
            "web {web_ok} ok / {web_fail} failed (longest gap {:.0} ms), api {api_ok} ok / {api_fail} failed (longest gap {:.0} ms), rollout {:.1} s; answering after: {} {web_err:?} {api_err:?}",
            web_gap.as_secs_f64() * 1e3,
            api_gap.as_secs_f64() * 1e3,
            took2.as_secs_f64(),
            after.join(", ")
        ),
        web_fail == 0 && api_fail == 0 && !after.iter().any(|w| w == "worker4"),
    ));

    // Phase 3: a first-boot change of both LBs (their Flatcar version).
    prober.phase.store(4, Ordering::Relaxed);
    let mut spec = old.clone().into_spec();
    for vm in spec.vms.iter_mut().filter(|v| v.has(Role::LoadBalancer)) {
        vm.image = Some(OsImage {
            channel: Channel::Stable,
            version: FlatcarVersion::new("4152.2.0").expect("version"),
        });
    }
    let upgraded = Cluster::try_from(spec).expect("valid");
    let changes = classify(&old, &upgraded, &mut MemorySecrets::default()).expect("classifies");
    print!("{changes}");
    let rollout = lab_steps(&changes.rollout(&old, &upgraded), &["lb1", "lb2"]);
    println!("phase 3: rolling replacement of both load balancers");
    print!("{rollout}");
    let took3 = run_rollout(
        &mut lab, &mut nodes, &mut ssh, &old, &upgraded, &rollout, t_test,
    );
    // lb1 is back; after its preempt delay it takes the VIPs back: the
    // client keeps probing through that move too.
    let back_on_lb1 = wait_until(Duration::from_secs(20), || vips_on(0)).is_some();
    if !back_on_lb1 {
        for lb in ["lb1", "lb2"] {
            let log = std::fs::read_to_string(lab.vms[lb].root.join("log/keepalived.log"))
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            println!(
                "{lb} keepalived.log (last lines, newest first):\n{}",
                tail.join("\n")
            );
        }
        println!(
            "holders: lb1 {} {}, lb2 {} {}",
            holds_in(&lb_ns[0], api),
            holds_in(&lb_ns[0], web),
            holds_in(&lb_ns[1], api),
            holds_in(&lb_ns[1], web)
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let (web_ok, web_fail, web_gap, web_err, _) = prober.stats(4, "web");
    let (api_ok, api_fail, api_gap, api_err, _) = prober.stats(4, "api");
    let steps = rollout.to_string();
    let one_at_a_time = matches!(
        (
            steps.find("handover  api, api-internal, web from lb2 to lb1"),
            steps.find("replace   lb2"),
            steps.find("wait      lb2 ready"),
            steps.find("handover  api, api-internal, web from lb1 to lb2"),
            steps.find("replace   lb1"),
        ),
        (Some(a), Some(b), Some(c), Some(d), Some(e)) if a < b && b < c && c < d && d < e
    );
    rows.push((
        "replace: plan lb1, lb2 replace (Flatcar upgrade), one at a time".into(),
        format!(
            "lb1 {}, lb2 {}; handover before each, lb2 ready before lb1 goes: {one_at_a_time}",
            label(&changes, "lb1"),
            label(&changes, "lb2")
        ),
        label(&changes, "lb1") == "replace" && label(&changes, "lb2") == "replace" && one_at_a_time,
    ));
    let boots: Vec<u32> = ["lb1", "lb2"].iter().map(|n| lab.vms[*n].boots).collect();
    rows.push((
        "replace: both LBs recreated (stand-in), new host keys accepted".into(),
        format!(
            "boots lb1 {}, lb2 {}; rollout {:.1} s",
            boots[0],
            boots[1],
            took3.as_secs_f64()
        ),
        boots == [2, 2],
    ));
    let worst = web_gap.max(api_gap);
    rows.push((
        "replace: client's longest outage < 1 s".into(),
        format!(
            "longest gap web {:.0} ms, api {:.0} ms; web {web_ok} ok / {web_fail} failed, api {api_ok} ok / {api_fail} failed; VIPs back on lb1 after its preempt delay (not a claim): {back_on_lb1} {web_err:?} {api_err:?}",
            web_gap.as_secs_f64() * 1e3,
            api_gap.as_secs_f64() * 1e3
        ),
        worst < Duration::from_secs(1) && web_ok > 0 && api_ok > 0,
    ));
    drop(prober);
    ssh.0.close();
    println!();
    for (claim, measured, ok) in &rows {
        row(
            &format!("{} {claim}", if *ok { "PASS" } else { "FAIL" }),
            measured.clone(),
        );
    }
    println!("test time {:.1} s", t_test.elapsed().as_secs_f64());
    let failed: Vec<&String> = rows.iter().filter(|r| !r.2).map(|r| &r.0).collect();
    if !failed.is_empty() {
        // HAProxy's session log (tcplog): sessions that did not end normally
        // (termination state other than `--`) and state changes.
        for lb in ["lb1", "lb2"] {
            let log = std::fs::read_to_string(lab.vms[lb].root.join("log/haproxy.log"))
                .unwrap_or_default();
            let odd: Vec<&str> = log.lines().filter(|l| !l.contains(" -- ")).collect();
            println!(
                "{lb} haproxy.log, sessions not ended normally ({}):",
                odd.len()
            );
            for l in odd.iter().rev().take(20) {
                println!("  {l}");
            }
        }
    }
    assert!(failed.is_empty(), "failed claims: {failed:?}");
}
