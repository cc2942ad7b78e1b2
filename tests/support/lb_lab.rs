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
    /// The generated HAProxy watcher (`haproxy::watch_script`), if any.
    pub watch: Option<Daemon>,
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
                watch: None,
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
            let daemons = spawn_backends(&cluster, vm, &ns);
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

    /// Starts HAProxy on LB `i` from the generated config (only runtime
    /// paths rewritten), and the generated watcher if the settings have one.
    pub fn start_haproxy(&mut self, i: usize) {
        let vm = self.cluster.vm(&self.lbs[i].name).expect("lb");
        let cfg = haproxy::render(&self.cluster, vm, &self.settings).expect("renders");
        let d = spawn_haproxy(
            &self.lbs[i].ns,
            &self.lbs[i].dir,
            &cfg,
            self.settings.haproxy_nice,
        );
        self.lbs[i].haproxy = Some(d);
        if let Some(mut old) = self.lbs[i].watch.take() {
            old.kill();
        }
        if let Some(script) = haproxy::watch_script(&self.settings) {
            let w = spawn_watch(&self.lbs[i].ns, &self.lbs[i].dir, &script);
            self.lbs[i].watch = Some(w);
            let down = down_file(&self.lbs[i].dir);
            wait_until(Duration::from_secs(5), || {
                std::fs::read_to_string(&down).is_ok_and(|t| t.trim() == "0")
            })
            .expect("the watcher reports HAProxy running");
        }
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
        self.crash_timed(i);
    }

    /// [`Lab::crash`], returning when the links went down: the link-down
    /// commands are written to an `ip -batch` that is already running, so
    /// the clock does not include starting a process.
    pub fn crash_timed(&mut self, i: usize) -> std::time::Instant {
        use std::io::Write;
        let vm = self.cluster.vm(&self.lbs[i].name).expect("lb");
        let mut ip = Command::new("ip")
            .args(["-n", &self.lbs[i].ns.name, "-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("ip -batch");
        let mut cmds = String::new();
        for nic in self.cluster.nics(vm) {
            cmds.push_str(&format!("link set {} down\n", nic.ifname));
        }
        // Let `ip` reach its read of stdin.
        std::thread::sleep(Duration::from_millis(100));
        let mut stdin = ip.stdin.take().expect("stdin");
        let start = std::time::Instant::now();
        stdin.write_all(cmds.as_bytes()).expect("link down");
        drop(stdin);
        assert!(ip.wait().expect("ip").success(), "links down");
        self.lbs[i].ns.kill_all();
        self.lbs[i].keepalived = None;
        self.lbs[i].haproxy = None;
        self.lbs[i].watch = None;
        start
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

/// Starts the stand-in listeners of master or worker `vm` in `ns`: every
/// backend port its roles serve behind a VIP (the API stand-in on a
/// master's API port, a socat echo of its name elsewhere).
pub fn spawn_backends(cluster: &Cluster, vm: &flatcar_topology::Vm, ns: &Netns) -> Vec<Daemon> {
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
    ports
        .iter()
        .map(|port| {
            if vm.has(Role::Master) && api_ports.contains(port) {
                spawn_api_standin(ns, None, *port, vm.name.as_str())
            } else {
                ns.spawn(&[
                    "nice",
                    "-n",
                    BACKEND_NICE,
                    "socat",
                    // A real API server's accept backlog, not socat's 5.
                    &format!("TCP-LISTEN:{port},fork,reuseaddr,backlog=1024"),
                    // Reads the client's probe byte first: a reply to unread
                    // data can turn into a reset (see API_STANDIN).
                    &format!("SYSTEM:head -c1 >/dev/null; echo {}", vm.name),
                ])
            }
        })
        .collect()
}

/// Runtime paths of an LB whose daemons run from `dir`: the stats socket
/// and HAProxy's pid file (Keepalived's track script reads it).
pub fn paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("admin.sock"), dir.join("haproxy.pid"))
}

/// The watcher's down file of an LB whose daemons run from `dir`.
pub fn down_file(dir: &Path) -> PathBuf {
    dir.join("haproxy.down")
}

/// Generated text with the node's runtime paths moved into `dir`.
fn relocate(generated: &str, dir: &Path) -> String {
    let (sock, pid) = paths(dir);
    generated
        .replace(haproxy::STATS_SOCKET, sock.to_str().expect("utf8"))
        .replace(haproxy::PID_FILE, pid.to_str().expect("utf8"))
        .replace(haproxy::DOWN_FILE, down_file(dir).to_str().expect("utf8"))
}

/// Starts the generated HAProxy watcher in `ns` (runtime paths moved into
/// `dir`, as for [`spawn_haproxy`]); it runs as on a node, from `sh`.
pub fn spawn_watch(ns: &Netns, dir: &Path, generated: &str) -> Daemon {
    let path = dir.join("haproxy-watch");
    std::fs::write(&path, relocate(generated, dir)).expect("write");
    ns.spawn(&["sh", path.to_str().expect("utf8")])
}

/// Starts HAProxy in `ns` from a generated config, with only its runtime
/// paths (stats socket, pid file) rewritten into `dir`; waits until it runs.
/// `nice` is the generated unit's `Nice=` ([`Settings::haproxy_nice`]),
/// applied here as systemd would.
pub fn spawn_haproxy(ns: &Netns, dir: &Path, generated: &str, nice: Option<i8>) -> Daemon {
    let (sock, pid) = paths(dir);
    let cfg = relocate(generated, dir);
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).expect("write");
    let _ = std::fs::remove_file(&sock);
    // Its log (state changes with their reason) in dir/haproxy.log.
    let nice = nice.unwrap_or(0).to_string();
    let d = ns.spawn_logged(
        &[
            "nice",
            "-n",
            &nice,
            "haproxy",
            "-W",
            "-db",
            "-f",
            path.to_str().expect("utf8"),
        ],
        &dir.join("haproxy.log"),
    );
    wait_until(Duration::from_secs(10), || sock.exists() && pid.exists()).expect("haproxy started");
    d
}

