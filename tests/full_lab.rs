//! The full lab: the whole reference cloud on the test address plan
//! (198.18.0.0/15), brought up in network namespaces from the files of a
//! bundle written to disk, and every security and availability claim of
//! DESIGN.md asserted in one test that prints the matrix.
//!
//! - The KVM host namespace has one bridge per network of the model, runs
//!   the generated nftables ruleset (applied as JSON by
//!   `ruleset::apply_with`, its text checked equal to `host/nftables.nft`)
//!   and the WireGuard endpoint (wireguard-go, configured through
//!   `wireguard::apply`), and routes between the LAN and the NAT networks.
//! - Every VM is a namespace with its NICs on the right bridges, addresses
//!   from the model and routes from its generated systemd-networkd file.
//! - lb1/lb2 run real HAProxy and Keepalived from `lb/<vm>/haproxy.cfg` and
//!   `keepalived.conf` (only runtime paths rewritten).
//! - masters answer on the API port and run a real three-member etcd;
//!   workers answer on the ingress ports the model declares; storage1 on
//!   NFS; postgresql1 on 5432; every VM on 22 (sshd stand-ins).
//! - infra serves the generated zones with `named` (CoreDNS is not packaged
//!   here; same zone files) and time with `chronyd` from the generated
//!   server config; master1 syncs with the generated client config.
//! - An "internet" namespace behind the LAN router, which runs the bundle's
//!   port-forward ruleset (`router/nftables.nft`: public 8080/2052 to the web
//!   VIP, nothing else in); rows marked "internet (no router)" send from the
//!   router's WAN address past that ruleset, so they judge the host's ruleset
//!   alone. A LAN client and a VPN client (laptop config from the bundle)
//!   dialing the endpoint.
//! - Every K3s node dials its real join URL (`server:` of its generated
//!   config) without br_netfilter, before and after lb1 crashes.
//!
//! Then lb1 crashes (links down, every process SIGKILLed) while a LAN client
//! keeps connecting to both VIPs; master1 dies and leaves HAProxy's
//! rotation; etcd keeps accepting writes with one member down and refuses
//! them with two down.

#[path = "support/lb_lab.rs"]
mod lb_lab;
mod support;

use flatcar_microcloud::reference::{cluster_with, AddressPlan};
use flatcar_microcloud::{Bundle, BundleSecrets};
use flatcar_topology::{Cluster, Role};
use lb_lab::connect;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// Applies the `[Route]` sections and the default route of a VM's
/// generated `.network` file for its primary NIC.
fn routes_from_networkd(ns: &Netns, c: &Cluster, vm: &str, dev: &str) {
    let v = c.vm(vm).expect("vm");
    let text = flatcar_ignition::base::network_file(c, v, 0).expect("network file");
    let mut dst = None;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("Destination=") {
            dst = Some(d.to_string());
        } else if let (Some(gw), Some(d)) = (line.strip_prefix("Gateway="), dst.take()) {
            ns.ip(&["route", "add", &d, "via", gw, "dev", dev]);
        }
    }
    let gw = text
        .lines()
        .find_map(|l| l.strip_prefix("Gateway="))
        .expect("default gateway");
    ns.ip(&["route", "add", "default", "via", gw, "dev", dev]);
}

/// The `server:` URL of a generated K3s config as address and port
/// (`None` for the first server, which has none).
fn open(from: &Netns, addr: Ipv4Addr, port: u16) -> Option<String> {
    connect(&from.name, addr, port, Duration::from_millis(1500))
}

/// One TCP connection from `from` with source address `src` (one of its
/// own); what the server said, if it answered within 1.5 s.
fn open_from(from: &Netns, src: Ipv4Addr, addr: Ipv4Addr, port: u16) -> Option<String> {
    assert_test_addr(addr);
    // Speaks first like every lab client (lb_lab::PROBE_BYTE); -t: after
    // sending, wait for the whole answer.
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &from.name, "socat", "-T1.5", "-t1.5", "-"])
        .arg(format!("TCP:{addr}:{port},bind={src},connect-timeout=1.5"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("socat");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = stdin.write_all(lb_lab::PROBE_BYTE);
    }
    let out = child.wait_with_output().expect("socat");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn listen(ns: &Netns, bind: Ipv4Addr, port: u16, reply: &str) -> Daemon {
    ns.spawn(&[
        "socat",
        &format!("TCP-LISTEN:{port},bind={bind},fork,reuseaddr"),
        // Consume the probe byte (lb_lab::PROBE_BYTE) before answering.
        &format!("SYSTEM:head -c1 >/dev/null; echo {reply}"),
    ])
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.to_str().expect("utf8").to_string()
}

fn private_dir(p: PathBuf) -> PathBuf {
    std::fs::create_dir_all(&p).expect("dir");
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    p
}

/// A VM stand-in: its namespace and its working directory.
struct Node {
    ns: Netns,
    dir: PathBuf,
}

/// A client that connects to each target every ~20 ms until stopped,
/// recording (when the attempt began, since `start`; target index; success).
struct Prober {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<(Duration, usize, bool)>>,
}

impl Prober {
    fn start(ns: &str, targets: Vec<(Ipv4Addr, u16)>, start: Instant) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let ns = ns.to_string();
        let handle = std::thread::spawn(move || {
            let mut log = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                for (i, (addr, port)) in targets.iter().enumerate() {
                    let at = start.elapsed();
                    let ok = connect(&ns, *addr, *port, Duration::from_millis(250)).is_some();
                    log.push((at, i, ok));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            log
        });
        Prober { stop, handle }
    }

    fn finish(self) -> Vec<(Duration, usize, bool)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("prober")
    }
}

