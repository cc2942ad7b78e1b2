//! Test support for live tests: network namespaces, veth links and daemons
//! that are cleaned up on drop (also when a test panics).
//!
//! Network rule: tests send packets only inside namespaces they created,
//! only to 198.18.0.0/15 or loopback. [`assert_test_addr`] enforces it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Panics unless `a` is in 198.18.0.0/15 or loopback.
pub fn assert_test_addr(a: Ipv4Addr) {
    let o = a.octets();
    assert!(
        a.is_loopback() || (o[0] == 198 && (o[1] == 18 || o[1] == 19)),
        "network rule: tests may only send to 198.18.0.0/15 or loopback, not {a}"
    );
}

/// Fails (never skips) when a tool the test needs is missing.
pub fn require(tool: &str) {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{tool} is required (scripts/test installs it); refusing to skip"
    );
}

/// Runs a command, panics with its output on failure.
pub fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd`, panics with its stderr on failure; its stdout.
pub fn stdout_of(cmd: &mut Command) -> String {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed ({}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A unique short prefix for this test process and call (namespace and
/// interface names must be unique across parallel tests).
pub fn unique(tag: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    format!("{tag}{}x{n}", std::process::id() % 100_000)
}

/// A network namespace, deleted (with every process in it) on drop.
pub struct Netns {
    /// Its name.
    pub name: String,
}

impl Netns {
    /// Creates a namespace `name` with loopback up.
    pub fn new(name: &str) -> Netns {
        assert!(nix_root(), "live tests need root (CI runs as root)");
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        run(&["ip", "netns", "add", name]);
        let ns = Netns {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip netns exec NAME args…`, panicking on failure.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", &self.name];
        v.extend_from_slice(args);
        run(&v)
    }

    /// Like [`Netns::exec`] but returns the output whatever the status.
    pub fn try_exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// `ip args…` inside the namespace.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut v = vec!["ip"];
        v.extend_from_slice(args);
        self.exec(&v)
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) {
        self.exec(&["sysctl", "-q", "-w", &format!("{key}={value}")]);
    }

    /// Adds `addr/prefix` to `dev` and brings it up.
    pub fn addr(&self, dev: &str, addr: Ipv4Addr, prefix: u8) {
        assert_test_addr(addr);
        self.ip(&["addr", "add", &format!("{addr}/{prefix}"), "dev", dev]);
        self.ip(&["link", "set", dev, "up"]);
    }

    /// Starts a long-running process inside the namespace; killed on drop of
    /// the returned guard (and with the namespace).
    pub fn spawn(&self, args: &[&str]) -> Daemon {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        Daemon { child: Some(child) }
    }

    /// Like [`Netns::spawn`], with stdout and stderr appended to `log`.
    pub fn spawn_logged(&self, args: &[&str], log: &Path) -> Daemon {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .stdout(f.try_clone().expect("dup"))
            .stderr(f)
            .spawn()
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        Daemon { child: Some(child) }
    }

    /// Runs the shell `script` in this namespace and in a mount namespace
    /// of its own (`unshare -m --propagation private`): what it mounts
    /// (bind mounts over system paths, a private `/run`) is gone with it
    /// and never seen by the machine. Output appended to `log`.
    pub fn spawn_private_mounts(&self, script: &str, log: &Path) -> Daemon {
        self.spawn_logged(
            &[
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
            ],
            log,
        )
    }

    /// Kills every process in the namespace.
    pub fn kill_all(&self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).output();
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.kill_all();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn nix_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A veth pair: `a_if` in `a`, `b_if` in `b` (both up, no addresses).
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    let tmp_a = unique("va");
    let tmp_b = unique("vb");
    run(&[
        "ip", "link", "add", &tmp_a, "type", "veth", "peer", "name", &tmp_b,
    ]);
    run(&["ip", "link", "set", &tmp_a, "netns", &a.name]);
    run(&["ip", "link", "set", &tmp_b, "netns", &b.name]);
    a.ip(&["link", "set", &tmp_a, "name", a_if]);
    b.ip(&["link", "set", &tmp_b, "name", b_if]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// A bridge `name` inside `ns`, up.
pub fn bridge(ns: &Netns, name: &str) {
    ns.ip(&["link", "add", name, "type", "bridge"]);
    ns.ip(&["link", "set", name, "up"]);
}

/// Attaches `dev` to bridge `br` in `ns`.
pub fn enslave(ns: &Netns, dev: &str, br: &str) {
    ns.ip(&["link", "set", dev, "master", br]);
}

/// A child process killed on drop.
pub struct Daemon {
    child: Option<Child>,
}

impl Daemon {
    /// Kills it now (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    /// Its pid (of the `ip netns exec` wrapper, which execs the program).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `/tmp/fmc-<tag>-<unique>`.
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("fmc-{}", unique(tag)));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("tempdir");
        TempDir(p)
    }
    /// The path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `f` every 10 ms until it returns true or `timeout` passes;