/// Starts Keepalived (VRRP only) in `ns` from a generated config, with its
/// own pid files in `dir` (`ip netns exec` does not separate `/run`) and
/// the HAProxy pid file of [`paths`]; logs to `dir/keepalived.log`.
pub fn spawn_keepalived(ns: &Netns, dir: &Path, generated: &str) -> Daemon {
    let conf = relocate(generated, dir);
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
    show_stat(dir)
        .lines()
        .find(|l| l.starts_with(&format!("{backend},{server},")))
        .map(str::to_string)
}

/// Nice value of the lab's backend stand-ins. In the cloud, masters and
/// workers are VMs with CPUs of their own; in the lab they share the two
/// cores with the LBs and the soak's CPU burners. Without a head start, a
/// Python TLS stand-in starved at load average ~19 misses HAProxy's 100 ms
/// handshake budget, and the soak would measure the stand-in's scheduling
/// instead of the generated HAProxy/Keepalived settings, which keep their
/// ordinary priority (Keepalived's VRRP process: its generated realtime one).
pub const BACKEND_NICE: &str = "-10";

/// The K3s API stand-in (K3s cannot run here): a TLS listener that answers
/// HAProxy's `GET /readyz` health check with 200 over HTTPS, as a K3s server
/// with `anonymous-auth=true` does, and a plain TCP client with the
/// backend's name, so data-path tests still see which master answered.
///
/// Every lab client speaks first ([`PROBE_BYTE`]), as a TLS client does, so
/// the stand-in tells the two apart by the first byte it reads (0x16 opens a
/// TLS handshake) and never by how long a client stays silent: a deadline
/// sniff misreads a TLS check whose ClientHello is late on loaded cores as
/// a plain client, and HAProxy marks a healthy master DOWN.
const API_STANDIN: &str = r#"
import os, socket, ssl, sys, tempfile, threading, time
bind, port, name, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
# The PEMs come as arguments; ssl wants files: a private temp file, gone
# once loaded.
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
with tempfile.NamedTemporaryFile("w", suffix=".pem") as pem:
    pem.write(cert + key)
    pem.flush()
    ctx.load_cert_chain(pem.name)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((bind, port))
