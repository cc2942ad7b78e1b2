//! Live (feature `live`, root): the reference cloud over three KVM hosts
//! loses one whole host, and stays up (issue 17, item 5).
//!
//! The lab, in network namespaces on the test address plan
//! (198.18.0.0/15 only):
//! - a LAN switch (a bridge in a namespace of its own) and a LAN client;
//! - three "hosts", each a namespace with its uplink enslaved to its LAN
//!   bridge (the host's LAN address on it), the real `systemd-networkd`
//!   (private mount namespace) creating the spanning networks' bridges,
//!   anycast gateways and VXLAN ports from the host's generated
//!   `hosts/<host>/network/` files, and the host's generated nftables
//!   ruleset;
//! - the VMs the library placed on each host (`multi_host::three_hosts_with`,
//!   no `.on()`), each a namespace with its NICs on its host's bridges
//!   (veths standing in for libvirt's taps, at the domain's MTU): the load
//!   balancers run the real HAProxy (with the generated watcher) and
//!   Keepalived from the generated configs, the masters a real three-member
//!   etcd and the K3s API stand-in (K3s cannot run here), the workers an
//!   echo backend (socat) on the ingress ports.
//!
//! It prints the placement and the flow matrix across hosts, then removes
//! the host that holds lb1 (the VIP holder) and a master: its LAN port is
//! cut (the clock starts), every link in the host and in its VMs goes down
//! and every process in them is SIGKILLed. Then: both LAN VIPs answer the
//! client through the surviving load balancer (recovery time printed,
//! < 2 s), etcd keeps quorum (a write succeeds), and HAProxy routes around
//! the dead master (every one of N API requests answered by a live master).

#[path = "support/lb_lab.rs"]
mod lb_lab;
mod support;

use flatcar_lb::{haproxy, keepalived, Settings};
use flatcar_microcloud::multi_host::three_hosts_with;
use flatcar_microcloud::reference::AddressPlan;
use flatcar_topology::{Cluster, Role, Vm};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{
    bridge, enslave, networkd, networkd_log, require, unique, veth, wait_until, Daemon, Netns,
    TempDir,
};

/// API requests through the VIP after the loss, each of which must be
/// answered by a live master.
const API_REQUESTS: usize = 30;

/// `SCHED_RR` priority of the API stand-ins: below Keepalived's VRRP
/// process (`flatcar_lb::settings::VRRP_RT_PRIORITY`, 40).
const STANDIN_RT_PRIORITY: &str = "20";

/// A KVM host stand-in.
struct Host {
    ns: Netns,
    /// Its port on the LAN switch.
    port: String,
    dir: PathBuf,
    _networkd: Daemon,
}

/// A VM stand-in and what it runs.
struct Node {
    ns: Netns,
    host: String,
    dir: PathBuf,
    daemons: Vec<Daemon>,
}

/// `etcdctl` against the member on `addr`, from `ns`.
fn etcdctl(ns: &Netns, addr: Ipv4Addr, args: &[&str]) -> bool {
    support::assert_test_addr(addr);
    let ep = format!("--endpoints=http://{addr}:2379");
    let mut v = vec!["etcdctl", &ep, "--dial-timeout=1s", "--command-timeout=2s"];
    v.extend_from_slice(args);
    ns.try_exec(&v).status.success()
}

/// Runs `cmds` with `ip -n NS -batch -`, started beforehand so the clock
/// (returned) does not include starting a process.
fn batch_timed(ns: &str, cmds: &str) -> Instant {
    let mut ip = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("ip -batch");
    std::thread::sleep(Duration::from_millis(100));
    let mut stdin = ip.stdin.take().expect("stdin");
    let start = Instant::now();
    stdin.write_all(cmds.as_bytes()).expect("ip batch");
    drop(stdin);
    assert!(ip.wait().expect("ip").success(), "ip -batch in {ns}");
    start
}

