//! Live proof of the network claims, in network namespaces, from the
//! bundle's own files for the reference cloud on the test address plan:
//! the host namespace runs the generated nftables ruleset (the typed
//! ruleset's JSON, applied with `nft -j -f` by `ruleset::apply_with`, after
//! checking its text is the bundle's `host/nftables.nft`) and a real
//! WireGuard endpoint (wireguard-go, configured by `wireguard::apply`
//! through wireguard-control's userspace backend); the infra node serves
//! the generated zones with `named` from bind9 (CoreDNS is not packaged
//! here; same zone files) and time with `chronyd` from the generated server
//! config; a master syncs with the generated client config. An "internet"
//! namespace (198.18.200.0/24) sits behind the LAN router; a VPN client
//! dials the endpoint from there. LAN, load balancer, DNS/NTP node, router
//! sit on the host's LAN bridge; master, worker (k8s) and database (infra)
//! on the NAT bridges, so packets really cross the host's chains.
//! Prints the reachability matrix and asserts every claim.

mod support;

use flatcar_microcloud::reference::{cluster_with, AddressPlan};
use flatcar_microcloud::{Bundle, BundleSecrets};
use flatcar_topology::Cluster;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;
use support::*;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("ip")
}

/// Applies the `[Route]` sections of a VM's generated `.network` file.
fn routes_from_networkd(ns: &Netns, c: &Cluster, vm: &str, dev: &str) {
    let v = c.vm(vm).expect("vm");
    let text = flatcar_topology::provision::base::network_file(c, v, 0).expect("network file");
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

fn open(from: &Netns, addr: &str, port: u16) -> Option<String> {
    assert_test_addr(ip(addr));
    let out = from.try_exec(&[
        "socat",
        "-u",
        "-T2",
        &format!("TCP:{addr}:{port},connect-timeout=1.5"),
        "STDOUT",
    ]);
    let t = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !t.is_empty()).then_some(t)
}

fn listen(ns: &Netns, bind: &str, port: u16, reply: &str) -> Daemon {
    ns.spawn(&[
        "socat",
        &format!("TCP-LISTEN:{port},bind={bind},fork,reuseaddr"),
        &format!("SYSTEM:echo {reply}"),
    ])
}

fn file(b: &Bundle, p: &str) -> String {
    String::from_utf8(b.files()[p].contents.clone()).expect("utf8")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p.to_str().expect("utf8").to_string()
}