srv.listen(256)
def serve(c):
    try:
        c.settimeout(10)
        first = c.recv(1, socket.MSG_PEEK)
        if first == b"\x16":
            t = ctx.wrap_socket(c, server_side=True)
            req = t.recv(4096).decode(errors="replace")
            path = req.split(" ")[1] if req.count(" ") >= 2 else ""
            ok = path in ("/readyz", "/livez", "/healthz")
            body = b"ok" if ok else b"Unauthorized"
            head = "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % ("200 OK" if ok else "401 Unauthorized", len(body))
            t.sendall(head.encode() + body)
            t.close()
        elif first:
            c.recv(1)  # consume the probe byte: unread data turns close() into a reset
            if first == b"~":
                time.sleep(1.5)  # SLOW_PROBE_BYTE: a long request in flight
            c.sendall((name + "\n").encode())
            c.close()
        else:
            c.close()
    except Exception:
        c.close()
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"#;

/// A self-signed certificate for the API stand-ins (PEM text of the
/// certificate and its key), made once per process; the files openssl
/// writes are removed at once.
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
        let pems = (
            std::fs::read_to_string(&cert).unwrap_or_default(),
            std::fs::read_to_string(&key).unwrap_or_default(),
        );
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            ok.status.success() && !pems.0.is_empty() && !pems.1.is_empty(),
            "openssl: {}",
            String::from_utf8_lossy(&ok.stderr)
        );
        pems
    })
    .clone()
}

/// Starts the K3s API stand-in ([`API_STANDIN`]) in `ns` on `bind:port`
/// (all addresses when `None`), answering plain probes with `name`.
pub fn spawn_api_standin(ns: &Netns, bind: Option<Ipv4Addr>, port: u16, name: &str) -> Daemon {
    let (cert, key) = api_cert();
    let bind = bind.map_or_else(|| "0.0.0.0".to_string(), |a| a.to_string());
    let port = port.to_string();
    // nice -10: the stand-in is a K3s server on a machine of its own; the
    // soak loads the LBs' cores, not the backends' (see BACKEND_NICE).
    ns.spawn(&[
        "nice",
        "-n",
        BACKEND_NICE,
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
    connect_with(ns, addr, port, timeout, timeout)
}

/// The byte every lab client sends first (see [`API_STANDIN`]). Echo
/// backends ignore it; the API stand-in reads it as "plain client".
pub const PROBE_BYTE: &[u8] = b"?";

/// The byte that makes the API stand-in answer after 1.5 s, not at once:
/// a request that is still in flight when a VIP moves.
pub const SLOW_PROBE_BYTE: &[u8] = b"~";

/// One request from the calling thread (already in the client's network
/// namespace): connect within `connect_timeout`, send [`PROBE_BYTE`], read
/// the answer to the end within `read_timeout`.
pub fn request(
    addr: Ipv4Addr,
    port: u16,
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<String, String> {
    use std::io::Read;
    let mut s = send_probe(addr, port, PROBE_BYTE, connect_timeout, read_timeout)?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| format!("read: {e}"))?;
    Ok(text)
}

/// A connection to `addr:port` (within `connect_timeout`) that has sent
/// `probe`, with `read_timeout` on both directions.
fn send_probe(
    addr: Ipv4Addr,
    port: u16,
    probe: &[u8],
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<std::net::TcpStream, String> {
    use std::io::Write;
    assert_test_addr(addr);
    let mut s = std::net::TcpStream::connect_timeout(&(addr, port).into(), connect_timeout)
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(read_timeout))
        .and_then(|()| s.set_write_timeout(Some(read_timeout)))
        .map_err(|e| e.to_string())?;
    s.write_all(probe).map_err(|e| format!("send: {e}"))?;
    Ok(s)
}

/// [`request`] for a client that knows the answer is one line (as an HTTP
/// client knows its `Content-Length`), sending `probe` (e.g.
/// [`SLOW_PROBE_BYTE`]): done once the line is in, whatever ends the
/// connection after it. Returns the line and how the connection ended, if
/// not with a clean close (e.g. a reset from a new VIP holder that never
/// knew the connection).
pub fn request_line(
    addr: Ipv4Addr,
    port: u16,
    probe: &[u8],
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Result<(String, Option<String>), String> {
    use std::io::Read;
    let mut s = send_probe(addr, port, probe, connect_timeout, read_timeout)?;
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if got.contains(&b'\n') => {
                return Ok((
                    String::from_utf8_lossy(&got).into_owned(),
                    Some(e.to_string()),
                ))
            }
            Err(e) => return Err(format!("read: {e} after {} bytes", got.len())),
        }
    }
    if got.contains(&b'\n') {
        Ok((String::from_utf8_lossy(&got).into_owned(), None))
    } else {
        Err(format!("closed after {} bytes, no whole line", got.len()))
    }
}

/// Like [`connect`], with separate connect and read timeouts (a failover
/// probe gives up on a lost SYN quickly, but waits for the answer). Runs in
/// a thread of its own that enters `ns` (no process spawn per probe).
pub fn connect_with(
    ns: &str,
    addr: Ipv4Addr,
    port: u16,
    connect_timeout: Duration,
    read_timeout: Duration,
) -> Option<String> {
    assert_test_addr(addr);
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter_netns(&ns);
        request(addr, port, connect_timeout, read_timeout).ok()
    })
    .join()
    .expect("probe thread")
    .map(|t| t.trim().to_string())
    .filter(|t| !t.is_empty())
}