/// Every link of `ns` down (as when the machine loses power).
fn all_links_down(ns: &Netns) {
    let out = ns.exec(&["ip", "-o", "link", "show"]);
    let mut cmds = String::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(name) = line.split(": ").nth(1) {
            let name = name.split('@').next().unwrap_or(name);
            cmds.push_str(&format!("link set dev {name} down\n"));
        }
    }
    batch_timed(&ns.name, &cmds);
}

fn api_port(c: &Cluster) -> u16 {
    c.vips()
        .iter()
        .flat_map(|v| &v.ports)
        .find(|p| p.role == Role::Master)
        .map(|p| c.backend_port(p).get())
        .expect("an API port")
}

/// The flow matrix across hosts: the client to every LAN VIP, each load
/// balancer to each master's API port, each master to each etcd member and
/// to its host's anycast gateway. Rows from a dead VM are left out; rows to
/// one must get no answer.
struct Matrix<'a> {
    client: &'a Netns,
    lan_vips: &'a [(String, Ipv4Addr, u16)],
    lbs: &'a [&'a Vm],
    masters: &'a [&'a Vm],
    maddr: &'a BTreeMap<String, Ipv4Addr>,
    api: u16,
    gateway: Ipv4Addr,
    host_of: &'a dyn Fn(&Vm) -> String,
}

impl Matrix<'_> {
    /// Prints the matrix under `title`; returns the rows that were wrong.
    fn print(&self, nodes: &BTreeMap<String, Node>, title: &str, dead: &[String]) -> Vec<String> {
        let mut failures = Vec::new();
        let mut row = |from: &str, to: String, got: Option<String>, expect: bool| {
            let ok = got.is_some() == expect;
            let what = match (&got, expect) {
                (Some(g), _) => g.clone(),
                (None, true) => "no answer".to_string(),
                (None, false) => "no answer (dead)".to_string(),
            };
            println!(
                "  {:<14} -> {:<36} {} {what}",
                from,
                to,
                if ok { "ok  " } else { "FAIL" }
            );
            if !ok {
                failures.push(format!("{from} -> {to}: {what}"));
            }
        };
        let alive = |vm: &Vm| !dead.iter().any(|d| d == vm.name.as_str());
        let at = |vm: &Vm| format!("{}@{}", vm.name, (self.host_of)(vm));
        println!("{title}:");
        for (name, addr, port) in self.lan_vips {
            let got = wait_until(Duration::from_secs(5), || {
                lb_lab::connect(&self.client.name, *addr, *port, Duration::from_secs(1)).is_some()
            })
            .and_then(|_| lb_lab::connect(&self.client.name, *addr, *port, Duration::from_secs(1)));
            row(
                "client (LAN)",
                format!("{name} VIP {addr}:{port}"),
                got,
                true,
            );
        }
        for lb in self.lbs.iter().filter(|v| alive(v)) {
            for m in self.masters {
                let addr = self.maddr[m.name.as_str()];
                let got = lb_lab::connect(
                    &nodes[lb.name.as_str()].ns.name,
                    addr,
                    self.api,
                    Duration::from_secs(1),
                )
                .filter(|who| who == m.name.as_str());
                row(
                    &at(lb),
                    format!("{} {addr}:{}", at(m), self.api),
                    got,
                    alive(m),
                );
            }
        }
        for m in self.masters.iter().filter(|v| alive(v)) {
            let ns = &nodes[m.name.as_str()].ns;
            let gw = ns
                .try_exec(&[
                    "ping",
                    "-n",
                    "-q",
                    "-c",
                    "1",
                    "-W",
                    "1",
                    &self.gateway.to_string(),
                ])
                .status
                .success();
            row(
                &at(m),
                format!("anycast gateway {} on {}", self.gateway, (self.host_of)(m)),
                gw.then(|| "ping".to_string()),
                true,
            );
            for other in self.masters {
                let addr = self.maddr[other.name.as_str()];
                let ok = etcdctl(ns, addr, &["endpoint", "health"]);
                row(
                    &at(m),
                    format!("etcd {} {addr}:2379", at(other)),
                    ok.then(|| "healthy".to_string()),
                    alive(other),
                );
            }
        }
        failures
    }
}

