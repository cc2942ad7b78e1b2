//! Live (feature `live`, root): the networks that span hosts, proven in
//! network namespaces with the generated files and the real daemons.
//!
//! Three "hosts" are namespaces on a LAN bridge (itself in a namespace of
//! its own). In each host, the real `systemd-networkd` (in a private mount
//! namespace, reading only the host's generated `hosts/<host>/network/`
//! files) creates the k8s and infra bridges with the anycast gateway and
//! their VXLAN ports; the host's generated nftables ruleset is applied
//! inside the namespace. The "VMs" are namespaces standing in for the
//! etcd members, one per host, each configured by the real
//! `systemd-networkd` from the `.network` file its Ignition config carries
//! (address, gateway, MTU); the host side of each is a veth standing in for
//! libvirt's tap, given the `<mtu>` of the domain XML. Addresses: the
//! reference cloud's test plan (198.18.0.0/15 only).
//!
//! Proves: the overlay carries exactly its MTU between hosts (ping -M do
//! -s MTU-28 passes, a larger frame does not cross); the gateway answers
//! on every host with the same MAC; the infra VM on the LAN (networkd from
//! its own Ignition file, socat standing in for CoreDNS) answers a VM on
//! every host, the query masqueraded by that VM's host; a VXLAN sender that is not a host is
//! let in before the ruleset and dropped by it; after host2 disappears
//! (its daemon killed, its namespace and every link gone) the VMs on host1
//! and host3 still reach each other and their gateway.
//!
//! The second test proves the routed paths across hosts: a worker on one
//! host's k8s segment opens TCP to postgresql1 on another host's infra
//! segment (a flow of the model's matrix) through the transit, keeping its
//! own address; a master (no such flow) does not get through; a worker on
//! postgresql1's own host still does; without the transit route the
//! anycast gateway alone cannot reach the remote VM. The infra VM on the
//! LAN reaches NAT VMs through the host each runs on, and after the first
//! host disappears it still reaches the VMs of the others (time printed).

mod support;

use flatcar_microcloud::multi_host::three_hosts_with;
use flatcar_microcloud::reference::AddressPlan;
use flatcar_topology::provision::{Contents, MemorySecrets};
use flatcar_topology::{Cluster, KvmHost};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{networkd, networkd_log, unique, veth, Daemon, Netns, TempDir};

fn ping(ns: &Netns, to: Ipv4Addr, size: u16) -> bool {
    support::assert_test_addr(to);
    ns.try_exec(&[
        "ping",
        "-n",
        "-q",
        "-c",
        "1",
        "-W",
        "1",
        "-M",
        "do",
        "-s",
        &size.to_string(),
        &to.to_string(),
    ])
    .status
    .success()
}

/// Pings until one answer or `timeout`.
fn reaches(ns: &Netns, to: Ipv4Addr, size: u16, timeout: Duration) -> bool {
    support::wait_until(timeout, || ping(ns, to, size)).is_some()
}

struct Vm {
    ns: Netns,
    address: Ipv4Addr,
    host: String,
    ifname: String,
    _networkd: Daemon,
}

struct Host {
    ns: Netns,
    networkd: Daemon,
    dir: std::path::PathBuf,
}

fn link_up_with(ns: &Netns, dev: &str, needle: &str) -> bool {
    let out = ns.try_exec(&["ip", "-br", "addr", "show", "dev", dev]);
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success() && text.contains(needle) && text.contains("UP")
}