#[test]
fn reachability_matrix() {
    for t in [
        "nft",
        "socat",
        "wireguard-go",
        "wg",
        "named",
        "dig",
        "chronyd",
        "chronyc",
    ] {
        require(t);
    }
    let c = cluster_with(&AddressPlan::test()).expect("test cloud");
    let tmp = TempDir::new("netlive");
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    let b = Bundle::render(
        &c,
        &mut BundleSecrets::from_bundle_dir(&tmp.path().join("bundle")),
    )
    .expect("bundle");
    let p = unique("n");
    let ns = |n: &str| Netns::new(&format!("{p}{n}"));

    // The KVM host: LAN bridge, NAT bridges, routes, the generated ruleset.
    let host = ns("host");
    bridge(&host, "br0");
    bridge(&host, "virbr-k8s");
    bridge(&host, "virbr-infra");
    host.addr("br0", ip("198.18.0.40"), 24);
    host.addr("virbr-k8s", ip("198.18.4.1"), 24);
    host.addr("virbr-infra", ip("198.18.3.1"), 24);
    host.sysctl("net.ipv4.ip_forward", "1");
    let on_lan = |n: &Netns, port: &str| {
        veth(n, "eth0", &host, port);
        enslave(&host, port, "br0");
    };

    // The LAN router (unmanaged in real life) and the internet behind it.
    let router = ns("rtr");
    on_lan(&router, "rtr0");
    router.addr("eth0", ip("198.18.0.1"), 24);
    let inet = ns("inet");
    veth(&router, "eth1", &inet, "eth0");
    router.addr("eth1", ip("198.18.200.1"), 24);
    inet.addr("eth0", ip("198.18.200.2"), 24);
    inet.ip(&["route", "add", "default", "via", "198.18.200.1"]);
    router.sysctl("net.ipv4.ip_forward", "1");
    // The static routes a LAN router needs for non-VM LAN devices to reach
    // the networks behind the host (VMs get them from networkd). They also
    // let internet-side packets for the NAT networks reach the host, so the
    // "closed from the internet" rows below are the host's ruleset at work,
    // not a missing route.
    for net in ["198.18.3.0/24", "198.18.4.0/24", "198.18.9.0/24"] {
        router.ip(&["route", "add", net, "via", "198.18.0.40"]);
    }
    host.ip(&["route", "add", "default", "via", "198.18.0.1"]);

    // lb1 holding both VIPs (listeners stand in for HAProxy), on LAN and k8s.
    let lb = ns("lb1");
    on_lan(&lb, "lb1l");
    lb.addr("eth0", ip("198.18.0.11"), 24);
    lb.addr("eth0", ip("198.18.0.10"), 24);
    lb.addr("eth0", ip("198.18.0.14"), 24);
    veth(&lb, "eth1", &host, "lb1k");
    enslave(&host, "lb1k", "virbr-k8s");
    lb.addr("eth1", ip("198.18.4.11"), 24);
    routes_from_networkd(&lb, &c, "lb1", "eth0");
    let _l1 = listen(&lb, "198.18.0.10", 6443, "api");
    let _l2 = listen(&lb, "198.18.0.14", 80, "web");

    // master1 on the k8s NAT network.
    let master = ns("m1");
    veth(&master, "eth0", &host, "m1");
    enslave(&host, "m1", "virbr-k8s");
    master.addr("eth0", ip("198.18.4.21"), 24);
    routes_from_networkd(&master, &c, "master1", "eth0");
    let _l3 = listen(&master, "198.18.4.21", 6443, "master1");

    // worker1 on k8s and postgresql1 on the infra NAT network: a flow that
    // crosses two NAT bridges through the host's forward chain.
    let worker = ns("w1");
    veth(&worker, "eth0", &host, "w1");
    enslave(&host, "w1", "virbr-k8s");
    worker.addr("eth0", ip("198.18.4.24"), 24);
    routes_from_networkd(&worker, &c, "worker1", "eth0");
    let db = ns("db");
    veth(&db, "eth0", &host, "db1");
    enslave(&host, "db1", "virbr-infra");
    db.addr("eth0", ip("198.18.3.14"), 24);
    routes_from_networkd(&db, &c, "postgresql1", "eth0");
    let _l6 = listen(&db, "198.18.3.14", 5432, "postgres");
    let _l7 = listen(&master, "198.18.4.21", 22, "master1-ssh");
    let _l8 = listen(&lb, "198.18.0.14", 443, "websecure");

    // The host's sshd stand-in and an internet service that reports who called.
    let _l4 = listen(&host, "0.0.0.0", 22, "ssh");
    let _l5 = inet.spawn(&[
        "socat",
        "TCP-LISTEN:8080,fork,reuseaddr",
        "SYSTEM:echo $SOCAT_PEERADDR",
    ]);

    // infra: named with the generated zones, chronyd with the generated server config.
    let infra = ns("infra");
    on_lan(&infra, "infra0");
    infra.addr("eth0", ip("198.18.0.30"), 24);
    routes_from_networkd(&infra, &c, "infra", "eth0");
    let dir = tmp.path();
    let mut zones = String::new();
    for (path, f) in b
        .files()
        .iter()
        .filter(|(p, _)| p.starts_with("dns/") && p.ends_with(".zone"))
    {
        let name = path.trim_start_matches("dns/").trim_end_matches(".zone");
        let zf = write(
            dir,
            &format!("{name}.zone"),
            std::str::from_utf8(&f.contents).expect("utf8"),
        );
        zones.push_str(&format!(
            "zone \"{name}\" {{ type primary; file \"{zf}\"; }};\n"
        ));
    }
    let d = dir.display();
    let named_conf = write(dir, "named.conf", &format!(
        "options {{ directory \"{d}\"; listen-on port 53 {{ 198.18.0.30; }}; listen-on-v6 {{ none; }}; recursion no; dnssec-validation no; notify no; pid-file \"{d}/named.pid\"; session-keyfile \"{d}/session.key\"; }};\ncontrols {{ }};\n{zones}"
    ));
    let _named = infra.spawn_logged(
        &["named", "-g", "-u", "root", "-c", &named_conf],
        &dir.join("named.log"),
    );
    let sdir = dir.join("chrony-server");
    std::fs::create_dir_all(&sdir).expect("dir");
    std::fs::set_permissions(&sdir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    let server = file(&b, "ntp/chrony-server.conf")
        .lines()
        .filter(|l| !l.starts_with("pool ") && !l.starts_with("driftfile"))
        .collect::<Vec<_>>()
        .join("\n")
        + &format!(
            "\npidfile {0}/pid\nbindcmdaddress {0}/sock\ndriftfile {0}/drift\n",
            sdir.display()
        );
    let sconf = write(&sdir, "chrony.conf", &server);
    let _chrony_s = infra.spawn(&["chronyd", "-u", "root", "-x", "-d", "-f", &sconf]);
    let cdir = dir.join("chrony-client");
    std::fs::create_dir_all(&cdir).expect("dir");
    std::fs::set_permissions(&cdir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    let client = file(&b, "ntp/chrony-client.conf").replace("driftfile /var/lib/chrony/drift", "")
        + &format!(
            "pidfile {0}/pid\nbindcmdaddress {0}/sock\ndriftfile {0}/drift\n",
            cdir.display()
        );
    let cconf = write(&cdir, "chrony.conf", &client);
    let _chrony_c = master.spawn(&["chronyd", "-u", "root", "-x", "-d", "-f", &cconf]);

    // A LAN client.
    let lanc = ns("lanc");
    on_lan(&lanc, "lanc0");
    lanc.addr("eth0", ip("198.18.0.50"), 24);
    lanc.ip(&["route", "add", "default", "via", "198.18.0.1"]);

    // WireGuard: endpoint on the host, the laptop peer on the internet side.
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
    // The generated laptop config dials vpn.microcloud.example.org; `wg`
    // would resolve that name (a packet we must not send), so the test drops
    // the Endpoint line and points the peer at the host's LAN address, where
    // the router forwards the WireGuard port.
    let laptop: String = flatcar_net::wireguard::strip(&file(&b, "vpn/laptop.conf"))
        .lines()
        .filter(|l| !l.starts_with("Endpoint"))
        .map(|l| format!("{l}\n"))
        .collect();
    let client_conf = write(dir, "wgc.conf", &laptop);
    // The endpoint side through the library (wireguard-control, userspace
    // backend: talks to the wireguard-go socket started in the host namespace).
    let secret = |name: &str| {
        flatcar_topology::Secret::new(file(&b, &format!("secrets/{name}")).trim().to_string())
    };
    let endpoint_kp =
        flatcar_net::wireguard::keypair(secret(flatcar_net::wireguard::ENDPOINT_SECRET))
            .expect("endpoint key");
    let vpn = c.vpn().expect("vpn");
    let peers: Vec<_> = vpn
        .peers
        .iter()
        .map(|p| {
            let kp =
                flatcar_net::wireguard::keypair(secret(&flatcar_net::wireguard::peer_secret(p)))
                    .expect("peer key");
            (p.clone(), kp)
        })
        .collect();
    flatcar_net::wireguard::apply(
        &wgh,
        wireguard_control::Backend::Userspace,
        &c,
        &endpoint_kp,
        &peers,
    )
    .expect("endpoint configured");
    // Same as the generated wg-quick file says.
    let shown = String::from_utf8_lossy(&host.exec(&["wg", "showconf", &wgh]).stdout).to_string();
    assert!(
        shown.contains("ListenPort = 51820") && shown.contains("AllowedIPs = 198.18.9.3/32"),
        "{shown}"
    );
    for line in file(&b, "host/wg0.conf").lines().filter(|l| {
        l.starts_with("PublicKey") || l.starts_with("AllowedIPs") || l.starts_with("ListenPort")
    }) {
        assert!(shown.contains(line), "{line} missing in\n{shown}");
    }
    vpnc.exec(&["wg", "setconf", &wgc, &client_conf]);
    let endpoint_pub = file(&b, "vpn/endpoint.pub");
    vpnc.exec(&[
        "wg",
        "set",
        &wgc,
        "peer",
        endpoint_pub.trim(),
        "endpoint",
        "198.18.0.40:51820",
    ]);
    host.addr(&wgh, ip("198.18.9.1"), 24);
    vpnc.addr(&wgc, ip("198.18.9.3"), 32);
    for net in [
        "198.18.0.0/24",
        "198.18.3.0/24",
        "198.18.4.0/24",
        "198.18.9.0/24",
    ] {
        vpnc.ip(&["route", "replace", net, "dev", &wgc]);
    }
    // The endpoint itself must not be routed into the tunnel (wg-quick does
    // this with policy routing; a real laptop dials a public address).
    vpnc.ip(&[
        "route",
        "add",
        "198.18.0.40/32",
        "via",
        "198.18.201.1",
        "dev",
        "eth0",
    ]);

    // The generated ruleset (with the services' flows), applied atomically
    // on the host as JSON; its text form is exactly the bundle's file.
    let services = flatcar_microcloud::services::all();
    let refs: Vec<&dyn flatcar_topology::provision::Service> =
        services.iter().map(|s| s.as_ref()).collect();
    let composed = flatcar_topology::provision::compose(
        &c,
        &refs,
        &mut BundleSecrets::from_bundle_dir(&tmp.path().join("bundle")),
    )
    .expect("compose");
    let rs = flatcar_net::ruleset::build(&c, &composed.flows);
    assert_eq!(rs.to_text(), file(&b, "host/nftables.nft"));
    flatcar_net::ruleset::apply_with(&rs, "ip", &["netns", "exec", &host.name, "nft"])
        .expect("ruleset applies");

    // Wait for the WireGuard handshake (the first initiation may have been
    // sent before the routes existed; WireGuard retries after ~5 s).
    wait_until(Duration::from_secs(20), || {
        let _ = vpnc.try_exec(&["ping", "-c1", "-W1", "198.18.9.1"]);
        let out = vpnc.try_exec(&["wg", "show", &wgc, "latest-handshakes"]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .is_some_and(|t| t != "0")
    })
    .expect("WireGuard handshake");
    // Give named, chronyd and the listeners a moment.
    wait_until(Duration::from_secs(10), || {
        open(&lanc, "198.18.0.10", 6443).is_some()
    })
    .expect("lab up");

    let dig = |from: &Netns, name: &str| -> String {
        let out = from.try_exec(&["dig", "+short", "+time=2", "+tries=2", "@198.18.0.30", name]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let mut rows: Vec<(&str, &str, bool, bool)> = Vec::new();
    let mut check = |what: &'static str, from: &'static str, expect: bool, got: bool| {
        rows.push((what, from, expect, got))
    };
    check(
        "api VIP :6443",
        "internet",
        false,
        open(&inet, "198.18.0.10", 6443).is_some(),
    );
    check(
        "host :22",
        "internet",
        false,
        open(&inet, "198.18.0.40", 22).is_some(),
    );
    check(
        "web VIP :80",
        "internet",
        true,
        open(&inet, "198.18.0.14", 80).is_some(),
    );
    check(
        "api VIP :6443",
        "lan",
        true,
        open(&lanc, "198.18.0.10", 6443).is_some(),
    );
    check(
        "host :22",
        "lan",
        true,
        open(&lanc, "198.18.0.40", 22).is_some(),
    );
    check(
        "api VIP :6443",
        "vpn tunnel",
        true,
        open(&vpnc, "198.18.0.10", 6443).is_some(),
    );
    // Through the tunnel the host is its VPN address (its LAN address is the
    // WireGuard endpoint in this lab, routed outside the tunnel).
    check(
        "host :22 (vpn address)",
        "vpn tunnel",
        true,
        open(&vpnc, "198.18.9.1", 22).is_some(),
    );
    check(
        "master1 :6443",
        "lb1 (k8s nic)",
        true,
        open(&lb, "198.18.4.21", 6443).as_deref() == Some("master1"),
    );
    check(
        "master1 :6443",
        "internet",
        false,
        open(&inet, "198.18.4.21", 6443).is_some(),
    );
    check(
        "web VIP :443",
        "internet",
        true,
        open(&inet, "198.18.0.14", 443).is_some(),
    );
    check(
        "master1 :22 (routed)",
        "lan",
        true,
        open(&lanc, "198.18.4.21", 22).is_some(),
    );
    check(
        "master1 :6443 (no flow)",
        "lan",
        false,
        open(&lanc, "198.18.4.21", 6443).is_some(),
    );
    check(
        "master1 :22",
        "internet",
        false,
        open(&inet, "198.18.4.21", 22).is_some(),
    );
    check(
        "master1 :6443",
        "vpn tunnel",
        true,
        open(&vpnc, "198.18.4.21", 6443).is_some(),
    );
    check(
        "postgresql1 :5432 (k8s->infra)",
        "worker1",
        true,
        open(&worker, "198.18.3.14", 5432).is_some(),
    );
    check(
        "postgresql1 :5432 (no flow)",
        "master1",
        false,
        open(&master, "198.18.3.14", 5432).is_some(),
    );
    check(
        "postgresql1 :5432",
        "internet",
        false,
        open(&inet, "198.18.3.14", 5432).is_some(),
    );
    let seen = open(&master, "198.18.200.2", 8080);
    check(
        "internet, masqueraded as host",
        "master1 (NAT)",
        true,
        seen.as_deref() == Some("198.18.0.40"),
    );
    // DNS: every A record of the generated zone, from the LAN and through the tunnel.
    let domain = c.domain().to_string();
    let zone = file(&b, &format!("dns/{domain}.zone"));
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
        let mut wrong = Vec::new();
        for (label, addr) in &records {
            let name = format!("{}.{domain}", label.replace('*', "anything"));
            let got = dig(from, &name);
            if got != *addr {
                wrong.push(format!("{name} -> {got:?} (want {addr})"));
            }
        }
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
    let ptr = {
        let out = vpnc.try_exec(&[
            "dig",
            "+short",
            "+time=2",
            "+tries=2",
            "@198.18.0.30",
            "-x",
            "198.18.4.21",
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    check(
        "dns PTR 198.18.4.21",
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
        "internet",
        false,
        open(&inet, "198.18.0.10", 6443).is_some(),
    );
    check(
        "web VIP :80 (no br_netfilter)",
        "internet",
        true,
        open(&inet, "198.18.0.14", 80).is_some(),
    );
    check(
        "api VIP :6443 (no br_netfilter)",
        "lan",
        true,
        open(&lanc, "198.18.0.10", 6443).is_some(),
    );
    host.sysctl("net.bridge.bridge-nf-call-iptables", "1");
    let synced = wait_until(Duration::from_secs(30), || {
        let out = master.try_exec(&[
            "chronyc",
            "-h",
            &format!("{}/sock", cdir.display()),
            "-n",
            "sources",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.starts_with("^*") && l.contains("198.18.0.30"))
    })
    .is_some();
    check("ntp sync with infra", "master1 (NAT)", true, synced);

    println!(
        "\n{:<34} {:<16} {:<8} {:<8}",
        "target", "from", "expect", "result"
    );
    for (what, from, expect, got) in &rows {
        let e = if *expect { "open" } else { "closed" };
        let g = if *got { "open" } else { "closed" };
        println!(
            "{what:<34} {from:<16} {e:<8} {g:<8}{}",
            if expect == got { "" } else { "  <-- VIOLATED" }
        );
    }
    let bad: Vec<_> = rows.iter().filter(|(_, _, e, g)| e != g).collect();
    if !bad.is_empty() {
        let log = std::fs::read_to_string(dir.join("named.log")).unwrap_or_default();
        println!(
            "named log (tail):\n{}",
            log.lines().rev().take(8).collect::<Vec<_>>().join("\n")
        );
        let out = lanc.try_exec(&[
            "dig",
            "+time=2",
            "+tries=1",
            "@198.18.0.30",
            "api.microcloud.home.arpa",
        ]);
        println!(
            "dig from lan:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "wg host:\n{}",
            String::from_utf8_lossy(&host.try_exec(&["wg", "show", &wgh]).stdout)
        );
        println!(
            "wg client:\n{}",
            String::from_utf8_lossy(&vpnc.try_exec(&["wg", "show", &wgc]).stdout)
        );
        println!(
            "client routes:\n{}",
            String::from_utf8_lossy(&vpnc.try_exec(&["ip", "route"]).stdout)
        );
    }
    assert!(bad.is_empty(), "claims violated: {bad:?}");
}
