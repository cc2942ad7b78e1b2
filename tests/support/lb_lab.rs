//! A live lab of the reference cloud's load-balancing tier, built in network
//! namespaces from the generated HAProxy and Keepalived configs (test
//! address plan, 198.18.0.0/15): a switch namespace with a LAN and a k8s
//! bridge, two LB namespaces, three masters and three workers listening on
//! their backend ports (each answers with its name), and a client on the LAN.
#![allow(dead_code)]

use crate::support::*;
use flatcar_lb::{haproxy, keepalived, Settings};
use flatcar_microcloud::reference::{cluster_with, AddressPlan};
use flatcar_topology::{Cluster, Role};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// One load balancer: its namespace and daemons.
pub struct LbNode {
    pub name: String,
    pub ns: Netns,
    pub dir: PathBuf,
    pub haproxy: Option<Daemon>,
    pub keepalived: Option<Daemon>,
}

/// The lab. Dropping it kills every daemon and deletes every namespace.
pub struct Lab {
    pub cluster: Cluster,
    pub settings: Settings,
    pub lbs: Vec<LbNode>,
    pub backends: Vec<(String, Netns, Vec<Daemon>)>,
    pub client: Netns,
    pub sw: Netns,
    pub tmp: TempDir,
}

pub const CLIENT: &str = "198.18.0.50";
/// `show stat` column: total sessions sent to the server.
pub const STOT: usize = 7;
/// `show stat` column: connection errors to the server.
pub const ECON: usize = 13;
/// `show stat` column: status (`UP`, `DOWN`, …).
pub const STATUS: usize = 17;

impl Lab {
    /// Builds the lab for the reference cloud on the test address plan and
    /// starts every daemon.
    pub fn new(settings: Settings) -> Lab {
        Lab::with_cluster(
            cluster_with(&AddressPlan::test()).expect("test cloud is valid"),
            settings,
        )
    }

    /// Builds the lab for `cluster` (a variant of the test cloud, e.g. with
    /// another preempt setting) and starts every daemon.
    pub fn with_cluster(cluster: Cluster, settings: Settings) -> Lab {
        for t in ["haproxy", "keepalived", "socat", "ip", "python3", "openssl"] {
            require(t);
        }
        let p = unique("l");
        let tmp = TempDir::new("lab");
        let sw = Netns::new(&format!("{p}sw"));
        bridge(&sw, "brlan");
        bridge(&sw, "brk8s");
        let attach = |ns: &Netns, ifname: &str, net: &str, port: &str| {
            veth(ns, ifname, &sw, port);
            enslave(&sw, port, if net == "lan" { "brlan" } else { "brk8s" });
        };
        let mut lbs = Vec::new();
        for vm in cluster.with_role(Role::LoadBalancer) {
            let ns = Netns::new(&format!("{p}{}", vm.name));
            ns.sysctl("net.ipv4.ip_nonlocal_bind", "1");
            for nic in cluster.nics(vm) {
                let port = format!("{}{}", vm.name, nic.index);
                attach(&ns, nic.ifname.as_str(), nic.network.name.as_str(), &port);
                ns.addr(nic.ifname.as_str(), nic.address, nic.prefix);
            }
            let dir = tmp.path().join(vm.name.as_str());
            std::fs::create_dir_all(&dir).expect("dir");
            lbs.push(LbNode {
                name: vm.name.to_string(),
                ns,
                dir,
                haproxy: None,
                keepalived: None,
            });
        }
        let mut backends = Vec::new();
        for vm in cluster
            .vms()
            .iter()
            .filter(|v| v.has(Role::Master) || v.has(Role::Worker))
        {
            let ns = Netns::new(&format!("{p}{}", vm.name));
            for nic in cluster.nics(vm) {
                attach(
                    &ns,
                    nic.ifname.as_str(),
                    nic.network.name.as_str(),
                    &format!("{}{}", vm.name, nic.index),
                );
                ns.addr(nic.ifname.as_str(), nic.address, nic.prefix);
            }
            let mut ports: Vec<u16> = Vec::new();
            for vip in cluster.vips() {
                for port in &vip.ports {
                    if vm.has(port.role) {
                        ports.push(cluster.backend_port(port).get());
                    }
                }
            }
            ports.sort();
            ports.dedup();
            let api_ports: Vec<u16> = cluster
                .vips()
                .iter()
                .flat_map(|v| &v.ports)
                .filter(|p| p.role == Role::Master)
                .map(|p| cluster.backend_port(p).get())
                .collect();
            let daemons = ports
                .iter()
                .map(|port| {
                    if vm.has(Role::Master) && api_ports.contains(port) {
                        spawn_api_standin(&ns, None, *port, vm.name.as_str())
                    } else {
                        ns.spawn(&[
                            "socat",
                            &format!("TCP-LISTEN:{port},fork,reuseaddr"),
                            &format!("SYSTEM:echo {}", vm.name),
                        ])
                    }
                })
                .collect();
            backends.push((vm.name.to_string(), ns, daemons));
        }
        let client = Netns::new(&format!("{p}cl"));
        attach(&client, "eth0", "lan", "client0");
        client.addr("eth0", CLIENT.parse().expect("ip"), 24);
        let mut lab = Lab {
            cluster,
            settings,
            lbs,
            backends,
            client,
            sw,
            tmp,
        };
        for i in 0..lab.lbs.len() {
            lab.start_haproxy(i);
            lab.start_keepalived(i);
        }
        lab
    }