/// Every host's ruleset (text and JSON) passes `nft -c` (a dry run, inside
/// a namespace of the test's own), and a broken one is refused.
#[test]
fn every_hosts_ruleset_passes_nft_check() {
    support::require("nft");
    let c = flatcar_microcloud::multi_host::three_hosts().expect("valid");
    let b =
        flatcar_microcloud::Bundle::render(&c, &mut flatcar_microcloud::BundleSecrets::default())
            .expect("renders");
    let ns = Netns::new(&unique("fxc"));
    let tmp = TempDir::new("fabricnft");
    let check = |path: &str, text: &[u8], json: bool| {
        let f = tmp.path().join(path.replace('/', "_"));
        std::fs::write(&f, text).expect("write");
        let file = f.display().to_string();
        let mut args = vec!["nft", "-c"];
        if json {
            args.push("-j");
        }
        args.extend(["-f", &file]);
        ns.try_exec(&args)
    };
    let mut n = 0;
    for (path, file) in b.files() {
        if path.starts_with("hosts/") && path.contains("/nftables.") {
            let out = check(path, &file.contents, path.ends_with(".json"));
            assert!(
                out.status.success(),
                "{path}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        }
    }
    assert_eq!(n, 6, "three hosts, text and JSON each");
    let bad = String::from_utf8_lossy(&b.files()["hosts/kvm2/nftables.nft"].contents)
        .replace("ether saddr", "ether sadr");
    assert!(!check("bad.nft", bad.as_bytes(), false).status.success());
}

#[test]
fn vxlan_segments_span_hosts_and_survive_losing_one() {
    support::require("nft");
    support::require("ping");
    support::require("unshare");
    assert!(
        Path::new("/lib/systemd/systemd-networkd").exists(),
        "systemd-networkd missing (apt-get install systemd)"
    );
    let t0 = Instant::now();
    let plan = AddressPlan::test();
    let c: Cluster = three_hosts_with(&plan, [None, None, None]).expect("valid");
    let fabric = c.fabric().expect("three hosts have a fabric");
    let k8s = fabric.segment("k8s").expect("k8s spans hosts").clone();
    let mtu = fabric.overlay_mtu();
    assert_eq!(mtu, 1450);
    let gw = k8s.network.gateway;
    let composed =
        flatcar_microcloud::services::compose(&c, &mut MemorySecrets::default()).expect("composes");
    let tmp = TempDir::new("fabric");
    let tag = unique("fx");

    // The LAN: a bridge in a namespace of its own.
    let lan = Netns::new(&format!("{tag}-lan"));
    support::bridge(&lan, "lan0");
    let kvm_hosts: Vec<&KvmHost> = c.kvm_hosts();
    let mut hosts: BTreeMap<String, Host> = BTreeMap::new();
    for (i, h) in kvm_hosts.iter().enumerate() {
        let ns = Netns::new(&format!("{tag}-h{}", i + 1));
        veth(&lan, &format!("p{}", i + 1), &ns, "eth0");
        support::enslave(&lan, &format!("p{}", i + 1), "lan0");
        ns.addr("eth0", h.address, plan.lan.prefix_len());
        let dir = tmp.path().join(h.name.as_str());
        let files = flatcar_net::fabric::networkd(&c, h);
        assert_eq!(files.len(), 4 * fabric.segments.len() + 2, "+ the transit");
        let d = networkd(&ns, &files, &dir);
        hosts.insert(
            h.name.to_string(),
            Host {
                ns,
                networkd: d,
                dir,
            },
        );
    }
    let gw_cidr = format!("{gw}/{}", k8s.network.cidr.prefix_len());
    for (name, h) in &hosts {
        let ok = support::wait_until(Duration::from_secs(15), || {
            link_up_with(&h.ns, k8s.network.bridge.as_str(), &gw_cidr)
                && String::from_utf8_lossy(
                    &h.ns
                        .try_exec(&["ip", "-d", "link", "show", "dev", k8s.vxlan.as_str()])
                        .stdout,
                )
                .contains(&format!("master {}", k8s.network.bridge))
        });
        assert!(
            ok.is_some(),
            "{name}: networkd did not bring up {} with {gw_cidr} and {}:\n{}",
            k8s.network.bridge,
            k8s.vxlan,
            networkd_log(&h.dir)
        );
        let log = networkd_log(&h.dir);
        for bad in [
            "Unknown key",
            "Unknown section",
            "Failed to parse",
            "ignoring assignment",
        ] {
            assert!(!log.contains(bad), "{name}: networkd: {bad}:\n{log}");
        }
        let link = String::from_utf8_lossy(
            &h.ns
                .exec(&["ip", "link", "show", "dev", k8s.network.bridge.as_str()])
                .stdout,
        )
        .to_string();
        assert!(
            link.contains(&format!("mtu {mtu} ")) && link.contains(&k8s.gateway_mac.to_string()),
            "{name}: bridge {link}"
        );
    }
    println!(
        "3 hosts up (systemd-networkd from hosts/<host>/network/) after {:?}",
        t0.elapsed()
    );

    // One VM per host on k8s: the etcd members (spread over the three hosts).
    let mut vms: BTreeMap<String, Vm> = BTreeMap::new();
    for (i, vm) in c.with_role(flatcar_topology::Role::Master).enumerate() {
        let host = c.host_of(vm).name.to_string();
        let nic = c
            .nics(vm)
            .into_iter()
            .find(|n| n.network.name == k8s.network.name)
            .expect("master on k8s");
        assert_eq!(c.nic_mtu(nic.network), Some(mtu));
        let ns = Netns::new(&format!("{tag}-v{}", i + 1));
        let h = &hosts[&host];
        let tap = format!("tap{}", i + 1);
        veth(&h.ns, &tap, &ns, nic.ifname.as_str());
        // Stand-in for libvirt's tap: the domain XML's <mtu size>.
        h.ns.ip(&["link", "set", &tap, "mtu", &mtu.to_string()]);
        support::enslave(&h.ns, &tap, k8s.network.bridge.as_str());
        ns.ip(&[
            "link",
            "set",
            nic.ifname.as_str(),
            "address",
            &nic.mac.to_string(),
        ]);
        let node = &composed.nodes[vm.name.as_str()];
        let path = format!("/etc/systemd/network/10-{}.network", nic.ifname);
        let f = node.files.get(&path).expect("the VM's networkd file");
        let Contents::Inline(bytes) = &f.contents else {
            panic!("inline networkd file")
        };
        let text = String::from_utf8_lossy(bytes).to_string();
        assert!(text.contains(&format!("MTUBytes={mtu}")), "{text}");
        let files = BTreeMap::from([(format!("10-{}.network", nic.ifname), text)]);
        let dir = tmp.path().join(vm.name.as_str());
        let d = networkd(&ns, &files, &dir);
        vms.insert(
            vm.name.to_string(),
            Vm {
                ns,
                address: nic.address,
                host,
                ifname: nic.ifname.to_string(),
                _networkd: d,
            },
        );
    }
    for (name, v) in &vms {
        let ok = support::wait_until(Duration::from_secs(15), || {
            let out = v.ns.try_exec(&["ip", "route", "show", "default"]);
            String::from_utf8_lossy(&out.stdout).contains(&format!("via {gw}"))
        });
        assert!(ok.is_some(), "{name}: networkd did not configure the VM");
        let link = String::from_utf8_lossy(&v.ns.exec(&["ip", "link"]).stdout).to_string();
        assert!(link.contains(&format!("mtu {mtu} ")), "{name}: {link}");
    }
    fn on<'a>(vms: &'a BTreeMap<String, Vm>, host: &str) -> &'a Vm {
        vms.values()
            .find(|v| v.host == host)
            .unwrap_or_else(|| panic!("a master on {host}"))
    }
    let (h1, h2, h3) = (
        kvm_hosts[0].name.to_string(),
        kvm_hosts[1].name.to_string(),
        kvm_hosts[2].name.to_string(),
    );
    let (a, cc) = (on(&vms, &h1), on(&vms, &h3));

    // Control: before the rulesets, a VXLAN sender that is no host gets in.
    let evil = Netns::new(&format!("{tag}-ev"));
    veth(&lan, "p9", &evil, "eth0");
    support::enslave(&lan, "p9", "lan0");
    let intruder = |local: Ipv4Addr| {
        let _ = evil.try_exec(&["ip", "link", "del", "vxe"]);
        evil.ip(&["addr", "add", &format!("{local}/24"), "dev", "eth0"]);
        evil.ip(&["link", "set", "eth0", "up"]);
        evil.ip(&[
            "link",
            "add",
            "vxe",
            "type",
            "vxlan",
            "id",
            &k8s.vni.to_string(),
            "local",
            &local.to_string(),
            "dstport",
            &fabric.port.to_string(),
        ]);
        evil.exec(&[
            "bridge",
            "fdb",
            "append",
            "00:00:00:00:00:00",
            "dev",
            "vxe",
            "dst",
            &kvm_hosts[0].address.to_string(),
        ]);
        evil.ip(&["link", "set", "vxe", "mtu", &mtu.to_string()]);
        evil.addr("vxe", Ipv4Addr::new(198, 18, 4, 250), 24);
    };
    intruder(Ipv4Addr::new(198, 18, 0, 99));
    assert!(
        reaches(&evil, a.address, 56, Duration::from_secs(5)),
        "control: without the ruleset a non-host VXLAN sender reaches a VM on {h1}"
    );
    println!(
        "control: VXLAN from 198.18.0.99 (no host) reaches {} before the rulesets",
        a.address
    );

    // The generated rulesets, each inside its own host namespace.
    for h in &kvm_hosts {
        let r = flatcar_net::ruleset::build_for(&c, &composed.flows, h);
        let ns = &hosts[h.name.as_str()].ns.name;
        flatcar_net::ruleset::apply_with(&r, "ip", &["netns", "exec", ns, "nft"])
            .unwrap_or_else(|e| panic!("{}: {e}", h.name));
    }

    // The overlay carries exactly its MTU from host1 to host3.
    let max = mtu - 28;
    assert!(
        reaches(&a.ns, cc.address, max, Duration::from_secs(5)),
        "{h1} -> {h3}: ping -M do -s {max} fails"
    );
    assert!(
        !ping(&a.ns, cc.address, max + 1),
        "{h1} -> {h3}: ping -M do -s {} passes although the MTU is {mtu}",
        max + 1
    );
    // Why the VMs need the lower MTU: a VM left at 1500 loses its large
    // frames silently (its tap and the VXLAN port are at the overlay MTU).
    let a_if = a.ifname.clone();
    let a_tap = {
        let out = a.ns.exec(&["ip", "-o", "link", "show", "dev", &a_if]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(a_tap.contains(&format!("mtu {mtu} ")), "{a_tap}");
    a.ns.ip(&["link", "set", &a_if, "mtu", "1500"]);
    let big = !ping(&a.ns, cc.address, 1472);
    a.ns.ip(&["link", "set", &a_if, "mtu", &mtu.to_string()]);
    assert!(big, "a 1500-byte frame crossed a {mtu}-byte VXLAN segment");
    println!(
        "MTU: {h1} -> {h3} ping -M do -s {max} passes, -s {} does not; a VM at MTU 1500 loses -s 1472",
        max + 1
    );

    // The gateway answers on every host, with the same MAC.
    for (name, v) in &vms {
        assert!(
            reaches(&v.ns, gw, 56, Duration::from_secs(3)),
            "{name} on {}: gateway {gw} silent",
            v.host
        );
        let neigh =
            String::from_utf8_lossy(&v.ns.exec(&["ip", "neigh", "show", &gw.to_string()]).stdout)
                .to_string();
        assert!(
            neigh.contains(&k8s.gateway_mac.to_string()),
            "{name}: gateway neighbour {neigh}"
        );
    }
    println!(
        "gateway {gw} ({}) answers on {h1}, {h2}, {h3}",
        k8s.gateway_mac
    );

    // The infra VM on the LAN (CoreDNS for every node) answers a VM on any
    // host: the VM's own host masquerades the query, so the answer comes
    // back to it.
    // Stand-in for CoreDNS: socat answering with the peer address it saw.
    support::require("socat");
    let infra_vm = c.vm("infra").expect("infra");
    let infra_nic = c.nics(infra_vm).into_iter().next().expect("LAN nic");
    let infra = Netns::new(&format!("{tag}-dns"));
    veth(&lan, "p8", &infra, infra_nic.ifname.as_str());
    support::enslave(&lan, "p8", "lan0");
    let node = &composed.nodes["infra"];
    let path = format!("/etc/systemd/network/10-{}.network", infra_nic.ifname);
    let Contents::Inline(bytes) = &node.files.get(&path).expect("infra networkd").contents else {
        panic!("inline")
    };
    let infra_text = String::from_utf8_lossy(bytes).to_string();
    assert!(
        infra_text.contains(&format!("Gateway={}", kvm_hosts[0].address)),
        "{infra_text}"
    );
    let _infra_networkd = networkd(
        &infra,
        &BTreeMap::from([(format!("10-{}.network", infra_nic.ifname), infra_text)]),
        &tmp.path().join("infra"),
    );
    assert!(
        support::wait_until(Duration::from_secs(15), || link_up_with(
            &infra,
            infra_nic.ifname.as_str(),
            &infra_nic.address.to_string()
        ))
        .is_some(),
        "infra: networkd did not configure it"
    );
    let _dns = infra.spawn(&[
        "socat",
        "UDP4-RECVFROM:53,reuseaddr,fork",
        "SYSTEM:echo $SOCAT_PEERADDR",
    ]);
    let ask = |v: &Vm| -> String {
        let out = v.ns.try_exec(&[
            "sh",
            "-c",
            &format!("echo q | socat -T 1 - UDP4-SENDTO:{}:53", infra_nic.address),
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    for host in [&h1, &h2, &h3] {
        let v = on(&vms, host);
        let want = kvm_hosts
            .iter()
            .find(|h| h.name.as_str() == host.as_str())
            .map(|h| h.address.to_string())
            .expect("host");
        let mut seen = String::new();
        let ok = support::wait_until(Duration::from_secs(5), || {
            seen = ask(v);
            seen == want
        });
        assert!(
            ok.is_some(),
            "VM on {host} -> infra {}:53: answer {seen:?}, want one seen from {want}",
            infra_nic.address
        );
    }
    println!(
        "infra {} (LAN) answers UDP 53 from a VM on every host, each query masqueraded by its own host",
        infra_nic.address
    );

    // The ruleset drops VXLAN from a non-host address (a fresh source, so
    // no conntrack entry from the control helps it).
    evil.ip(&["neigh", "flush", "dev", "vxe"]);
    intruder(Ipv4Addr::new(198, 18, 0, 98));
    assert!(
        !reaches(&evil, a.address, 56, Duration::from_secs(2)),
        "VXLAN from 198.18.0.98 (no host) reached a VM through the ruleset"
    );
    assert!(
        reaches(&a.ns, cc.address, 56, Duration::from_secs(2)),
        "hosts' own VXLAN must still pass"
    );
    println!("ruleset: VXLAN from 198.18.0.98 dropped, from the hosts accepted");

    // Host2 dies: its daemon killed, its namespace (and every link) gone,
    // its VM with it.
    let lost = Instant::now();
    let mut dead = hosts.remove(&h2).expect("host2");
    dead.networkd.kill();
    let dead_vm: Vec<String> = vms
        .iter()
        .filter(|(_, v)| v.host == h2)
        .map(|(n, _)| n.clone())
        .collect();
    for n in dead_vm {
        drop(vms.remove(&n));
    }
    drop(dead);
    let gone = Instant::now();
    let (a, cc) = (on(&vms, &h1), on(&vms, &h3));
    assert!(
        reaches(&a.ns, cc.address, max, Duration::from_secs(5)),
        "after losing {h2}: {h1} -> {h3} fails"
    );
    assert!(reaches(&cc.ns, a.address, max, Duration::from_secs(5)));
    assert!(reaches(&a.ns, gw, 56, Duration::from_secs(5)));
    assert!(reaches(&cc.ns, gw, 56, Duration::from_secs(5)));
    assert_eq!(ask(cc), kvm_hosts[2].address.to_string(), "infra from {h3}");
    println!(
        "{h2} lost: {h1} <-> {h3} and both gateways answer {:?} after it was gone ({:?} after its daemon was killed, namespace teardown included)",
        gone.elapsed(),
        lost.elapsed()
    );
    drop(evil);
    println!("total {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(60), "too slow");
}

/// Every host of `c` as a namespace on a LAN bridge of its own namespace,
/// configured by the real systemd-networkd from its generated files; waits
/// until the transit routes are installed on each.
fn hosts_up(c: &Cluster, tag: &str, tmp: &TempDir) -> (Netns, BTreeMap<String, Host>) {
    let fabric = c.fabric().expect("fabric");
    let lan = Netns::new(&format!("{tag}-lan"));
    support::bridge(&lan, "lan0");
    let mut hosts = BTreeMap::new();
    for (i, h) in c.kvm_hosts().iter().enumerate() {
        let ns = Netns::new(&format!("{tag}-h{}", i + 1));
        veth(&lan, &format!("p{}", i + 1), &ns, "eth0");
        support::enslave(&lan, &format!("p{}", i + 1), "lan0");
        ns.addr("eth0", h.address, c.networks()[0].cidr.prefix_len());
        let dir = tmp.path().join(h.name.as_str());
        let files = flatcar_net::fabric::networkd(c, h);
        let d = networkd(&ns, &files, &dir);
        hosts.insert(
            h.name.to_string(),
            Host {
                ns,
                networkd: d,
                dir,
            },
        );
    }
    for h in c.kvm_hosts() {
        let host = &hosts[h.name.as_str()];
        let want = fabric.remote_routes(c, h).len();
        let t = fabric.transit.ifname.as_str();
        let ok = support::wait_until(Duration::from_secs(15), || {
            let out = host.ns.try_exec(&["ip", "route", "show", "dev", t]);
            let routes = String::from_utf8_lossy(&out.stdout).to_string();
            routes.lines().filter(|l| l.contains(" via ")).count() >= want
                && fabric.segments.iter().all(|s| {
                    link_up_with(
                        &host.ns,
                        s.network.bridge.as_str(),
                        &s.network.gateway.to_string(),
                    )
                })
        });
        assert!(
            ok.is_some(),
            "{}: networkd did not install {want} transit routes:\n{}",
            h.name,
            networkd_log(&host.dir)
        );
        let log = networkd_log(&host.dir);
        for bad in [
            "Unknown key",
            "Unknown section",
            "Failed to parse",
            "ignoring assignment",
        ] {
            assert!(!log.contains(bad), "{}: networkd: {bad}:\n{log}", h.name);
        }
    }
    (lan, hosts)
}

/// A VM as a namespace: each NIC a veth to its host's bridge (or the LAN
/// bridge), with the MAC and MTU of the model, configured by the real
/// systemd-networkd from the `.network` files its Ignition config carries.
struct Node {
    ns: Netns,
    _networkd: Daemon,
    _servers: Vec<Daemon>,
}

#[allow(clippy::too_many_arguments)]
fn node(
    c: &Cluster,
    composed: &flatcar_topology::provision::Composed,
    vm_name: &str,
    hosts: &BTreeMap<String, Host>,
    lan: &Netns,
    tag: &str,
    n: usize,
    tmp: &TempDir,
) -> Node {
    let vm = c.vm(vm_name).expect("vm");
    let host = &hosts[c.host_of(vm).name.as_str()];
    let ns = Netns::new(&format!("{tag}-n{n}"));
    let mut files = BTreeMap::new();
    for (i, nic) in c.nics(vm).into_iter().enumerate() {
        let outer = format!("t{n}x{i}");
        if nic.network.kind == flatcar_topology::NetworkKind::Lan {
            veth(lan, &outer, &ns, nic.ifname.as_str());
            support::enslave(lan, &outer, "lan0");
        } else {
            veth(&host.ns, &outer, &ns, nic.ifname.as_str());
            if let Some(mtu) = c.nic_mtu(nic.network) {
                // Stand-in for libvirt's tap: the domain XML's <mtu size>.
                host.ns
                    .ip(&["link", "set", &outer, "mtu", &mtu.to_string()]);
            }
            support::enslave(&host.ns, &outer, nic.network.bridge.as_str());
        }
        ns.ip(&[
            "link",
            "set",
            nic.ifname.as_str(),
            "address",
            &nic.mac.to_string(),
        ]);
        let path = format!("/etc/systemd/network/10-{}.network", nic.ifname);
        let f = composed.nodes[vm_name]
            .files
            .get(&path)
            .expect("networkd file");
        let Contents::Inline(bytes) = &f.contents else {
            panic!("inline networkd file")
        };
        files.insert(
            format!("10-{}.network", nic.ifname),
            String::from_utf8_lossy(bytes).to_string(),
        );
    }
    let d = networkd(&ns, &files, &tmp.path().join(vm_name));
    let first = c.nics(vm)[0].address.to_string();
    let ok = support::wait_until(Duration::from_secs(15), || {
        let out = ns.try_exec(&["ip", "-4", "route", "show"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.contains("default via")
            && String::from_utf8_lossy(&ns.try_exec(&["ip", "-4", "addr"]).stdout).contains(&first)
    });
    assert!(
        ok.is_some(),
        "{vm_name}: networkd did not configure it:\n{}",
        networkd_log(&tmp.path().join(vm_name))
    );
    Node {
        ns,
        _networkd: d,
        _servers: Vec::new(),
    }
}

impl Node {
    /// A TCP server on `port` answering each connection with the peer
    /// address it saw (a stand-in for the real service on that port).
    fn serve(&mut self, port: u16) {
        self._servers.push(self.ns.spawn(&[
            "socat",
            &format!("TCP4-LISTEN:{port},reuseaddr,fork"),
            "SYSTEM:echo $SOCAT_PEERADDR",
        ]));
    }

    /// Whether TCP to `to:port` connects within 5 s (retrying), seen by the
    /// server as this VM's `me`.
    fn connects(&self, to: Ipv4Addr, port: u16, me: Ipv4Addr) -> bool {
        support::wait_until(Duration::from_secs(5), || {
            self.tcp(to, port) == me.to_string()
        })
        .is_some()
    }

    /// Opens TCP to `to:port` (1 s connect timeout): the address the
    /// server saw, empty when no connection was made.
    fn tcp(&self, to: Ipv4Addr, port: u16) -> String {
        support::assert_test_addr(to);
        let out = self.ns.try_exec(&[
            "sh",
            "-c",
            // -t: wait for the answer after our side's EOF (the default
            // 0.5 s is shorter than a fork under load).
            &format!("echo q | socat -t 3 -T 3 - TCP4:{to}:{port},connect-timeout=1"),
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

#[test]
fn routed_flows_cross_hosts_through_the_transit_and_lan_vms_survive_a_host() {
    support::require("nft");
    support::require("socat");
    support::require("unshare");
    let t0 = Instant::now();
    let plan = AddressPlan::test();
    let c: Cluster = three_hosts_with(&plan, [None, None, None]).expect("valid");
    let composed =
        flatcar_microcloud::services::compose(&c, &mut MemorySecrets::default()).expect("composes");
    let tmp = TempDir::new("transit");
    let tag = unique("ft");
    let (lan, mut hosts) = hosts_up(&c, &tag, &tmp);
    for h in c.kvm_hosts() {
        let r = flatcar_net::ruleset::build_for(&c, &composed.flows, h);
        let ns = &hosts[h.name.as_str()].ns.name;
        flatcar_net::ruleset::apply_with(&r, "ip", &["netns", "exec", ns, "nft"])
            .unwrap_or_else(|e| panic!("{}: {e}", h.name));
    }
    println!(
        "3 hosts up with their rulesets and transit routes after {:?}",
        t0.elapsed()
    );

    // Who runs where (the library's placement).
    let host_of = |vm: &str| c.host_of(c.vm(vm).expect("vm")).name.to_string();
    let addr = |vm: &str| c.nics(c.vm(vm).expect("vm"))[0].address;
    let pg_host = host_of("postgresql1");
    let by_role = |role, same: bool| -> String {
        c.with_role(role)
            .map(|v| v.name.to_string())
            .find(|v| (host_of(v) == pg_host) == same)
            .expect("a VM of that role")
    };
    let remote_worker = by_role(flatcar_topology::Role::Worker, false);
    let local_worker = by_role(flatcar_topology::Role::Worker, true);
    let remote_master = by_role(flatcar_topology::Role::Master, false);
    // A master on a third host (neither postgresql1's nor the remote worker's).
    let third_master = c
        .with_role(flatcar_topology::Role::Master)
        .map(|v| v.name.to_string())
        .find(|v| host_of(v) != pg_host && host_of(v) != host_of(&remote_worker))
        .expect("a master on the third host");
    let flows = flatcar_net::ruleset::summary(&flatcar_net::ruleset::build_for(
        &c,
        &composed.flows,
        c.kvm_hosts()[0],
    ));
    assert!(
        flows.contains("role:worker -> role:database tcp/5432"),
        "{flows}"
    );
    assert!(!flows.contains("role:master -> role:database"), "{flows}");

    let mut n = 0;
    let mut mk = |vm: &str| {
        n += 1;
        node(&c, &composed, vm, &hosts, &lan, &tag, n, &tmp)
    };
    let mut pg = mk("postgresql1");
    let mut w_remote = mk(&remote_worker);
    let w_local = mk(&local_worker);
    let m_remote = mk(&remote_master);
    let mut m_third = mk(&third_master);
    let infra = mk("infra");
    pg.serve(5432);
    pg.serve(22);
    m_third.serve(22);
    w_remote.serve(22);
    let pg_addr = addr("postgresql1");
    println!(
        "postgresql1 {pg_addr} on {pg_host}; {remote_worker} on {}, {local_worker} on {pg_host}, {remote_master} on {}, {third_master} on {}",
        host_of(&remote_worker),
        host_of(&remote_master),
        host_of(&third_master)
    );

    // k8s on one host -> infra on another: allowed, routed by both hosts
    // through the transit, the client's own address kept.
    let seen = support::wait_until(Duration::from_secs(5), || {
        w_remote.tcp(pg_addr, 5432) == addr(&remote_worker).to_string()
    });
    assert!(
        seen.is_some(),
        "{remote_worker} ({}) -> postgresql1:5432 ({pg_host}) failed: {:?}",
        host_of(&remote_worker),
        w_remote.tcp(pg_addr, 5432)
    );
    // Not in the matrix: a master to the database.
    assert_eq!(
        m_remote.tcp(pg_addr, 5432),
        "",
        "{remote_master} -> postgresql1:5432 is no flow of the model but got through"
    );
    // Same host, routed k8s -> infra by that host alone.
    assert!(
        w_local.connects(pg_addr, 5432, addr(&local_worker)),
        "{local_worker} -> postgresql1 on the same host"
    );
    println!(
        "{remote_worker} ({}) -> postgresql1:5432 ({pg_host}) connects, seen as {}; {remote_master} -> :5432 refused by the matrix; {local_worker} on {pg_host} connects",
        host_of(&remote_worker),
        addr(&remote_worker)
    );
    // Control: without the transit route, the client's host routes into
    // its own infra bridge and the anycast gateway cannot reach the
    // remote VM (its answers go to the gateway MAC on its own host).
    let client_host = &hosts[&host_of(&remote_worker)].ns;
    let pg_kvm = c
        .kvm_hosts()
        .into_iter()
        .find(|h| h.name.as_str() == pg_host)
        .expect("host");
    let transit = c.fabric().expect("fabric").transit.ifname.to_string();
    let route = format!("{pg_addr}/32");
    client_host.ip(&["route", "del", &route]);
    assert_eq!(
        w_remote.tcp(pg_addr, 5432),
        "",
        "control: without the transit route the connection still works"
    );
    client_host.ip(&[
        "route",
        "add",
        &route,
        "via",
        &pg_kvm.address.to_string(),
        "dev",
        &transit,
        "onlink",
    ]);
    assert!(
        w_remote.connects(pg_addr, 5432, addr(&remote_worker)),
        "with the transit route back, {remote_worker} -> postgresql1 fails"
    );
    println!(
        "control: without its transit route {} cannot reach postgresql1; with it, it can",
        host_of(&remote_worker)
    );

    // A host itself reaches a VM on another host over the transit (the
    // inventory's SSH jump), from its LAN address (the transit's /32), not
    // from a gateway address every host has.
    let client_kvm = c
        .kvm_hosts()
        .into_iter()
        .find(|h| h.name.as_str() == host_of(&remote_worker))
        .expect("host");
    let get = String::from_utf8_lossy(
        &client_host
            .exec(&["ip", "route", "get", &pg_addr.to_string()])
            .stdout,
    )
    .to_string();
    assert!(
        get.contains(&format!("src {} ", client_kvm.address)),
        "{get}"
    );
    let from_host = support::wait_until(Duration::from_secs(5), || {
        let out = client_host.try_exec(&[
            "sh",
            "-c",
            &format!("echo q | socat -t 3 -T 3 - TCP4:{pg_addr}:22,connect-timeout=1"),
        ]);
        String::from_utf8_lossy(&out.stdout).trim() == client_kvm.address.to_string()
    });
    assert!(
        from_host.is_some(),
        "{} itself -> postgresql1:22 on {pg_host} fails",
        client_kvm.name
    );
    println!(
        "{} itself -> postgresql1:22 on {pg_host} connects from {} (its LAN address)",
        client_kvm.name, client_kvm.address
    );

    // The LAN VM reaches each NAT VM through the host that runs it.
    let via = |to: Ipv4Addr| -> String {
        String::from_utf8_lossy(
            &infra
                .ns
                .exec(&["ip", "route", "get", &to.to_string()])
                .stdout,
        )
        .to_string()
    };
    for (vm, h) in [
        ("postgresql1", &pg_host),
        (third_master.as_str(), &host_of(&third_master)),
    ] {
        let want = c
            .kvm_hosts()
            .into_iter()
            .find(|k| k.name.as_str() == h)
            .expect("host")
            .address;
        let r = via(addr(vm));
        assert!(r.contains(&format!("via {want} ")), "infra -> {vm}: {r}");
    }
    let infra_addr = addr("infra").to_string();
    assert!(
        infra.connects(pg_addr, 22, addr("infra")),
        "infra -> postgresql1:22"
    );
    assert!(
        infra.connects(addr(&third_master), 22, addr("infra")),
        "infra -> {third_master}:22"
    );
    println!(
        "infra (LAN) -> postgresql1:22 via {pg_host} and -> {third_master}:22 via {} connect",
        host_of(&third_master)
    );

    // The first host disappears: its networkd killed, its namespace and
    // every link gone, its VMs with it.
    let first = c.kvm_hosts()[0].name.to_string();
    assert_eq!(
        first, pg_host,
        "postgresql1 is on the first host in this placement"
    );
    let lost = Instant::now();
    let mut dead = hosts.remove(&first).expect("first host");
    dead.networkd.kill();
    drop(dead);
    drop(pg);
    drop(w_local);
    let gone = lost.elapsed();
    let back = support::wait_until(Duration::from_secs(10), || {
        infra.tcp(addr(&third_master), 22) == infra_addr
    });
    assert!(
        back.is_some(),
        "after losing {first}: infra -> {third_master}:22 on {} fails",
        host_of(&third_master)
    );
    assert!(
        infra.connects(addr(&remote_worker), 22, addr("infra")),
        "after losing {first}: infra -> {remote_worker}:22 on {}",
        host_of(&remote_worker)
    );
    println!(
        "{first} lost (teardown {gone:?}): infra (LAN) -> {third_master}:22 on {} connects {:?} later (its route never named {first})",
        host_of(&third_master),
        back.unwrap_or_default()
    );
    drop(m_remote);
    println!("total {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(60), "too slow");
}