/// Moves the calling thread into network namespace `ns` (by name). Only
/// this thread: a thread's network namespace is its own.
pub fn enter_netns(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("netns file");
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

/// CPU time counters of all cores (`/proc/stat`): (busy, total) jiffies.
pub fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let line = stat.lines().next().expect("cpu line");
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// What a soak saw. A clean soak has zeros in every alarm counter.
#[derive(Debug, Default, Clone)]
pub struct SoakReport {
    /// How long the load ran.
    pub duration: Duration,
    /// Busy share of all cores over the soak (from `/proc/stat`).
    pub cpu_busy: f64,
    /// Cores counted.
    pub cores: usize,
    /// `/proc/loadavg` at the end.
    pub loadavg: String,
    /// Client requests answered by a backend.
    pub requests: u64,
    /// Client requests that failed (connect, timeout, empty answer).
    pub client_errors: u64,
    /// The first few client errors.
    pub first_errors: Vec<String>,
    /// Slowest answered request.
    pub max_latency: Duration,
    /// Bulk bytes pushed through the LAN bridge.
    pub bulk_bytes: u64,
    /// VIP address additions/removals on any LB (`ip monitor address`).
    pub vip_moves: usize,
    /// Keepalived state transitions logged ("Entering … STATE").
    pub state_changes: usize,
    /// The first few of those log lines.
    pub state_lines: Vec<String>,
    /// Servers HAProxy marked DOWN (`chkdown`, both LBs).
    pub marked_down: u64,
    /// Failed health checks (`chkfail`, both LBs): informational margin.
    pub failed_checks: u64,
    /// Servers with failed checks and their last check ([`Lab::check_failures`]).
    pub check_lines: Vec<String>,
}

impl SoakReport {
    /// Whether no alarm was raised.
    pub fn clean(&self) -> bool {
        self.client_errors == 0
            && self.vip_moves == 0
            && self.state_changes == 0
            && self.marked_down == 0
    }
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "soak {:.0} s: cpu {:.1}% busy ({} cores, loadavg {}); {} requests, {} client errors (slowest {} ms); \
             {} VIP moves, {} VRRP state changes, {} backends marked DOWN ({} failed checks); {:.1} GB bulk on the LAN",
            self.duration.as_secs_f64(),
            self.cpu_busy * 100.0,
            self.cores,
            self.loadavg,
            self.requests,
            self.client_errors,
            self.max_latency.as_millis(),
            self.vip_moves,
            self.state_changes,
            self.marked_down,
            self.failed_checks,
            self.bulk_bytes as f64 / 1e9,
        )
    }
}

/// Port of the soak's bulk-traffic sinks on the LBs' LAN addresses.
const BULK_PORT: u16 = 5001;