/// `etcdctl put` against the member on `addr`, from namespace `ns`.
fn etcd_put(ns: &Netns, addr: Ipv4Addr, value: &str) -> bool {
    ns.try_exec(&[
        "etcdctl",
        &format!("--endpoints=http://{addr}:2379"),
        "--dial-timeout=1s",
        "--command-timeout=3s",
        "put",
        "lab",
        value,
    ])
    .status
    .success()
}

#[test]
fn full_lab_every_claim() {
    for t in [
        "nft",
        "socat",
        "wireguard-go",
        "wg",
        "named",
        "dig",
        "chronyd",
        "chronyc",
        "haproxy",
        "keepalived",
        "etcd",
        "etcdctl",
    ] {
        require(t);
    }
    let c = cluster_with(&AddressPlan::test()).expect("test cloud");
    let tmp = TempDir::new("fulllab");
    private_dir(tmp.path().to_path_buf());
    let bundle_dir = tmp.path().join("bundle");
    Bundle::render(&c, &mut BundleSecrets::from_bundle_dir(&bundle_dir))
        .expect("bundle")
        .write_to(&bundle_dir)
        .expect("bundle written");
    // From here on the lab reads the bundle's files from disk.
    let file = |p: &str| {
        std::fs::read_to_string(bundle_dir.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    let p = unique("f");
    let ns = |n: &str| Netns::new(&format!("{p}{n}"));
    let ip = |s: &str| -> Ipv4Addr { s.parse().expect("ip") };
    let domain = c.domain().to_string();
    let lan = c.networks().iter().find(|n| n.is_lan()).expect("lan");
    let host_addr = c.host().address;

    // The KVM host: a bridge per network, forwarding.
    let host = ns("host");
    for net in c.networks() {
        bridge(&host, net.bridge.as_str());
        let a = if net.is_lan() { host_addr } else { net.gateway };
        host.addr(net.bridge.as_str(), a, net.cidr.prefix_len());
    }
    host.sysctl("net.ipv4.ip_forward", "1");

    // The LAN router (unmanaged in real life) and the internet behind it,
    // with the static routes a LAN router needs for the networks behind the
    // host (they also let internet-side packets for the NAT networks reach
    // the host, so "closed from the internet" rows are the ruleset at work).
    let router = ns("rtr");
    veth(&router, "eth0", &host, "rtr0");
    enslave(&host, "rtr0", lan.bridge.as_str());
    router.addr("eth0", lan.gateway, lan.cidr.prefix_len());
    // The router's WAN side is named as the model names it, and it runs the
    // bundle's port-forward ruleset: the internet reaches the web VIP only
    // through the forwarded public ports.
    let wan = c.router().expect("router in the model").wan.to_string();
    let wan_addr = ip("198.18.200.1");
    let inet = ns("inet");
    veth(&router, &wan, &inet, "eth0");
    router.addr(&wan, wan_addr, 24);
    router.exec(&[
        "nft",
        "-f",
        bundle_dir
            .join("router/nftables.nft")
            .to_str()
            .expect("utf8"),
    ]);
    inet.addr("eth0", ip("198.18.200.2"), 24);
    inet.ip(&["route", "add", "default", "via", "198.18.200.1"]);
    router.sysctl("net.ipv4.ip_forward", "1");
    let vpn = c.vpn().expect("vpn");
    for net in c.networks().iter().filter(|n| !n.is_lan()) {
        router.ip(&[
            "route",
            "add",
            &net.cidr.to_string(),
            "via",
            &host_addr.to_string(),
        ]);
    }
    router.ip(&[
        "route",
        "add",
        &vpn.subnet.to_string(),
        "via",
        &host_addr.to_string(),
    ]);
    host.ip(&["route", "add", "default", "via", &lan.gateway.to_string()]);

    // Every VM: NICs, addresses, routes, and what its roles run.
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    // The processes each VM runs (dropped, so killed, before the namespaces).
    let mut daemons_of: BTreeMap<String, Vec<Daemon>> = BTreeMap::new();
    for vm in c.vms() {
        let n = ns(vm.name.as_str());
        for nic in c.nics(vm) {
            let port = format!("{}{}", vm.name, nic.index);
            veth(&n, nic.ifname.as_str(), &host, &port);
            enslave(&host, &port, nic.network.bridge.as_str());
            n.addr(nic.ifname.as_str(), nic.address, nic.prefix);
        }
        let primary = c.nics(vm).first().map(|n| n.ifname.to_string());
        routes_from_networkd(&n, &c, vm.name.as_str(), &primary.expect("a nic"));
        let dir = private_dir(tmp.path().join(vm.name.as_str()));
        let mut daemons = Vec::new();
        let me = vm.primary_address().expect("address");
        daemons.push(listen(&n, me, 22, &format!("{}-ssh", vm.name)));
        // One listener per backend port (several VIPs may share one, e.g.
        // the API on the LAN VIP and on the k8s-internal VIP).
        let ports: std::collections::BTreeMap<u16, bool> = c
            .vips()
            .iter()
            .flat_map(|vip| vip.ports.iter())
            .filter(|p| vm.has(p.role))
            .map(|p| (c.backend_port(p).get(), p.role == Role::Master))
            .collect();
        for (port, api) in ports {
            daemons.push(if api {
                // HAProxy checks the API over HTTPS /readyz.
                lb_lab::spawn_api_standin(&n, Some(me), port, vm.name.as_str())
            } else {
                listen(&n, me, port, vm.name.as_str())
            });
        }
        if vm.has(Role::Storage) {
            daemons.push(listen(&n, me, 2049, vm.name.as_str()));
        }
        if vm.has(Role::Database) {
            daemons.push(listen(&n, me, 5432, "postgres"));
        }
        if vm.has(Role::LoadBalancer) {
            n.sysctl("net.ipv4.ip_nonlocal_bind", "1");
        }
        nodes.insert(vm.name.to_string(), Node { ns: n, dir });
        daemons_of.insert(vm.name.to_string(), daemons);
    }
    let node = |name: &str| &nodes[name].ns;

    // etcd on the masters (the quorum the K3s servers' embedded etcd keeps).
    let masters: Vec<(String, Ipv4Addr)> = c
        .with_role(Role::Master)
        .map(|v| (v.name.to_string(), v.primary_address().expect("address")))
        .collect();
    let initial: Vec<String> = masters
        .iter()
        .map(|(n, a)| format!("{n}=http://{a}:2380"))
        .collect();
    for (name, addr) in &masters {
        let n = &nodes[name];
        let d = spawn_etcd(&n.ns, &n.dir, name, *addr, &initial, &p);
        daemons_of.get_mut(name).expect("master").push(d);
    }

    // The load balancers: HAProxy and Keepalived from the bundle's files.
    let lbs: Vec<String> = c
        .with_role(Role::LoadBalancer)
        .map(|v| v.name.to_string())
        .collect();
    for name in &lbs {
        let n = &nodes[name];
        let h = lb_lab::spawn_haproxy(
            &n.ns,
            &n.dir,
            &file(&format!("lb/{name}/haproxy.cfg")),
            flatcar_lb::Settings::default().haproxy_nice,
        );
        let k =
            lb_lab::spawn_keepalived(&n.ns, &n.dir, &file(&format!("lb/{name}/keepalived.conf")));
        daemons_of.get_mut(name).expect("lb").extend([h, k]);
    }

    // The host's sshd stand-in and an internet service that reports who called.
    let _host_ssh = listen(&host, ip("0.0.0.0"), 22, "ssh");
    let _inet_svc = inet.spawn(&[
        "socat",
        "TCP-LISTEN:8080,fork,reuseaddr",
        "SYSTEM:head -c1 >/dev/null; echo $SOCAT_PEERADDR",
    ]);

    // DNS and NTP on the node(s) with those roles, from the bundle's files.
    let infra_vm = c.with_role(Role::Dns).next().expect("dns node");
    let infra_addr = infra_vm.primary_address().expect("address");
    let dir = private_dir(tmp.path().join("dns"));
    let mut zones = String::new();
    for entry in std::fs::read_dir(bundle_dir.join("dns")).expect("dns dir") {
        let path = entry.expect("entry").path();
        let fname = path.file_name().and_then(|f| f.to_str()).expect("name");
        if let Some(zone) = fname.strip_suffix(".zone") {
            zones.push_str(&format!(
                "zone \"{zone}\" {{ type primary; file \"{}\"; }};\n",
                path.display()
            ));
        }
    }
    let d = dir.display();
    let named_conf = write(&dir, "named.conf", &format!(
        "options {{ directory \"{d}\"; listen-on port 53 {{ {infra_addr}; }}; listen-on-v6 {{ none; }}; recursion no; dnssec-validation no; notify no; pid-file \"{d}/named.pid\"; session-keyfile \"{d}/session.key\"; }};\ncontrols {{ }};\n{zones}"
    ));
    let _named = node(infra_vm.name.as_str()).spawn_logged(
        &["named", "-g", "-u", "root", "-c", &named_conf],
        &dir.join("named.log"),
    );
    let sdir = private_dir(tmp.path().join("chrony-server"));
    let server = file("ntp/chrony-server.conf")
        .lines()
        .filter(|l| !l.starts_with("pool ") && !l.starts_with("driftfile"))
        .collect::<Vec<_>>()
        .join("\n")
        + &format!(
            "\npidfile {0}/pid\nbindcmdaddress {0}/sock\ndriftfile {0}/drift\n",
            sdir.display()
        );
    let sconf = write(&sdir, "chrony.conf", &server);
    let _chrony_s =
        node(infra_vm.name.as_str()).spawn(&["chronyd", "-u", "root", "-x", "-d", "-f", &sconf]);
    let cdir = private_dir(tmp.path().join("chrony-client"));
    let client = file("ntp/chrony-client.conf").replace("driftfile /var/lib/chrony/drift", "")
        + &format!(
            "pidfile {0}/pid\nbindcmdaddress {0}/sock\ndriftfile {0}/drift\n",
            cdir.display()
        );
    let cconf = write(&cdir, "chrony.conf", &client);
    let _chrony_c = node("master1").spawn(&["chronyd", "-u", "root", "-x", "-d", "-f", &cconf]);

    // A LAN client (not a VM: default route via the router).
    let lanc = ns("lanc");
    veth(&lanc, "eth0", &host, "lanc0");
    enslave(&host, "lanc0", lan.bridge.as_str());
    lanc.addr("eth0", ip("198.18.0.50"), 24);
    lanc.ip(&["route", "add", "default", "via", &lan.gateway.to_string()]);

    // WireGuard: the endpoint on the host, the laptop peer on the internet side.
    let wgh = format!("wh{p}");
    let wgc = format!("wc{p}");
    /// wireguard-go leaves its UAPI socket behind when killed.
    struct RmOnDrop(Vec<String>);
    impl Drop for RmOnDrop {
        fn drop(&mut self) {
            for p in &self.0 {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    let _sockets = RmOnDrop(vec![
        format!("/var/run/wireguard/{wgh}.sock"),
        format!("/var/run/wireguard/{wgc}.sock"),
    ]);
    let _wg_host = host.spawn(&["wireguard-go", "-f", &wgh]);
    let vpnc = ns("vpnc");
    veth(&router, "eth2", &vpnc, "eth0");
    router.addr("eth2", ip("198.18.201.1"), 24);
    vpnc.addr("eth0", ip("198.18.201.3"), 24);
    vpnc.ip(&["route", "add", "default", "via", "198.18.201.1"]);
    let _wg_client = vpnc.spawn(&["wireguard-go", "-f", &wgc]);
    wait_until(Duration::from_secs(10), || {
        Path::new(&format!("/var/run/wireguard/{wgh}.sock")).exists()
            && Path::new(&format!("/var/run/wireguard/{wgc}.sock")).exists()
    })
    .expect("wireguard-go sockets");
    // The laptop config dials the public VPN name; resolving it would send a
    // packet outside the lab, so its Endpoint line is dropped and the peer
    // pointed at the host's LAN address.
    let laptop: String = flatcar_net::wireguard::strip(&file("vpn/laptop.conf"))
        .lines()
        .filter(|l| !l.starts_with("Endpoint"))
        .map(|l| format!("{l}\n"))
        .collect();
    let client_conf = write(tmp.path(), "wgc.conf", &laptop);
    let secret = |id: &flatcar_topology::SecretId| {
        flatcar_topology::Secret::new(
            file(&format!("secrets/{}", id.file_name()))
                .trim()
                .to_string(),
        )
    };
    let endpoint_kp = flatcar_net::wireguard::keypair(
        &flatcar_net::wireguard::ENDPOINT_SECRET,
        secret(&flatcar_net::wireguard::ENDPOINT_SECRET),
    )
    .expect("endpoint key");
    let peers: Vec<_> = vpn
        .peers
        .iter()
        .map(|p| {
            let kp = flatcar_net::wireguard::keypair(
                &flatcar_net::wireguard::peer_secret(p),
                secret(&flatcar_net::wireguard::peer_secret(p)),
            )
            .expect("peer key");
            (p.clone(), kp)
        })
        .collect();
    flatcar_net::wireguard::apply(
        &wgh,
        flatcar_net::wireguard::Backend::Userspace,
        &c,
        &endpoint_kp,
        &peers,
    )
    .expect("endpoint configured");
    let shown = String::from_utf8_lossy(&host.exec(&["wg", "showconf", &wgh]).stdout).to_string();
    for line in file("host/wg0.conf").lines().filter(|l| {
        l.starts_with("PublicKey") || l.starts_with("AllowedIPs") || l.starts_with("ListenPort")
    }) {
        assert!(shown.contains(line), "{line} missing in\n{shown}");
    }
    vpnc.exec(&["wg", "setconf", &wgc, &client_conf]);
    vpnc.exec(&[
        "wg",
        "set",
        &wgc,
        "peer",
        file("vpn/endpoint.pub").trim(),
        "endpoint",
        &format!("{host_addr}:{}", vpn.listen_port.get()),
    ]);
    let vpn_host = vpn.address;
    host.addr(&wgh, vpn_host, vpn.subnet.prefix_len());
    let laptop_addr = vpn
        .peers
        .iter()
        .find(|p| p.name.as_str() == "laptop")
        .expect("laptop peer")
        .address;
    vpnc.addr(&wgc, laptop_addr, 32);
    let mut tunneled: Vec<String> = c.networks().iter().map(|n| n.cidr.to_string()).collect();
    tunneled.push(vpn.subnet.to_string());
    for net in &tunneled {
        vpnc.ip(&["route", "replace", net, "dev", &wgc]);
    }
    // The endpoint itself stays outside the tunnel (wg-quick does this with
    // policy routing; a real laptop dials a public address).
    vpnc.ip(&[
        "route",
        "add",
        &format!("{host_addr}/32"),
        "via",
        "198.18.201.1",
        "dev",
        "eth0",
    ]);

    // The generated ruleset, applied atomically on the host as JSON; its
    // text form is exactly the bundle's file.
    let composed =
        flatcar_microcloud::services::compose(&c, &mut BundleSecrets::from_bundle_dir(&bundle_dir))
            .expect("compose");
    let rs = flatcar_net::ruleset::build(&c, &composed.flows);
    assert_eq!(rs.to_text(), file("host/nftables.nft"));
    flatcar_net::ruleset::apply_with(&rs, "ip", &["netns", "exec", &host.name, "nft"])
        .expect("ruleset applies");

    // Wait for the lab: WireGuard handshake, VRRP, etcd.
    wait_until(Duration::from_secs(20), || {
        let _ = vpnc.try_exec(&["ping", "-c1", "-W1", &vpn_host.to_string()]);
        let out = vpnc.try_exec(&["wg", "show", &wgc, "latest-handshakes"]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .is_some_and(|t| t != "0")
    })
    .expect("WireGuard handshake");
    let api = c.vip("api").expect("api vip").address;
    let web = c.vip("web").expect("web vip").address;
    let holders = |addr: Ipv4Addr| -> Vec<String> {
        lbs.iter()
            .filter(|lb| lb_lab::holds(node(lb), addr))
            .cloned()
            .collect()
    };
    let first_lb = vec![lbs[0].clone()];
    wait_until(Duration::from_secs(10), || {
        c.vips().iter().all(|v| holders(v.address) == first_lb)
    })
    .expect("lb1 holds every VIP");
    wait_until(Duration::from_secs(10), || {
        open(&lanc, api, 6443).is_some_and(|b| b.starts_with("master"))
    })
    .expect("API through HAProxy");
    wait_until(Duration::from_secs(20), || {
        etcd_put(node("master1"), masters[0].1, "up")
    })
    .expect("etcd cluster formed");

    // Each K3s node's join URL, read from its generated config in the bundle.
    let joiners: Vec<(String, Ipv4Addr, u16)> = c
        .vms()
        .iter()
        .filter_map(|vm| {
            let path = bundle_dir.join(format!("k3s/{}/config.yaml", vm.name));
            let text = std::fs::read_to_string(path).ok()?;
            let (addr, port) = support::join_target(&text)?;
            Some((vm.name.to_string(), addr, port))
        })
        .collect();
    assert_eq!(joiners.len(), 6, "every K3s node but the first joins");

    let mut rows: Vec<(String, String, bool, bool)> = Vec::new();
    let mut check = |what: &str, from: &str, expect: bool, got: bool| {
        rows.push((what.to_string(), from.to_string(), expect, got))
    };
    let is = |got: Option<String>, prefix: &str| got.is_some_and(|g| g.starts_with(prefix));
    let m1 = c.vm("master1").expect("vm").primary_address().expect("a");
    let w1 = c.vm("worker1").expect("vm").primary_address().expect("a");
    let st1 = c.vm("storage1").expect("vm").primary_address().expect("a");
    let db1 = c
        .vm("postgresql1")
        .expect("vm")
        .primary_address()
        .expect("a");
    let lb1_lan = c.vm(&lbs[0]).expect("vm").primary_address().expect("a");
    // Internet-side packets that skip the router's forward chain (sent by
    // the router itself from its WAN address): what the host's ruleset
    // alone lets in from the internet side.
    let past_router = |addr: Ipv4Addr, port: u16| open_from(&router, wan_addr, addr, port);
    // The router's port forwards (public port -> web VIP port).
    let forwards = flatcar_net::router::forwards(&c);
    let public_for = |port: u16| {
        forwards
            .iter()
            .find(|f| f.address == web && f.port == port)
            .map(|f| f.public)
            .expect("a forward to the web VIP port")
    };
    let (pub80, pub443) = (public_for(80), public_for(443));
    let ingress = c.k3s().ingress.web.get();

    // Claim: the Kubernetes API only from the LAN or through the VPN.
    check(
        "api VIP :6443 -> master",
        "lan",
        true,
        is(open(&lanc, api, 6443), "master"),
    );
    check(
        "api VIP :6443 -> master",
        "vpn tunnel",
        true,
        is(open(&vpnc, api, 6443), "master"),
    );
    check(
        "api VIP :6443",
        "internet (no router)",
        false,
        past_router(api, 6443).is_some(),
    );
    check(
        "master1 :6443 (direct)",
        "internet (no router)",
        false,
        past_router(m1, 6443).is_some(),
    );
    check(
        "master1 :6443 (direct)",
        "vpn tunnel",
        true,
        open(&vpnc, m1, 6443).is_some(),
    );
    check(
        "master1 :6443 (no flow)",
        "lan",
        false,
        open(&lanc, m1, 6443).is_some(),
    );
    check(
        "master1 :6443",
        "lb1 (k8s nic)",
        true,
        is(open(node(&lbs[0]), m1, 6443), "master1"),
    );
    // Claim: the host accepts traffic only from the LAN and the VPN.
    check(
        "host :22",
        "lan",
        true,
        open(&lanc, host_addr, 22).is_some(),
    );
    check(
        "host :22 (vpn address)",
        "vpn tunnel",
        true,
        open(&vpnc, vpn_host, 22).is_some(),
    );
    check(
        "host :22",
        "internet (no router)",
        false,
        past_router(host_addr, 22).is_some(),
    );
    let k8s_gw = c.network("k8s").expect("k8s").gateway;
    check(
        "host :22 (bridge address)",
        "master1 (NAT)",
        false,
        open(node("master1"), k8s_gw, 22).is_some(),
    );
    // Claim: the internet reaches the web VIP only through the router's
    // port forwards (bundle: router/nftables.nft), never directly.
    check(
        &format!("router :{pub80} -> web VIP :80 -> worker"),
        "internet",
        true,
        is(open(&inet, wan_addr, pub80), "worker"),
    );
    check(
        &format!("router :{pub443} -> web VIP :443 -> worker"),
        "internet",
        true,
        is(open(&inet, wan_addr, pub443), "worker"),
    );
    check(
        "web VIP :80 (direct, not forwarded)",
        "internet",
        false,
        open(&inet, web, 80).is_some(),
    );
    check(
        "api VIP :6443 (direct)",
        "internet",
        false,
        open(&inet, api, 6443).is_some(),
    );
    check(
        "router :6443 (no such forward)",
        "internet",
        false,
        open(&inet, wan_addr, 6443).is_some(),
    );
    // Claim: web traffic enters only via the web VIP.
    check(
        "web VIP :80 -> worker",
        "internet (no router)",
        true,
        is(past_router(web, 80), "worker"),
    );
    check(
        "web VIP :443 -> worker",
        "internet (no router)",
        true,
        is(past_router(web, 443), "worker"),
    );
    check(
        "web VIP :80 -> worker",
        "lan",
        true,
        is(open(&lanc, web, 80), "worker"),
    );
    check(
        "worker1 ingress port (direct)",
        "internet (no router)",
        false,
        past_router(w1, ingress).is_some(),
    );
    check(
        "worker1 ingress port (direct)",
        "lan",
        false,
        open(&lanc, w1, ingress).is_some(),
    );
    check(
        "lb1 own address :80 (not the VIP)",
        "lan",
        false,
        open(&lanc, lb1_lan, 80).is_some(),
    );
    // The flows the services declared, and nothing else.
    check(
        "master1 :22 (routed)",
        "lan",
        true,
        open(&lanc, m1, 22).is_some(),
    );
    check(
        "master1 :22",
        "internet (no router)",
        false,
        past_router(m1, 22).is_some(),
    );
    check(
        "postgresql1 :5432 (k8s->infra)",
        "worker1",
        true,
        open(node("worker1"), db1, 5432).is_some(),
    );
    check(
        "postgresql1 :5432 (no flow)",
        "master1",
        false,
        open(node("master1"), db1, 5432).is_some(),
    );
    check(
        "postgresql1 :5432",
        "internet (no router)",
        false,
        past_router(db1, 5432).is_some(),
    );
    check(
        "storage1 nfs :2049",
        "worker1",
        true,
        open(node("worker1"), st1, 2049).is_some(),
    );
    check(
        "storage1 nfs :2049",
        "internet (no router)",
        false,
        past_router(st1, 2049).is_some(),
    );
    let seen = open(node("master1"), ip("198.18.200.2"), 8080);
    check(
        "internet, masqueraded as host",
        "master1 (NAT)",
        true,
        seen.as_deref() == Some(host_addr.to_string().as_str()),
    );
    // DNS: every A record of the generated zone, from the LAN and the tunnel.
    let dig = |from: &Netns, args: &[&str]| -> String {
        let mut v = vec!["dig", "+short", "+time=2", "+tries=2"];
        let at = format!("@{infra_addr}");
        v.push(&at);
        v.extend_from_slice(args);
        String::from_utf8_lossy(&from.try_exec(&v).stdout)
            .trim()
            .to_string()
    };
    let zone = file(&format!("dns/{domain}.zone"));
    let records: Vec<(String, String)> = zone
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4 && f[1] == "IN" && f[2] == "A")
                .then(|| (f[0].to_string(), f[3].to_string()))
        })
        .collect();
    assert!(records.len() >= 15, "{zone}");
    for (from_name, from) in [("lan", &lanc), ("vpn tunnel", &vpnc)] {
        let wrong: Vec<String> = records
            .iter()
            .filter_map(|(label, addr)| {
                let name = format!("{}.{domain}", label.replace('*', "anything"));
                let got = dig(from, &[&name]);
                (got != *addr).then(|| format!("{name} -> {got:?} (want {addr})"))
            })
            .collect();
        println!(
            "dns from {from_name}: {} names, wrong: {wrong:?}",
            records.len()
        );
        check(
            "dns: every zone name (A)",
            if from_name == "lan" {
                "lan"
            } else {
                "vpn tunnel"
            },
            true,
            wrong.is_empty(),
        );
    }
    let ptr = dig(&vpnc, &["-x", &m1.to_string()]);
    check(
        "dns PTR of master1",
        "vpn tunnel",
        true,
        ptr == format!("master1.{domain}."),
    );
    // Without br_netfilter (a host where switched frames skip the inet
    // chains), the bridge table alone keeps the API VIP closed to the
    // internet side and the web VIP open.
    host.sysctl("net.bridge.bridge-nf-call-iptables", "0");
    check(
        "api VIP :6443 (no br_netfilter)",
        "internet (no router)",
        false,
        past_router(api, 6443).is_some(),
    );
    check(
        "web VIP :80 (no br_netfilter)",
        "internet (no router)",
        true,
        is(past_router(web, 80), "worker"),
    );
    check(
        &format!("router :{pub80} -> web VIP :80 (no br_netfilter)"),
        "internet",
        true,
        is(open(&inet, wan_addr, pub80), "worker"),
    );
    check(
        "api VIP :6443 (no br_netfilter)",
        "lan",
        true,
        is(open(&lanc, api, 6443), "master"),
    );
    // Claim: every joining node reaches the API along an allowed, symmetric
    // path: its real join URL (`server:` of its generated K3s config), from
    // its own namespace, with the host's ruleset and no br_netfilter.
    for (vm, addr, port) in &joiners {
        check(
            &format!("k3s join {addr}:{port} (no br_netfilter)"),
            vm,
            true,
            is(open(node(vm), *addr, *port), "master"),
        );
    }
    host.sysctl("net.bridge.bridge-nf-call-iptables", "1");
    // Time: master1 (NAT) syncs with the infra node.
    let synced = wait_until(Duration::from_secs(30), || {
        let out = node("master1").try_exec(&[
            "chronyc",
            "-h",
            &format!("{}/sock", cdir.display()),
            "-n",
            "sources",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.starts_with("^*") && l.contains(&infra_addr.to_string()))
    })
    .is_some();
    check("ntp sync with infra", "master1 (NAT)", true, synced);
    // Round robin over all workers.
    let workers: std::collections::BTreeSet<String> =
        (0..12).filter_map(|_| open(&lanc, web, 80)).collect();
    check(
        "web VIP spreads over all 3 workers",
        "lan",
        true,
        workers.len() == 3,
    );

    // Claim: a load balancer dying moves both VIPs to the other one, while
    // a client keeps connecting.
    let t0 = Instant::now();
    let prober = Prober::start(&lanc.name, vec![(api, 6443), (web, 80)], t0);
    std::thread::sleep(Duration::from_millis(500));
    let crash_at = t0.elapsed();
    {
        let lb1 = &nodes[&lbs[0]];
        for nic in c.nics(c.vm(&lbs[0]).expect("vm")) {
            lb1.ns.ip(&["link", "set", nic.ifname.as_str(), "down"]);
        }
        lb1.ns.kill_all();
        daemons_of.get_mut(&lbs[0]).expect("lb1").clear();
    }
    // The crash takes a few process spawns; an attempt that started before
    // lb1's links were down may still succeed through lb1 and is neither
    // "before" nor "after" the crash.
    let crash_done = t0.elapsed();
    let second_lb = vec![lbs[1].clone()];
    let moved = wait_until(Duration::from_secs(5), || {
        c.vips().iter().all(|v| holders(v.address) == second_lb)
    });
    std::thread::sleep(Duration::from_secs(3));
    let log = prober.finish();
    for (i, target) in ["api VIP :6443", "web VIP :80"].iter().enumerate() {
        let after: Vec<&(Duration, usize, bool)> = log
            .iter()
            .filter(|(t, j, _)| *j == i && *t >= crash_done)
            .collect();
        let before_ok = log
            .iter()
            .filter(|(t, j, ok)| *j == i && *t < crash_at && *ok)
            .count();
        let first_ok = after
            .iter()
            .find(|(_, _, ok)| *ok)
            .map(|(t, _, _)| *t - crash_at);
        let back_at = first_ok.map(|d| crash_at + d);
        let lost_after_back = after
            .iter()
            .filter(|(t, _, ok)| !ok && back_at.is_some_and(|b| *t > b))
            .count();
        println!(
            "failover {target}: {before_ok} ok before the crash; first success {:?} after it; \
             {} attempts after the crash, {lost_after_back} failed once it was back",
            first_ok,
            after.len()
        );
        let ok = before_ok > 0
            && first_ok.is_some_and(|d| d < Duration::from_secs(2))
            && lost_after_back == 0;
        if !ok {
            let failed: Vec<String> = after
                .iter()
                .filter(|(_, _, ok)| !ok)
                .map(|(t, _, _)| format!("{:?}", *t - crash_at))
                .collect();
            println!(
                "failover {target}: crash took {:?}; failed attempts (start, after the crash): {}",
                crash_done - crash_at,
                failed.join(" ")
            );
        }
        check(
            &format!("{target} back within 2 s of lb1 crash"),
            "lan (probing)",
            true,
            ok,
        );
    }
    check("every VIP moved to lb2", "-", true, moved.is_some());
    // The join path survives the crash: the same URLs, now through lb2.
    host.sysctl("net.bridge.bridge-nf-call-iptables", "0");
    for (vm, addr, port) in &joiners {
        check(
            &format!("k3s join {addr}:{port} (on lb2, no br_nf)"),
            vm,
            true,
            is(open(node(vm), *addr, *port), "master"),
        );
    }
    host.sysctl("net.bridge.bridge-nf-call-iptables", "1");
    // The security claims hold with lb2 holding the VIPs.
    check(
        "api VIP :6443 (on lb2)",
        "internet (no router)",
        false,
        past_router(api, 6443).is_some(),
    );
    check(
        "api VIP :6443 (on lb2)",
        "vpn tunnel",
        true,
        is(open(&vpnc, api, 6443), "master"),
    );
    check(
        "web VIP :443 (on lb2)",
        "internet (no router)",
        true,
        is(past_router(web, 443), "worker"),
    );

    check(
        &format!("router :{pub443} -> web VIP :443 (on lb2)"),
        "internet",
        true,
        is(open(&inet, wan_addr, pub443), "worker"),
    );

    // Claim: a master dying is taken out of HAProxy's rotation.
    {
        let m_name = "master1";
        let m = &nodes[m_name];
        m.ns.kill_all();
        daemons_of.get_mut(m_name).expect("master").clear();
    }
    let lb2_dir = nodes[&lbs[1]].dir.clone();
    let status = |server: &str| {
        lb_lab::stat_line(&lb2_dir, "api-6443", server)
            .and_then(|l| l.split(',').nth(lb_lab::STATUS).map(str::to_string))
            .unwrap_or_default()
    };
    let down = wait_until(Duration::from_secs(5), || {
        status("master1").starts_with("DOWN")
    });
    let answers: Vec<Option<String>> = (0..20).map(|_| open(&lanc, api, 6443)).collect();
    let rotation_ok = down.is_some()
        && answers
            .iter()
            .all(|a| matches!(a.as_deref(), Some("master2") | Some("master3")));
    println!("after master1 died: marked DOWN after {down:?}; answers {answers:?}");
    check(
        "dead master1 out of rotation (20/20 to master2/3)",
        "lan",
        true,
        rotation_ok,
    );
    // Claim: etcd keeps quorum with one master down (and only then).
    let write_2_of_3 = wait_until(Duration::from_secs(10), || {
        etcd_put(node("master2"), masters[1].1, "two-of-three")
    })
    .is_some();
    check(
        "etcd write, 2 of 3 members up",
        "master2",
        true,
        write_2_of_3,
    );
    {
        let m_name = "master2";
        let m = &nodes[m_name];
        m.ns.kill_all();
        daemons_of.get_mut(m_name).expect("master").clear();
    }
    std::thread::sleep(Duration::from_secs(1));
    let write_1_of_3 = etcd_put(node("master3"), masters[2].1, "one-of-three");
    check(
        "etcd write, 1 of 3 members up (no quorum)",
        "master3",
        false,
        write_1_of_3,
    );

    println!(
        "\n{:<48} {:<20} {:<8} {:<8}",
        "claim / target", "from", "expect", "result"
    );
    for (what, from, expect, got) in &rows {
        let e = if *expect { "open" } else { "closed" };
        let g = if *got { "open" } else { "closed" };
        println!(
            "{what:<48} {from:<20} {e:<8} {g:<8}{}",
            if expect == got { "" } else { "  <-- VIOLATED" }
        );
    }
    let bad: Vec<_> = rows.iter().filter(|(_, _, e, g)| e != g).collect();
    if !bad.is_empty() {
        for lb in &lbs {
            let log =
                std::fs::read_to_string(nodes[lb].dir.join("keepalived.log")).unwrap_or_default();
            println!(
                "{lb} keepalived (tail):\n{}",
                log.lines().rev().take(10).collect::<Vec<_>>().join("\n")
            );
        }
        for (m, _) in &masters {
            let log = std::fs::read_to_string(nodes[m].dir.join("etcd.log")).unwrap_or_default();
            println!(
                "{m} etcd (tail):\n{}",
                log.lines().rev().take(5).collect::<Vec<_>>().join("\n")
            );
        }
    }
    assert!(bad.is_empty(), "claims violated: {bad:?}");
}