    fn paths(&self, i: usize) -> (PathBuf, PathBuf) {
        paths(&self.lbs[i].dir)
    }

    /// Starts HAProxy on LB `i` from the generated config (only runtime paths rewritten).
    pub fn start_haproxy(&mut self, i: usize) {
        let vm = self.cluster.vm(&self.lbs[i].name).expect("lb");
        let cfg = haproxy::render(&self.cluster, vm, &self.settings).expect("renders");
        let d = spawn_haproxy(&self.lbs[i].ns, &self.lbs[i].dir, &cfg);
        self.lbs[i].haproxy = Some(d);
    }

    /// Starts Keepalived (VRRP only) on LB `i` with its own pid files.
    pub fn start_keepalived(&mut self, i: usize) {
        let vm = self.cluster.vm(&self.lbs[i].name).expect("lb");
        let conf = keepalived::render(&self.cluster, vm, &self.settings).expect("renders");
        let d = spawn_keepalived(&self.lbs[i].ns, &self.lbs[i].dir, &conf);
        self.lbs[i].keepalived = Some(d);
    }

    pub fn kill_haproxy(&mut self, i: usize) {
        if let Some(mut d) = self.lbs[i].haproxy.take() {
            d.kill();
        }
    }

    /// SIGKILLs HAProxy's worker on LB `i` (not the master). HAProxy's
    /// master then exits too (`exit-on-failure`); it is reaped here as
    /// docker's shim would reap it on a node. Returns once it is gone.
    pub fn kill_haproxy_worker(&mut self, i: usize) {
        let d = self.lbs[i].haproxy.as_mut().expect("haproxy runs");
        let master = d.pid().expect("pid");
        let workers = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
            .expect("children of haproxy's master");
        let worker = workers.split_whitespace().next().expect("a worker");
        run(&["kill", "-KILL", worker]);
        wait_until(Duration::from_secs(5), || d.reaped()).expect("haproxy's master exited");
    }

    /// SIGKILLs Keepalived's main process; its VRRP child notices the
    /// parent's death, releases the VIPs and exits — waited for here, so a
    /// restart does not find it "already running".
    pub fn kill_keepalived(&mut self, i: usize) {
        let child = std::fs::read_to_string(self.lbs[i].dir.join("vrrp.pid")).ok();
        if let Some(mut d) = self.lbs[i].keepalived.take() {
            d.kill();
        }
        if let Some(pid) = child.and_then(|p| p.trim().parse::<u32>().ok()) {
            wait_until(Duration::from_secs(10), || {
                !std::path::Path::new(&format!("/proc/{pid}")).exists()
            })
            .expect("keepalived's VRRP child exited");
        }
    }

    /// Simulates LB `i` dying: its links go down (so no goodbye advert
    /// leaves, as when a VM dies) and every daemon process on it, including
    /// Keepalived's VRRP child, is SIGKILLed at once. Returns immediately.
    pub fn crash(&mut self, i: usize) {
        let vm = self.cluster.vm(&self.lbs[i].name).expect("lb");
        for nic in self.cluster.nics(vm) {
            self.lbs[i]
                .ns
                .ip(&["link", "set", nic.ifname.as_str(), "down"]);
        }
        self.lbs[i].ns.kill_all();
        self.lbs[i].keepalived = None;
        self.lbs[i].haproxy = None;
    }