impl Lab {
    /// One probe from the client with separate connect and read timeouts.
    pub fn connect_with(
        &self,
        addr: Ipv4Addr,
        port: u16,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Option<String> {
        connect_with(&self.client.name, addr, port, connect_timeout, read_timeout)
    }

    /// (`chkdown`, `chkfail`) summed over every server on every LB.
    pub fn check_counters(&self) -> (u64, u64) {
        let mut down = 0;
        let mut fail = 0;
        for lb in &self.lbs {
            for l in show_stat(&lb.dir).lines() {
                let f: Vec<&str> = l.split(',').collect();
                if f.len() > 22 && !l.starts_with('#') && f[1] != "FRONTEND" && f[1] != "BACKEND" {
                    fail += f[21].parse::<u64>().unwrap_or(0);
                    down += f[22].parse::<u64>().unwrap_or(0);
                }
            }
        }
        (down, fail)
    }

    /// Every server with failed checks, as `lb backend/server: chkfail N
    /// chkdown N, last check <status> <code> in <ms> ms` (what a soak that
    /// marked a server DOWN saw).
    pub fn check_failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for lb in &self.lbs {
            for l in show_stat(&lb.dir).lines() {
                let f: Vec<&str> = l.split(',').collect();
                if f.len() > 38
                    && !l.starts_with('#')
                    && f[1] != "FRONTEND"
                    && f[1] != "BACKEND"
                    && f[21] != "0"
                    && !f[21].is_empty()
                {
                    out.push(format!(
                        "{} {}/{}: chkfail {} chkdown {}, last check {} {} in {} ms",
                        lb.name, f[0], f[1], f[21], f[22], f[36], f[37], f[38]
                    ));
                }
            }
        }
        out
    }

    /// Whether every server on every LB is UP.
    pub fn all_servers_up(&self) -> bool {
        self.lbs.iter().all(|lb| {
            let stat = show_stat(&lb.dir);
            let servers: Vec<&str> = stat
                .lines()
                .filter(|l| {
                    let f: Vec<&str> = l.split(',').collect();
                    f.len() > STATUS
                        && !l.starts_with('#')
                        && f[1] != "FRONTEND"
                        && f[1] != "BACKEND"
                })
                .collect();
            !servers.is_empty()
                && servers.iter().all(|l| {
                    l.split(',')
                        .nth(STATUS)
                        .is_some_and(|s| s.starts_with("UP"))
                })
        })
    }