/// returns the time it took.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

impl Daemon {
    /// Whether the process has exited (reaping it if so, as a supervisor
    /// would: an unreaped zombie still answers `kill -0`).
    pub fn reaped(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(_))) | Some(Err(_)) | None => true,
            Some(Ok(None)) => false,
        }
    }
}

/// Connects to `qemu:///system`, starting `libvirtd -d` when no daemon
/// answers (no init system here; CI is a fresh machine running as root).
/// Every test that needs the system daemon calls this: test binaries run in
/// alphabetical order, so none may count on another having started it.
#[cfg(feature = "libvirt")]
pub fn system_daemon() -> flatcar_libvirt::apply::Connect {
    use flatcar_libvirt::apply::connect;
    const URI: &str = "qemu:///system";
    if let Ok(c) = connect(URI) {
        return c;
    }
    require("libvirtd");
    // A concurrent test may have started one meanwhile: `-d` then fails on
    // the pid file, and the loop below finds the running daemon.
    let _ = Command::new("libvirtd").arg("-d").status();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match connect(URI) {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("libvirtd did not answer: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The real systemd-networkd inside `ns`, reading only `files` (written to
/// `dir`): `/sys` read-only (so it does not wait for udev, as in a
/// container), a private `/run/systemd`, and `dir` bound over
/// `/etc/systemd/network`, all in a mount namespace of its own.
pub fn networkd(ns: &Netns, files: &BTreeMap<String, String>, dir: &Path) -> Daemon {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let script = format!(
        "mount -o remount,bind,ro /sys && mount -t tmpfs tmpfs /run/systemd && \
         mkdir -p /run/systemd/netif && chown systemd-network:systemd-network /run/systemd/netif && \
         mount --bind {} /etc/systemd/network && exec /lib/systemd/systemd-networkd",
        dir.display()
    );
    let log = dir.with_extension("log");
    ns.spawn_logged(&["unshare", "-m", "sh", "-c", &script], &log)
}

/// What [`networkd`] logged for the files in `dir`.
pub fn networkd_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.with_extension("log")).unwrap_or_default()
}

/// Starts one member of a fresh etcd cluster in `ns`: peers on
/// `http://{addr}:2380`, clients on `:2379`, data and log in `dir`.
/// `initial` is the `--initial-cluster` list (`name=http://addr:2380`).
pub fn spawn_etcd(
    ns: &Netns,
    dir: &Path,
    name: &str,
    addr: Ipv4Addr,
    initial: &[String],
    token: &str,
) -> Daemon {
    let data = dir.join("etcd");
    ns.spawn_logged(
        &[
            "etcd",
            "--name",
            name,
            "--data-dir",
            data.to_str().expect("utf8"),
            "--listen-peer-urls",
            &format!("http://{addr}:2380"),
            "--initial-advertise-peer-urls",
            &format!("http://{addr}:2380"),
            "--listen-client-urls",
            &format!("http://{addr}:2379"),
            "--advertise-client-urls",
            &format!("http://{addr}:2379"),
            "--initial-cluster",
            &initial.join(","),
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            token,
        ],
        &dir.join("etcd.log"),
    )
}

/// The model with worker4 added: a copy of worker3, two addresses above it
/// on the same network, MAC left to the model (what a user adds on day two).
pub fn with_worker4(c: &flatcar_topology::Cluster) -> flatcar_topology::Cluster {
    let mut spec = c.clone().into_spec();
    let mut w = spec
        .vms
        .iter()
        .find(|v| v.name.as_str() == "worker3")
        .expect("worker3")
        .clone();
    w.name = flatcar_topology::Name::new("worker4").expect("name");
    w.nics[0].address = Ipv4Addr::from(u32::from(w.nics[0].address) + 2);
    w.nics[0].mac = None;
    spec.vms.push(w);
    flatcar_topology::Cluster::try_from(spec).expect("valid with worker4")
}

/// A K3s node's join URL (`server:` in its generated `config.yaml`) as
/// address and port.
pub fn join_target(config: &str) -> Option<(std::net::Ipv4Addr, u16)> {
    let url = config.lines().find_map(|l| l.strip_prefix("server: "))?;
    let host_port = url
        .trim()
        .trim_matches(['"', '\''])
        .strip_prefix("https://")?;
    let (host, port) = host_port.rsplit_once(':')?;
    Some((host.parse().ok()?, port.parse().ok()?))
}