    /// Brings LB `i` back after [`Lab::crash`].
    pub fn revive(&mut self, i: usize) {
        let vm = self.cluster.vm(&self.lbs[i].name).expect("lb");
        for nic in self.cluster.nics(vm) {
            self.lbs[i]
                .ns
                .ip(&["link", "set", nic.ifname.as_str(), "up"]);
        }
        self.start_haproxy(i);
        self.start_keepalived(i);
    }

    /// Which LBs currently have `addr` configured.
    pub fn holders(&self, addr: Ipv4Addr) -> Vec<String> {
        self.lbs
            .iter()
            .filter(|lb| holds(&lb.ns, addr))
            .map(|lb| lb.name.clone())
            .collect()
    }

    /// One TCP connection from the client; returns the backend's name.
    pub fn connect(&self, addr: Ipv4Addr, port: u16, timeout: Duration) -> Option<String> {
        connect(&self.client.name, addr, port, timeout)
    }

    /// HAProxy's view of `backend`/`server` on LB `i` (`UP`, `DOWN`, …).
    pub fn server_status(&self, i: usize, backend: &str, server: &str) -> String {
        self.stat_line(i, backend, server)
            .and_then(|l| l.split(',').nth(STATUS).map(str::to_string))
            .unwrap_or_default()
    }

    /// A numeric `show stat` field of `backend`/`server` on LB `i`
    /// (e.g. [`STOT`]: sessions HAProxy sent to that server so far).
    pub fn server_counter(&self, i: usize, backend: &str, server: &str, field: usize) -> u64 {
        self.stat_line(i, backend, server)
            .and_then(|l| l.split(',').nth(field).and_then(|v| v.parse().ok()))
            .unwrap_or_else(|| panic!("no {backend}/{server} field {field} on lb {i}"))
    }

    fn stat_line(&self, i: usize, backend: &str, server: &str) -> Option<String> {
        stat_line(&self.lbs[i].dir, backend, server)
    }

    /// Kills backend `name`'s listeners (the process dies; the host stays).
    pub fn kill_backend(&mut self, name: &str) {
        if let Some((_, ns, daemons)) = self.backends.iter_mut().find(|(n, _, _)| n == name) {
            for d in daemons.iter_mut() {
                d.kill();
            }
            ns.kill_all();
        }
    }

    /// Keepalived's log of LB `i` (for failure messages).
    pub fn keepalived_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.lbs[i].dir.join("keepalived.log")).unwrap_or_default()
    }

    pub fn vip(&self, name: &str) -> Ipv4Addr {
        self.cluster.vip(name).expect("vip").address
    }
}

/// Runtime paths of an LB whose daemons run from `dir`: the stats socket
/// and HAProxy's pid file (Keepalived's track script reads it).
pub fn paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("admin.sock"), dir.join("haproxy.pid"))
}

/// Starts HAProxy in `ns` from a generated config, with only its runtime
/// paths (stats socket, pid file) rewritten into `dir`; waits until it runs.
pub fn spawn_haproxy(ns: &Netns, dir: &Path, generated: &str) -> Daemon {
    let (sock, pid) = paths(dir);
    let cfg = generated
        .replace(haproxy::STATS_SOCKET, sock.to_str().expect("utf8"))
        .replace(haproxy::PID_FILE, pid.to_str().expect("utf8"));
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).expect("write");
    let _ = std::fs::remove_file(&sock);
    let d = ns.spawn(&["haproxy", "-W", "-db", "-f", path.to_str().expect("utf8")]);
    wait_until(Duration::from_secs(10), || sock.exists() && pid.exists()).expect("haproxy started");
    d
}

/// Starts Keepalived (VRRP only) in `ns` from a generated config, with its
/// own pid files in `dir` (`ip netns exec` does not separate `/run`) and
/// the HAProxy pid file of [`paths`]; logs to `dir/keepalived.log`.
pub fn spawn_keepalived(ns: &Netns, dir: &Path, generated: &str) -> Daemon {
    let (_, pid) = paths(dir);
    let conf = generated.replace(haproxy::PID_FILE, pid.to_str().expect("utf8"));
    let path = dir.join("keepalived.conf");
    std::fs::write(&path, conf).expect("write");
    let f = |n: &str| dir.join(n).to_str().expect("utf8").to_string();
    ns.spawn_logged(
        &[
            "keepalived",
            "--dont-fork",
            "--log-console",
            "--vrrp",
            "-f",
            &f("keepalived.conf"),
            "-p",
            &f("k.pid"),
            "-r",
            &f("vrrp.pid"),
            "-c",
            &f("checkers.pid"),
            "-b",
            &f("bfd.pid"),
        ],
        &dir.join("keepalived.log"),
    )
}