    /// Soak: for `duration`, one CPU burner per core (in this process),
    /// bulk TCP from the client to both LBs' LAN addresses (through the
    /// LAN bridge that carries VRRP), and clients hammering both VIPs
    /// (`api:6443`, `web:80`/`443`) from the client namespace. Counts what
    /// a false alarm would change: VIP address events on the LBs, VRRP state
    /// transitions in Keepalived's log, servers marked DOWN, client errors.
    /// Every packet stays in the lab's namespaces (198.18.0.0/15).
    pub fn soak(&self, duration: Duration) -> SoakReport {
        use std::io::{BufRead, Read, Write};
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::{Arc, Mutex};

        let vips: Vec<Ipv4Addr> = self.cluster.vips().iter().map(|v| v.address).collect();
        // Start from a settled lab: no state transition logged for 2 s.
        let transitions = || -> usize {
            (0..self.lbs.len())
                .map(|i| {
                    self.keepalived_log(i)
                        .lines()
                        .filter(|l| l.contains("Entering") && l.contains("STATE"))
                        .count()
                })
                .sum()
        };
        let settle = std::time::Instant::now();
        let mut last = (transitions(), std::time::Instant::now());
        while last.1.elapsed() < Duration::from_secs(2)
            && settle.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(100));
            let now = transitions();
            if now != last.0 {
                last = (now, std::time::Instant::now());
            }
        }
        let log_len: Vec<usize> = (0..self.lbs.len())
            .map(|i| self.keepalived_log(i).len())
            .collect();
        let (down0, fail0) = self.check_counters();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());

        // VIP address events, as they happen.
        let moves = Arc::new(AtomicU64::new(0));
        let mut monitors = Vec::new();
        for lb in &self.lbs {
            let mut child = Command::new("ip")
                .args(["-n", &lb.ns.name, "-o", "monitor", "address"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("ip monitor");
            let out = child.stdout.take().expect("stdout");
            let moves = moves.clone();
            let pats: Vec<String> = vips.iter().map(|a| format!(" {a}/")).collect();
            let reader = std::thread::spawn(move || {
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    if pats.iter().any(|p| line.contains(p)) {
                        moves.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            monitors.push((child, reader));
        }

        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        // CPU burners.
        for _ in 0..cores {
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..100_000u64 {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(i),
                        );
                    }
                }
            }));
        }
        // Bulk sinks on both LBs, sources in the client namespace.
        let bulk = Arc::new(AtomicU64::new(0));
        let mut sinks = Vec::new();
        for lb in &self.lbs {
            let vm = self.cluster.vm(&lb.name).expect("lb");
            let addr = vm.address_on("lan").expect("lan address");
            assert_test_addr(addr);
            let (ns, sink_stop) = (lb.ns.name.clone(), stop.clone());
            let (tx, rx) = std::sync::mpsc::channel();
            sinks.push(std::thread::spawn(move || {
                enter_netns(&ns);
                let l = std::net::TcpListener::bind((addr, BULK_PORT)).expect("bind sink");
                l.set_nonblocking(true).expect("nonblocking");
                let _ = tx.send(());
                let mut conns = Vec::new();
                while !sink_stop.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((mut s, _)) => {
                            let _ = s.set_nonblocking(false);
                            conns.push(std::thread::spawn(move || {
                                let mut buf = vec![0u8; 1 << 16];
                                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                            }));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
                for c in conns {
                    let _ = c.join();
                }
            }));
            rx.recv().expect("sink listening");
            let (ns, stop, bulk) = (self.client.name.clone(), stop.clone(), bulk.clone());
            threads.push(std::thread::spawn(move || {
                enter_netns(&ns);
                let mut s = std::net::TcpStream::connect_timeout(
                    &(addr, BULK_PORT).into(),
                    Duration::from_secs(5),
                )
                .expect("bulk connection");
                let buf = vec![0u8; 1 << 16];
                while !stop.load(Ordering::Relaxed) {
                    match s.write(&buf) {
                        Ok(n) => {
                            bulk.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        Err(_) => break,
                    }
                }
            }));
        }
        // Clients on both VIPs.
        let api = self.vip("api");
        let web = self.vip("web");
        let requests = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(Mutex::new(Vec::<String>::new()));
        let error_count = Arc::new(AtomicU64::new(0));
        let slowest = Arc::new(Mutex::new(Duration::ZERO));
        for targets in [
            vec![(api, 6443, "master")],
            vec![(web, 80, "worker"), (web, 443, "worker")],
        ] {
            let ns = self.client.name.clone();
            let (stop, requests, errors, error_count, slowest) = (
                stop.clone(),
                requests.clone(),
                errors.clone(),
                error_count.clone(),
                slowest.clone(),
            );
            threads.push(std::thread::spawn(move || {
                enter_netns(&ns);
                let t = Duration::from_secs(3);
                let mut k = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let (addr, port, want) = targets[k % targets.len()];
                    k += 1;
                    assert_test_addr(addr);
                    let start = std::time::Instant::now();
                    let got = request(addr, port, t, t);
                    let took = start.elapsed();
                    match got {
                        Ok(text) if text.trim().starts_with(want) => {
                            requests.fetch_add(1, Ordering::Relaxed);
                            let mut m = slowest.lock().expect("lock");
                            *m = (*m).max(took);
                        }
                        other => {
                            error_count.fetch_add(1, Ordering::Relaxed);
                            let mut e = errors.lock().expect("lock");
                            if e.len() < 5 {
                                e.push(format!("{addr}:{port} after {took:?}: {other:?}"));
                            }
                        }
                    }
                    // ~200 requests/s per client at most: TIME_WAIT stays bounded.
                    std::thread::sleep(Duration::from_millis(5));
                }
            }));
        }

        let (busy0, total0) = cpu_jiffies();
        let start = std::time::Instant::now();
        while start.elapsed() < duration {
            std::thread::sleep(
                Duration::from_millis(200).min(duration.saturating_sub(start.elapsed())),
            );
        }
        let (busy1, total1) = cpu_jiffies();
        let ran = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
        for t in sinks {
            let _ = t.join();
        }
        // Let late events arrive, then stop the monitors.
        std::thread::sleep(Duration::from_millis(300));
        for (mut child, reader) in monitors {
            let _ = child.kill();
            let _ = child.wait();
            let _ = reader.join();
        }
        let (down1, fail1) = self.check_counters();
        let state_lines: Vec<String> = (0..self.lbs.len())
            .flat_map(|i| {
                self.keepalived_log(i)
                    .get(log_len[i]..)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains("Entering") && l.contains("STATE"))
                    .map(|l| format!("{}: {l}", self.lbs[i].name))
                    .collect::<Vec<_>>()
            })
            .collect();
        let state_changes = state_lines.len();
        let first_errors = errors.lock().expect("lock").clone();
        let max_latency = *slowest.lock().expect("lock");
        SoakReport {
            duration: ran,
            cpu_busy: (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64,
            cores,
            loadavg: std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            requests: requests.load(Ordering::Relaxed),
            client_errors: error_count.load(Ordering::Relaxed),
            first_errors,
            max_latency,
            bulk_bytes: bulk.load(Ordering::Relaxed),
            vip_moves: moves.load(Ordering::Relaxed) as usize,
            state_changes,
            state_lines: state_lines.into_iter().take(6).collect(),
            marked_down: down1.saturating_sub(down0),
            failed_checks: fail1.saturating_sub(fail0),
            check_lines: self.check_failures(),
        }
    }
}