#[test]
fn losing_a_whole_host_keeps_the_cloud_up() {
    for t in [
        "haproxy",
        "keepalived",
        "etcd",
        "etcdctl",
        "socat",
        "nft",
        "unshare",
        "python3",
        "openssl",
    ] {
        require(t);
    }
    assert!(
        std::path::Path::new("/lib/systemd/systemd-networkd").exists(),
        "systemd-networkd missing (apt-get install systemd)"
    );
    let t0 = Instant::now();
    let plan = AddressPlan::test();
    let c: Cluster = three_hosts_with(&plan, [None, None, None]).expect("valid");
    let fabric = c.fabric().expect("three hosts have a fabric");
    let mtu = fabric.overlay_mtu();
    let composed = flatcar_microcloud::services::compose(
        &c,
        &mut flatcar_topology::provision::MemorySecrets::default(),
    )
    .expect("composes");
    let settings = Settings::default();
    let lan = c.networks().iter().find(|n| n.is_lan()).expect("lan");
    let tmp = TempDir::new("hostloss");
    let tag = unique("hl");

    // Placement, as the library made it.
    println!("placement (library, no .on()):");
    for row in c.placement_table() {
        println!("  {row}");
    }
    for seg in &fabric.segments {
        println!(
            "spanning network {} {}: VXLAN {} (VNI {}), anycast gateway {} ({}), MTU {mtu}",
            seg.network.name,
            seg.network.cidr,
            seg.vxlan,
            seg.vni,
            seg.network.gateway,
            seg.gateway_mac
        );
    }
    let mut lbs: Vec<&Vm> = c.with_role(Role::LoadBalancer).collect();
    assert!(lbs.len() >= 2, "two load balancers");
    let masters: Vec<&Vm> = c.with_role(Role::Master).collect();
    let workers: Vec<&Vm> = c.with_role(Role::Worker).collect();
    // lb1: the first VIP's first holder (the VIP holder while all is well).
    let first = &c.vips()[0].holders;
    lbs.sort_by_key(|vm| first.iter().position(|h| *h == vm.name));
    let host_of = |vm: &Vm| c.host_of(vm).name.to_string();
    let victim = host_of(lbs[0]);
    assert_ne!(victim, host_of(lbs[1]), "the LBs share a host");
    let dead_masters: Vec<String> = masters
        .iter()
        .filter(|m| host_of(m) == victim)
        .map(|m| m.name.to_string())
        .collect();
    assert!(
        !dead_masters.is_empty(),
        "{victim} holds {} but no master",
        lbs[0].name
    );

    // The LAN switch and the client.
    let sw = Netns::new(&format!("{tag}sw"));
    bridge(&sw, "lan0");
    let client = Netns::new(&format!("{tag}cl"));
    veth(&sw, "pcl", &client, "eth0");
    enslave(&sw, "pcl", "lan0");
    let client_addr: Ipv4Addr = lb_lab::CLIENT.parse().expect("ip");
    client.addr("eth0", client_addr, plan.lan.prefix_len());

    // The hosts.
    let mut hosts: BTreeMap<String, Host> = BTreeMap::new();
    for (i, h) in c.kvm_hosts().iter().enumerate() {
        let ns = Netns::new(&format!("{tag}h{}", i + 1));
        let port = format!("ph{}", i + 1);
        veth(&sw, &port, &ns, h.uplink.as_str());
        enslave(&sw, &port, "lan0");
        bridge(&ns, lan.bridge.as_str());
        enslave(&ns, h.uplink.as_str(), lan.bridge.as_str());
        ns.addr(lan.bridge.as_str(), h.address, lan.cidr.prefix_len());
        let dir = tmp.path().join(h.name.as_str());
        let d = networkd(&ns, &flatcar_net::fabric::networkd(&c, h), &dir);
        hosts.insert(
            h.name.to_string(),
            Host {
                ns,
                port,
                dir,
                _networkd: d,
            },
        );
    }
    for (name, h) in &hosts {
        for seg in &fabric.segments {
            let br = seg.network.bridge.as_str();
            let want = format!("{}/{}", seg.network.gateway, seg.network.cidr.prefix_len());
            let ok = wait_until(Duration::from_secs(15), || {
                let out = h.ns.try_exec(&["ip", "-br", "addr", "show", "dev", br]);
                let vx =
                    h.ns.try_exec(&["ip", "-d", "link", "show", "dev", seg.vxlan.as_str()]);
                String::from_utf8_lossy(&out.stdout).contains(&want)
                    && String::from_utf8_lossy(&vx.stdout).contains(&format!("master {br}"))
            });
            assert!(
                ok.is_some(),
                "{name}: networkd did not bring up {br} ({want}) with {}:\n{}",
                seg.vxlan,
                networkd_log(&h.dir)
            );
        }
    }
    for h in c.kvm_hosts() {
        let r = flatcar_net::ruleset::build_for(&c, &composed.flows, h);
        let ns = &hosts[h.name.as_str()].ns.name;
        flatcar_net::ruleset::apply_with(&r, "ip", &["netns", "exec", ns, "nft"])
            .unwrap_or_else(|e| panic!("{}: {e}", h.name));
    }

    // The VMs on their hosts.
    let api = api_port(&c);
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let vms: Vec<&Vm> = lbs
        .iter()
        .chain(&masters)
        .chain(&workers)
        .copied()
        .collect();
    for (i, vm) in vms.iter().enumerate() {
        let host = host_of(vm);
        let hns = &hosts[&host].ns;
        let ns = Netns::new(&format!("{tag}{}", vm.name));
        for nic in c.nics(vm) {
            let tap = format!("t{i}n{}", nic.index);
            veth(hns, &tap, &ns, nic.ifname.as_str());
            if let Some(m) = c.nic_mtu(nic.network) {
                // The domain XML's <mtu size>, on the tap and in the guest.
                hns.ip(&["link", "set", &tap, "mtu", &m.to_string()]);
                ns.ip(&["link", "set", nic.ifname.as_str(), "mtu", &m.to_string()]);
            }
            enslave(hns, &tap, nic.network.bridge.as_str());
            ns.ip(&[
                "link",
                "set",
                nic.ifname.as_str(),
                "address",
                &nic.mac.to_string(),
            ]);
            ns.addr(nic.ifname.as_str(), nic.address, nic.prefix);
        }
        let dir = tmp.path().join(vm.name.as_str());
        std::fs::create_dir_all(&dir).expect("dir");
        let mut daemons = Vec::new();
        if vm.has(Role::Master) {
            let d = lb_lab::spawn_api_standin(&ns, None, api, vm.name.as_str());
            // A K3s server has its VM's CPUs to itself; here the Python
            // stand-in shares two loaded cores with the whole lab (and with
            // other work on the machine). Without a realtime slot, a TLS
            // health check it answers late (HAProxy's handshake budget is
            // the 100 ms check interval) marks a live master DOWN, and
            // `on-marked-down shutdown-sessions` cuts a request in flight:
            // the lab would measure this machine's load, not the cloud.
            let pid = d.pid().expect("pid").to_string();
            support::run(&["chrt", "-a", "-r", "-p", STANDIN_RT_PRIORITY, &pid]);
            daemons.push(d);
        }
        if vm.has(Role::Worker) {
            let mut ports: Vec<u16> = c
                .vips()
                .iter()
                .flat_map(|v| &v.ports)
                .filter(|p| p.role == Role::Worker)
                .map(|p| c.backend_port(p).get())
                .collect();
            ports.sort();
            ports.dedup();
            for port in ports {
                daemons.push(ns.spawn(&[
                    "socat",
                    &format!("TCP-LISTEN:{port},fork,reuseaddr,backlog=1024"),
                    &format!("SYSTEM:head -c1 >/dev/null; echo {}", vm.name),
                ]));
            }
        }
        if vm.has(Role::LoadBalancer) {
            ns.sysctl("net.ipv4.ip_nonlocal_bind", "1");
        }
        nodes.insert(
            vm.name.to_string(),
            Node {
                ns,
                host,
                dir,
                daemons,
            },
        );
    }

    // etcd on the masters, one per host.
    let maddr: BTreeMap<String, Ipv4Addr> = masters
        .iter()
        .map(|m| (m.name.to_string(), m.primary_address().expect("address")))
        .collect();
    let initial: Vec<String> = maddr
        .iter()
        .map(|(n, a)| format!("{n}=http://{a}:2380"))
        .collect();
    for (name, addr) in &maddr {
        let n = nodes.get_mut(name).expect("master");
        let d = support::spawn_etcd(&n.ns, &n.dir, name, *addr, &initial, &tag);
        n.daemons.push(d);
    }

    // The load balancers: generated HAProxy (+ watcher) and Keepalived.
    for vm in &lbs {
        let n = nodes.get_mut(vm.name.as_str()).expect("lb");
        let cfg = haproxy::render(&c, vm, &settings).expect("haproxy.cfg");
        n.daemons.push(lb_lab::spawn_haproxy(
            &n.ns,
            &n.dir,
            &cfg,
            settings.haproxy_nice,
        ));
        if let Some(script) = haproxy::watch_script(&settings) {
            n.daemons.push(lb_lab::spawn_watch(&n.ns, &n.dir, &script));
            let down = lb_lab::down_file(&n.dir);
            wait_until(Duration::from_secs(5), || {
                std::fs::read_to_string(&down).is_ok_and(|t| t.trim() == "0")
            })
            .expect("the watcher reports HAProxy running");
        }
        let conf = keepalived::render(&c, vm, &settings).expect("keepalived.conf");
        n.daemons
            .push(lb_lab::spawn_keepalived(&n.ns, &n.dir, &conf));
    }

    // Wait for the lab: lb1 holds every VIP, etcd formed.
    let lan_vips: Vec<(String, Ipv4Addr, u16)> = c
        .vips()
        .iter()
        .filter(|v| v.network == lan.name)
        .map(|v| (v.name.to_string(), v.address, v.ports[0].port.get()))
        .collect();
    assert!(lan_vips.len() >= 2, "two VIPs on the LAN: {lan_vips:?}");
    let holders = |nodes: &BTreeMap<String, Node>, addr: Ipv4Addr| -> Vec<String> {
        lbs.iter()
            .filter(|lb| lb_lab::holds(&nodes[lb.name.as_str()].ns, addr))
            .map(|lb| lb.name.to_string())
            .collect()
    };
    let lb1 = lbs[0].name.to_string();
    let lb2 = lbs[1].name.to_string();
    wait_until(Duration::from_secs(10), || {
        c.vips()
            .iter()
            .all(|v| holders(&nodes, v.address) == [lb1.clone()])
    })
    .unwrap_or_else(|| {
        panic!(
            "{lb1} holds every VIP:\n{}",
            std::fs::read_to_string(nodes[&lb1].dir.join("keepalived.log")).unwrap_or_default()
        )
    });
    let (first_master, first_addr) = maddr.iter().next().expect("a master");
    wait_until(Duration::from_secs(20), || {
        etcdctl(&nodes[first_master].ns, *first_addr, &["put", "lab", "up"])
    })
    .expect("etcd cluster formed");
    println!("lab up after {:?}", t0.elapsed());

    // The flow matrix across hosts, before the loss.
    let k8s_gw = fabric
        .segment("k8s")
        .expect("k8s spans hosts")
        .network
        .gateway;
    let lab = Matrix {
        client: &client,
        lan_vips: &lan_vips,
        lbs: &lbs,
        masters: &masters,
        maddr: &maddr,
        api,
        gateway: k8s_gw,
        host_of: &host_of,
    };
    let failures = lab.print(
        &nodes,
        &format!("flow matrix, all hosts up ({lb1} holds the VIPs)"),
        &[],
    );
    assert!(failures.is_empty(), "flow matrix: {failures:?}");

    // Remove the host that holds lb1 and a master.
    let on_victim: Vec<String> = nodes
        .iter()
        .filter(|(_, n)| n.host == victim)
        .map(|(name, _)| name.clone())
        .collect();
    println!(
        "removing {victim} (VMs: {}): LAN port cut, every link down, every process killed",
        on_victim.join(", ")
    );
    // Both HAProxies see every master UP before the loss.
    let all_up = |dir: &std::path::Path| {
        let stat = lb_lab::show_stat(dir);
        masters.iter().all(|m| {
            let lines: Vec<&str> = stat
                .lines()
                .filter(|l| l.split(',').nth(1) == Some(m.name.as_str()))
                .collect();
            !lines.is_empty()
                && lines
                    .iter()
                    .all(|l| l.split(',').nth(lb_lab::STATUS).is_some_and(|s| s == "UP"))
        })
    };
    for lb in &lbs {
        let dir = &nodes[lb.name.as_str()].dir;
        wait_until(Duration::from_secs(5), || all_up(dir)).unwrap_or_else(|| {
            panic!(
                "{}: not every master UP:\n{}",
                lb.name,
                lb_lab::show_stat(dir)
            )
        });
    }
    let probes: Vec<(String, lb_lab::Probe)> = lan_vips
        .iter()
        .map(|(name, addr, port)| {
            (
                name.clone(),
                lb_lab::Probe::new(
                    &client.name,
                    *addr,
                    *port,
                    Duration::from_millis(100),
                    Duration::from_secs(3),
                ),
            )
        })
        .collect();
    let cut = batch_timed(
        &sw.name,
        &format!("link set dev {} down\n", hosts[&victim].port),
    );
    let running: Vec<_> = probes
        .into_iter()
        .map(|(name, p)| (name, std::thread::spawn(move || p.run(cut))))
        .collect();
    let vip_addrs: Vec<Ipv4Addr> = lan_vips.iter().map(|v| v.1).collect();
    let lb2_ns = nodes[&lb2].ns.name.clone();
    let moved = std::thread::spawn(move || {
        wait_until(Duration::from_secs(5), || {
            let out = Command::new("ip")
                .args(["-n", &lb2_ns, "-4", "-o", "addr", "show"])
                .output()
                .expect("ip");
            let text = String::from_utf8_lossy(&out.stdout);
            vip_addrs.iter().all(|v| text.contains(&format!(" {v}/")))
        })
        .map(|_| cut.elapsed())
    });
    let lb2_dir = nodes[&lb2].dir.clone();
    let dead = dead_masters.clone();
    let marked_down = std::thread::spawn(move || {
        wait_until(Duration::from_secs(10), || {
            let stat = lb_lab::show_stat(&lb2_dir);
            dead.iter().all(|m| {
                let lines: Vec<&str> = stat
                    .lines()
                    .filter(|l| l.split(',').nth(1) == Some(m.as_str()))
                    .collect();
                !lines.is_empty()
                    && lines.iter().all(|l| {
                        l.split(',')
                            .nth(lb_lab::STATUS)
                            .is_some_and(|s| s.starts_with("DOWN"))
                    })
            })
        })
        .map(|_| cut.elapsed())
    });
    // The rest of the host goes: every link down, every process killed.
    for name in &on_victim {
        all_links_down(&nodes[name].ns);
    }
    all_links_down(&hosts[&victim].ns);
    for name in &on_victim {
        let n = nodes.get_mut(name).expect("node");
        n.ns.kill_all();
        n.daemons.clear();
    }
    hosts[&victim].ns.kill_all();
    let gone = cut.elapsed();
    println!("{victim} gone: links down and processes killed {gone:?} after its LAN port was cut");

    // Both VIPs answer through the surviving load balancer.
    let vip_moved = moved.join().expect("vip watcher");
    let vip_moved = vip_moved.unwrap_or_else(|| {
        panic!(
            "{lb2} did not take every VIP:\n{}",
            std::fs::read_to_string(nodes[&lb2].dir.join("keepalived.log")).unwrap_or_default()
        )
    });
    println!("recovery: {lb2} holds every LAN VIP {vip_moved:?} after the cut");
    let mut worst = Duration::ZERO;
    for (name, h) in running {
        let (t, failed) = h.join().expect("probe");
        println!(
            "recovery: {name} VIP answers the client {t:?} after the cut ({} failed attempts before{})",
            failed.len(),
            failed
                .first()
                .map(|f| format!(", the first {f}"))
                .unwrap_or_default()
        );
        worst = worst.max(t);
    }
    for v in c.vips() {
        assert_eq!(
            holders(&nodes, v.address),
            std::slice::from_ref(&lb2),
            "{} VIP after losing {victim}",
            v.name
        );
    }
    assert!(
        worst < Duration::from_secs(2),
        "VIP recovery {worst:?} is not under 2 s"
    );

    // etcd keeps quorum.
    let live: Vec<(&String, &Ipv4Addr)> = maddr
        .iter()
        .filter(|(n, _)| !dead_masters.contains(n))
        .collect();
    assert_eq!(live.len(), masters.len() - dead_masters.len());
    let (lname, laddr) = live[0];
    let wrote = wait_until(Duration::from_secs(10), || {
        etcdctl(&nodes[lname].ns, *laddr, &["put", "lab", "after-host-loss"])
    })
    .unwrap_or_else(|| {
        panic!(
            "etcd lost quorum without {victim}:\n{}",
            std::fs::read_to_string(nodes[lname].dir.join("etcd.log")).unwrap_or_default()
        )
    });
    println!(
        "etcd: {} of {} members left; a write through {lname} succeeded {wrote:?} after asking",
        live.len(),
        masters.len()
    );

    // HAProxy routes around the dead master(s).
    let marked = marked_down.join().expect("DOWN watcher");
    println!(
        "HAProxy on {lb2}: {} marked DOWN {marked:?} after the cut",
        dead_masters.join(", ")
    );
    assert!(marked.is_some(), "{lb2} did not mark {dead_masters:?} DOWN");
    let (_, api_vip, api_vip_port) = lan_vips
        .iter()
        .find(|v| {
            c.vip(&v.0)
                .is_some_and(|vip| vip.ports.iter().any(|p| p.role == Role::Master))
        })
        .expect("an API VIP on the LAN");
    let failures = lab.print(
        &nodes,
        &format!("flow matrix without {victim} ({lb2} holds the VIPs)"),
        &on_victim,
    );
    assert!(
        failures.is_empty(),
        "flow matrix without {victim}: {failures:?}"
    );
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..API_REQUESTS {
        let (ns, addr, port) = (client.name.clone(), *api_vip, *api_vip_port);
        let t = Instant::now();
        let got = std::thread::spawn(move || {
            lb_lab::enter_netns(&ns);
            lb_lab::request(addr, port, Duration::from_secs(2), Duration::from_secs(2))
        })
        .join()
        .expect("request thread");
        let who = got.map(|t| t.trim().to_string()).unwrap_or_else(|e| {
            panic!(
                "API request {i} through {api_vip}: {e} after {:?}\n{lb2} show stat:\n{}\nhaproxy.log:\n{}",
                t.elapsed(),
                lb_lab::show_stat(&nodes[&lb2].dir),
                std::fs::read_to_string(nodes[&lb2].dir.join("haproxy.log")).unwrap_or_default()
            )
        });
        assert!(
            live.iter().any(|(n, _)| **n == who),
            "API request {i} answered by {who:?}, not a live master"
        );
        *seen.entry(who).or_default() += 1;
    }
    println!(
        "{API_REQUESTS} consecutive API requests through {api_vip}:{api_vip_port}, all answered by live masters: {seen:?}"
    );
    let log = std::fs::read_to_string(nodes[&lb2].dir.join("haproxy.log")).unwrap_or_default();
    println!("HAProxy on {lb2}, state changes:");
    for l in log
        .lines()
        .filter(|l| l.contains(" is DOWN") || l.contains(" is UP"))
    {
        println!("  {l}");
    }
    let total = t0.elapsed();
    println!("total {total:?}");
    assert!(total < Duration::from_secs(90), "too slow: {total:?}");
}