/// The `show stat` line of `backend`/`server` from the HAProxy whose
/// runtime files are in `dir`.
pub fn stat_line(dir: &Path, backend: &str, server: &str) -> Option<String> {
    let (sock, _) = paths(dir);
    let out = Command::new("socat")
        .args(["-T1", "-", &format!("UNIX-CONNECT:{}", sock.display())])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            if let Some(mut s) = c.stdin.take() {
                let _ = s.write_all(b"show stat\n");
            }
            c.wait_with_output()
        })
        .expect("socat");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.starts_with(&format!("{backend},{server},")))
        .map(str::to_string)
}

/// The K3s API stand-in (K3s cannot run here): a TLS listener that answers
/// HAProxy's `GET /readyz` health check with 200 over HTTPS, as a K3s server
/// with `anonymous-auth=true` does, and a plain TCP client (the labs'
/// `socat -u` probes, which send nothing) with the backend's name, so data-path
/// tests still see which master answered.
const API_STANDIN: &str = r#"
import socket, ssl, sys, threading, select
bind, port, name, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((bind, port))
srv.listen(256)
def serve(c):
    try:
        ready, _, _ = select.select([c], [], [], 0.1)
        if ready and c.recv(1, socket.MSG_PEEK) == b"\x16":
            t = ctx.wrap_socket(c, server_side=True)
            t.settimeout(5)
            req = t.recv(4096).decode(errors="replace")
            path = req.split(" ")[1] if req.count(" ") >= 2 else ""
            ok = path in ("/readyz", "/livez", "/healthz")
            body = b"ok" if ok else b"Unauthorized"
            head = "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % ("200 OK" if ok else "401 Unauthorized", len(body))
            t.sendall(head.encode() + body)
            t.close()
        else:
            c.sendall((name + "\n").encode())
            c.close()
    except Exception:
        c.close()
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

/// A self-signed certificate for the API stand-ins, made once per process.
fn api_cert() -> (String, String) {
    static CERT: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    CERT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fmc-api-cert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("cert dir");
        let (cert, key) = (dir.join("api.crt"), dir.join("api.key"));
        let ok = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=k3s-api-standin",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl");
        assert!(
            ok.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        (
            cert.to_string_lossy().into_owned(),
            key.to_string_lossy().into_owned(),
        )
    })
    .clone()
}

/// Starts the K3s API stand-in ([`API_STANDIN`]) in `ns` on `bind:port`
/// (all addresses when `None`), answering plain probes with `name`.
pub fn spawn_api_standin(ns: &Netns, bind: Option<Ipv4Addr>, port: u16, name: &str) -> Daemon {
    let (cert, key) = api_cert();
    let bind = bind.map_or_else(|| "0.0.0.0".to_string(), |a| a.to_string());
    let port = port.to_string();
    ns.spawn(&[
        "python3",
        "-c",
        API_STANDIN,
        &bind,
        &port,
        name,
        &cert,
        &key,
    ])
}

/// Whether `addr` is configured on an interface in `ns` (a VIP holder).
pub fn holds(ns: &Netns, addr: Ipv4Addr) -> bool {
    let out = ns.try_exec(&["ip", "-4", "-o", "addr", "show"]);
    String::from_utf8_lossy(&out.stdout).contains(&format!(" {addr}/"))
}

/// One TCP connection from namespace `ns` (by name, so probing threads can
/// use it); what the server said, if it answered within `timeout`.
pub fn connect(ns: &str, addr: Ipv4Addr, port: u16, timeout: Duration) -> Option<String> {
    assert_test_addr(addr);
    let secs = format!("{:.3}", timeout.as_secs_f64());
    // -u: only read from the connection (sending nothing, no early FIN).
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "socat", "-u", &format!("-T{secs}")])
        .arg(format!("TCP:{addr}:{port},connect-timeout={secs}"))
        .arg("STDOUT")
        .output()
        .expect("socat");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}