/// HAProxy's `show stat` from the HAProxy whose runtime files are in `dir`
/// (straight over its stats socket: no process spawned per poll).
pub fn show_stat(dir: &Path) -> String {
    use std::io::{Read, Write};
    let (sock, _) = paths(dir);
    let mut text = String::new();
    if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&sock) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        if s.write_all(b"show stat\n").is_ok() {
            let _ = s.read_to_string(&mut text);
        }
    }
    text
}

/// A client thread in namespace `ns` that, once started, connects to
/// `addr:port` over and over (each attempt with `connect_timeout`, then up
/// to `read_timeout` for the answer) until a backend answers — a failover
/// probe without a process spawn per attempt.
pub struct Probe {
    go: std::sync::mpsc::Sender<std::time::Instant>,
    done: std::thread::JoinHandle<(Duration, Vec<String>)>,
}

impl Probe {
    /// Starts the thread and moves it into `ns`; it waits for [`Probe::run`].
    pub fn new(
        ns: &str,
        addr: Ipv4Addr,
        port: u16,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Probe {
        assert_test_addr(addr);
        let ns = ns.to_string();
        let (go, rx) = std::sync::mpsc::channel::<std::time::Instant>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let done = std::thread::spawn(move || {
            enter_netns(&ns);
            let _ = ready_tx.send(());
            let start = rx.recv().expect("start");
            let mut failures = Vec::new();
            loop {
                let t0 = start.elapsed();
                let got = request(addr, port, connect_timeout, read_timeout);
                match got {
                    Ok(t) if !t.trim().is_empty() => return (start.elapsed(), failures),
                    other => failures.push(format!(
                        "{:.0}-{:.0} ms {other:?}",
                        t0.as_secs_f64() * 1e3,
                        start.elapsed().as_secs_f64() * 1e3
                    )),
                }
                assert!(start.elapsed() < Duration::from_secs(30), "no failover");
                // A refused connection returns at once: do not spin.
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        ready.recv().expect("probe in its namespace");
        Probe { go, done }
    }

    /// Starts probing; returns the time from `start` to the first answer,
    /// and the failed attempts before it (when, and why).
    pub fn run(self, start: std::time::Instant) -> (Duration, Vec<String>) {
        self.go.send(start).expect("probe alive");
        self.done.join().expect("probe")
    }
}
