//! Live (feature `boot-lab`, root, network namespaces, no VMs): the boot
//! lab's stand-ins run on this host from the Ignition configs the project
//! generates for the lab's model (the reference cloud on the test address
//! plan), before any VM boots them.
//!
//! - **Docker stand-in** (`tests/boot/image/rootfs/usr/bin/docker`), run
//!   with the generated units' own `ExecStartPre`/`ExecStart` command lines
//!   (host paths of the volumes moved into a temp root): on infra the
//!   CoreDNS image as BIND `named` serving the generated zones (`dig` for
//!   the API names and a reverse zone); on postgresql1 the postgres image
//!   as Debian's PostgreSQL (initdb from the password file, scram login
//!   from an address `pg_hba.conf` allows, refusal from one it does not and
//!   for a wrong password); the verbs the units and deploys use (`inspect`,
//!   `kill --signal=USR1/HUP`, `stop -t`, `rm -f`), a name conflict and an
//!   unknown image.
//! - **K3s stand-in** (`tests/boot/standins/k3s`, the `k3s` artifact of the
//!   boot lab) with each node's generated config and token files: master1
//!   (`cluster-init`) holds the api-internal VIP here (no load balancer in
//!   this test), master2 and worker1 join through their generated `server:`
//!   URL after the agent unit's own wait (`ExecStartPre` curl on `/ping`),
//!   master1 logs each join (node, URL, peer); READY=1 reaches a
//!   `NOTIFY_SOCKET` only after the join; an agent with a wrong token is
//!   refused, logged, and never READY; worker1 serves the ingress ports.
//!
//! Every node is a namespace on one bridge, addresses from the generated
//! `.network` files (198.18.0.0/15 only). One row per claim.

#![cfg(feature = "boot-lab")]

mod support;

use base64::Engine;
use flatcar_microcloud::reference::{cluster_with, AddressPlan};
use flatcar_microcloud::{Bundle, BundleSecrets};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use support::{bridge, enslave, require, unique, veth, Daemon, Netns, TempDir};

/// One VM's generated Ignition config: files (decoded) and units.
struct Vm {
    files: BTreeMap<String, Vec<u8>>,
    units: BTreeMap<String, String>,
}

impl Vm {
    fn parse(json: &[u8]) -> Vm {
        let v: serde_json::Value = serde_json::from_slice(json).expect("ignition json");
        let mut files = BTreeMap::new();
        for f in v["storage"]["files"].as_array().into_iter().flatten() {
            let src = f["contents"]["source"].as_str().unwrap_or_default();
            if let Some(b64) = src.strip_prefix("data:;base64,") {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .expect("base64");
                files.insert(f["path"].as_str().expect("path").to_string(), bytes);
            }
        }
        let mut units = BTreeMap::new();
        for u in v["systemd"]["units"].as_array().into_iter().flatten() {
            if let Some(c) = u["contents"].as_str() {
                units.insert(u["name"].as_str().expect("name").to_string(), c.to_string());
            }
        }
        Vm { files, units }
    }

    fn text(&self, path: &str) -> String {
        String::from_utf8(
            self.files
                .get(path)
                .unwrap_or_else(|| panic!("no {path}"))
                .clone(),
        )
        .expect("utf8")
    }

    /// The static address of eth0 (the generated `.network` file).
    fn address(&self) -> Ipv4Addr {
        self.text("/etc/systemd/network/10-eth0.network")
            .lines()
            .find_map(|l| l.strip_prefix("Address="))
            .and_then(|a| a.split('/').next())
            .expect("Address=")
            .parse()
            .expect("ipv4")
    }

    /// The unit's `key=` lines (continuations joined).
    fn exec(&self, unit: &str, key: &str) -> Vec<String> {
        let text = self.units.get(unit).unwrap_or_else(|| panic!("no {unit}"));
        let joined = text.replace("\\\n", " ");
        joined
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
            .collect()
    }
}

/// One row per claim; failures collected and asserted at the end.
#[derive(Default)]
struct Rows {
    failed: Vec<String>,
}

impl Rows {
    fn row(&mut self, claim: &str, ok: bool, detail: &str) {
        println!("{claim:<70} {:<4} {detail}", if ok { "ok" } else { "FAIL" });
        if !ok {
            self.failed.push(format!("{claim}: {detail}"));
        }
    }
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout).trim(),
        String::from_utf8_lossy(&o.stderr).trim()
    )
}

/// The lab's temp root: generated paths are moved under it.
struct Root {
    dir: PathBuf,
    docker: String,
    state: String,
}

impl Root {
    /// `path` under the root, for the host paths the units name.
    fn host(&self, vm: &str, path: &str) -> String {
        format!("{}/{vm}{path}", self.dir.display())
    }

    /// A generated command line, with the docker stand-in for
    /// `/usr/bin/docker` and the host paths of files, directories and
    /// volumes moved under the root (container paths stay as generated).
    fn command(&self, vm: &str, line: &str) -> Vec<String> {
        let line = line.trim_start_matches('-');
        assert!(!line.contains(['"', '\'']), "quoted command line: {line}");
        let moved = |p: &str| {
            if ["/etc/", "/var/mnt/", "/run/"]
                .iter()
                .any(|prefix| p.starts_with(prefix))
            {
                self.host(vm, p)
            } else {
                p.to_string()
            }
        };
        let mut args: Vec<String> = Vec::new();
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            if i == 0 {
                args.push(if w == "/usr/bin/docker" {
                    self.docker.clone()
                } else {
                    w.to_string()
                });
            } else if w == "-v" && i + 1 < words.len() {
                let (host, rest) = words[i + 1].split_once(':').expect("HOST:CONTAINER");
                args.push("-v".into());
                args.push(format!("{}:{rest}", moved(host)));
                i += 1;
            } else if args.first().is_some_and(|p| p == &self.docker) {
                args.push(w.to_string());
            } else {
                args.push(moved(w));
            }
            i += 1;
        }
        args
    }

    fn env(&self) -> String {
        format!("DOCKER_STANDIN_STATE={}", self.state)
    }
}

/// Writes every generated file of `vm` whose path starts with one of
/// `prefixes` under the root (with its mode).
fn install(root: &Root, name: &str, vm: &Vm, prefixes: &[&str]) {
    for (path, bytes) in &vm.files {
        if prefixes.iter().any(|p| path.starts_with(p)) {
            let dst = PathBuf::from(root.host(name, path));
            std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
            std::fs::write(&dst, bytes).expect("write");
        }
    }
}

/// A node: a namespace with its generated address on the lab bridge.
fn node(sw: &Netns, u: &str, n: usize, addrs: &[Ipv4Addr]) -> Netns {
    let ns = Netns::new(&format!("{u}-{n}"));
    veth(&ns, "eth0", sw, &format!("p{n}"));
    enslave(sw, &format!("p{n}"), "br0");
    for a in addrs {
        // 198.18.0.0/15 on-link: every subnet of the test plan on one segment.
        ns.addr("eth0", *a, 15);
    }
    ns
}

/// The K3s stand-in of `vm` in `ns`, its config relocated under the root
/// (token files), its `NOTIFY_SOCKET` a datagram socket the test reads.
fn k3s(
    root: &Root,
    k3s_bin: &str,
    ns: &Netns,
    name: &str,
    vm: &Vm,
    mode: &str,
) -> (Daemon, UnixDatagram) {
    install(root, name, vm, &["/etc/rancher/k3s/"]);
    let cfg_path = root.host(name, "/etc/rancher/k3s/config.yaml");
    let cfg = std::fs::read_to_string(&cfg_path).expect("config");
    let moved = cfg.replace("/etc/rancher/k3s/", &root.host(name, "/etc/rancher/k3s/"));
    std::fs::write(&cfg_path, moved).expect("write");
    let sock = root.dir.join(format!("{name}-notify.sock"));
    let _ = std::fs::remove_file(&sock);
    let rx = UnixDatagram::bind(&sock).expect("notify socket");
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let d = ns.spawn_logged(
        &[
            "env",
            &format!("K3S_CONFIG_FILE={cfg_path}"),
            &format!("K3S_DATA_DIR={}", root.host(name, "/var/lib/rancher/k3s")),
            &format!("NOTIFY_SOCKET={}", sock.display()),
            k3s_bin,
            mode,
        ],
        &root.dir.join(format!("{name}-k3s.log")),
    );
    (d, rx)
}

/// Waits up to `timeout` for READY=1 on `rx`; when it came.
fn ready(rx: &UnixDatagram, timeout: Duration) -> Option<Instant> {
    let t0 = Instant::now();
    let mut buf = [0u8; 512];
    while t0.elapsed() < timeout {
        if let Ok(n) = rx.recv(&mut buf) {
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                return Some(Instant::now());
            }
        }
    }
    None
}

fn joins(root: &Root) -> Vec<serde_json::Value> {
    std::fs::read_to_string(root.host("master1", "/var/lib/rancher/k3s/standin/joins.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn stand_ins_serve_the_generated_configs() {
    let t_all = Instant::now();
    for tool in [
        "python3", "openssl", "named", "dig", "psql", "curl", "setpriv", "unshare",
    ] {
        require(tool);
    }
    assert!(
        Path::new("/usr/lib/postgresql/15/bin/postgres").exists(),
        "Debian's PostgreSQL 15 (postgresql-15) is required; refusing to skip"
    );
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = TempDir::new("standins");
    let root = Root {
        dir: work.path().to_path_buf(),
        docker: repo
            .join("tests/boot/image/rootfs/usr/bin/docker")
            .display()
            .to_string(),
        state: work.path().join("docker-state").display().to_string(),
    };
    let k3s_bin = repo.join("tests/boot/standins/k3s").display().to_string();

    // The lab's model: the reference cloud on the test address plan.
    let cluster = cluster_with(&AddressPlan::test()).expect("valid");
    let mut secrets = BundleSecrets::from_bundle_dir(&work.path().join("bundle"));
    let bundle = Bundle::render(&cluster, &mut secrets).expect("renders");
    let configs = bundle.ignition_configs();
    let vms: BTreeMap<String, Vm> = configs
        .iter()
        .map(|(vm, json)| (vm.clone(), Vm::parse(json)))
        .collect();
    // The configs as rendered, for the one real boot of the image
    // (tests/boot/standins-proof boots them under QEMU).
    let keep = repo.join("out/standins");
    std::fs::create_dir_all(&keep).expect("mkdir");
    for (vm, json) in &configs {
        let dst = keep.join(format!("{vm}.ign"));
        std::fs::write(&dst, json).expect("write");
        std::fs::set_permissions(&dst, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod");
    }
    let addr = |vm: &str| vms[vm].address();
    let m1_cfg = vms["master1"].text("/etc/rancher/k3s/config.yaml");
    let w1_cfg = vms["worker1"].text("/etc/rancher/k3s/config.yaml");
    let join_url = w1_cfg
        .lines()
        .find_map(|l| l.strip_prefix("server: "))
        .expect("worker1 joins through server:")
        .to_string();
    let vip: Ipv4Addr = join_url
        .trim_start_matches("https://")
        .split(':')
        .next()
        .and_then(|h| h.parse().ok())
        .expect("join URL names an address");
    assert!(
        m1_cfg.contains("cluster-init: true"),
        "master1 is the first server"
    );
    println!(
        "model: test address plan; infra {}, postgresql1 {}, master1 {}, master2 {}, worker1 {}, storage1 {}; join URL {join_url} (api-internal VIP, held by master1's namespace: no load balancer here)",
        addr("infra"),
        addr("postgresql1"),
        addr("master1"),
        addr("master2"),
        addr("worker1"),
        addr("storage1")
    );

    let u = unique("si");
    let sw = Netns::new(&format!("{u}-sw"));
    bridge(&sw, "br0");
    let infra = node(&sw, &u, 0, &[addr("infra")]);
    let pg = node(&sw, &u, 1, &[addr("postgresql1")]);
    let m1 = node(&sw, &u, 2, &[addr("master1"), vip]);
    let m2 = node(&sw, &u, 3, &[addr("master2")]);
    let w1 = node(&sw, &u, 4, &[addr("worker1")]);
    let s1 = node(&sw, &u, 5, &[addr("storage1")]);
    let mut rows = Rows::default();
    let docker = |ns: &Netns, args: &[&str]| -> Output {
        let env = root.env();
        let mut v = vec!["env", &env, &root.docker];
        v.extend_from_slice(args);
        ns.try_exec(&v)
    };

    // 1. infra: coredns.service's own command lines.
    let t = Instant::now();
    install(&root, "infra", &vms["infra"], &["/etc/coredns/"]);
    let infra_vm = &vms["infra"];
    for pre in infra_vm.exec("coredns.service", "ExecStartPre") {
        let mut argv: Vec<String> = vec!["env".into(), root.env()];
        argv.extend(root.command("infra", &pre));
        infra.try_exec(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let run = root.command("infra", &infra_vm.exec("coredns.service", "ExecStart")[0]);
    let mut argv: Vec<String> = vec!["env".into(), root.env()];
    argv.extend(run);
    let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
    let _coredns = infra.spawn_logged(&argv_ref, &root.dir.join("coredns.log"));
    let zone = infra_vm.text("/etc/coredns/microcloud.home.arpa.zone");
    let domain = zone
        .lines()
        .find_map(|l| l.strip_prefix("$ORIGIN "))
        .expect("$ORIGIN")
        .trim_end_matches('.')
        .to_string();
    let a_of = |name: &str| -> String {
        zone.lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 4 && f[0] == name && f[2] == "A").then(|| f[3].to_string())
            })
            .unwrap_or_else(|| panic!("no A record for {name}"))
    };
    let dig = |q: &[&str]| -> String {
        let server = format!("@{}", addr("infra"));
        let mut v = vec!["dig", "+short", "+time=1", "+tries=1", &server];
        v.extend_from_slice(q);
        String::from_utf8_lossy(&w1.try_exec(&v).stdout)
            .trim()
            .to_string()
    };
    let api = format!("api.{domain}");
    let api_internal = format!("api-internal.{domain}");
    let dns_up = support::wait_until(Duration::from_secs(15), || dig(&[&api]) == a_of("api"));
    rows.row(
        "STAND-IN CoreDNS (named) serves the generated zone: api",
        dns_up.is_some(),
        &format!(
            "{api} → {:?} (zone: {}), {:.1} s",
            dig(&[&api]),
            a_of("api"),
            t.elapsed().as_secs_f64()
        ),
    );
    let got = dig(&[&api_internal]);
    rows.row(
        "STAND-IN CoreDNS: api-internal",
        got == a_of("api-internal"),
        &format!("{api_internal} → {got:?}"),
    );
    let got = dig(&["-x", &addr("worker1").to_string()]);
    rows.row(
        "STAND-IN CoreDNS: reverse zone (PTR of worker1)",
        got == format!("worker1.{domain}."),
        &format!("{} → {got:?}", addr("worker1")),
    );

    // 2. postgresql1: postgres.service's own command lines; uid 70 (the
    //    image's user) through a private /etc/passwd in a mount namespace.
    let t = Instant::now();
    let pg_vm = &vms["postgresql1"];
    install(&root, "postgresql1", pg_vm, &["/etc/postgresql/"]);
    std::fs::create_dir_all(root.host("postgresql1", "/run/microcloud-postgres")).expect("mkdir");
    std::fs::create_dir_all(root.host("postgresql1", "/var/mnt/pgdata")).expect("mkdir");
    let mut passwd = std::fs::read_to_string("/etc/passwd").expect("passwd");
    let mut group = std::fs::read_to_string("/etc/group").expect("group");
    if !passwd.lines().any(|l| l.split(':').nth(2) == Some("70")) {
        passwd.push_str("pgimage:x:70:70:the postgres image's user:/var/lib/postgresql:/bin/sh\n");
    }
    if !group.lines().any(|l| l.split(':').nth(2) == Some("70")) {
        group.push_str("pgimage:x:70:\n");
    }
    std::fs::write(root.dir.join("passwd"), passwd).expect("write");
    std::fs::write(root.dir.join("group"), group).expect("write");
    let mut script = format!(
        "set -e\nmount --bind {d}/passwd /etc/passwd\nmount --bind {d}/group /etc/group\nexport {env}\n",
        d = root.dir.display(),
        env = root.env()
    );
    for pre in pg_vm.exec("postgres.service", "ExecStartPre") {
        let ignore = pre.starts_with('-');
        let cmd = root.command("postgresql1", &pre).join(" ");
        script.push_str(&format!("{cmd}{}\n", if ignore { " || true" } else { "" }));
    }
    script.push_str(&format!(
        "exec {}\n",
        root.command(
            "postgresql1",
            &pg_vm.exec("postgres.service", "ExecStart")[0]
        )
        .join(" ")
    ));
    let _postgres = pg.spawn_private_mounts(&script, &root.dir.join("postgres.log"));
    let password = pg_vm.text("/etc/postgresql/password").trim().to_string();
    let hba = pg_vm.text("/etc/postgresql/pg_hba.conf");
    let psql = |ns: &Netns, pw: &str| -> Output {
        ns.try_exec(&[
            "env",
            &format!("PGPASSWORD={pw}"),
            "PGCONNECT_TIMEOUT=3",
            "psql",
            "-h",
            &addr("postgresql1").to_string(),
            "-U",
            "postgres",
            "-tAc",
            "select current_user",
        ])
    };
    let pg_up = support::wait_until(Duration::from_secs(40), || {
        psql(&w1, &password).status.success()
    });
    let o = psql(&w1, &password);
    rows.row(
        "postgres image → Debian PostgreSQL: scram login from worker1 (hba allows)",
        pg_up.is_some()
            && hba.contains(&format!(
                "host all all {}/32 scram-sha-256",
                addr("worker1")
            )),
        &format!(
            "{:?} in {:.1} s (initdb included)",
            out(&o),
            t.elapsed().as_secs_f64()
        ),
    );
    let o = psql(&w1, "wrong-password");
    rows.row(
        "PostgreSQL refuses a wrong password from worker1",
        !o.status.success() && out(&o).contains("password authentication failed"),
        &out(&o),
    );
    let o = psql(&m1, &password);
    rows.row(
        "PostgreSQL refuses master1 (no pg_hba.conf line allows it)",
        !o.status.success() && out(&o).contains("pg_hba.conf rejects"),
        &out(&o),
    );
    let enc = pg.try_exec(&[
        "sh",
        "-c",
        &format!(
            "cat {}/var/mnt/pgdata/data/pgdata/PG_VERSION; stat -c '%u:%g %a' {}/var/mnt/pgdata/data/pgdata",
            root.host("postgresql1", ""),
            root.host("postgresql1", "")
        ),
    ]);
    rows.row(
        "PGDATA initialised by the stand-in's entrypoint as uid 70, 0700",
        out(&enc).ends_with("70:70 700"),
        &out(&enc).replace('\n', " "),
    );

    // 3. K3s: master1 first; master2 (server) and worker1 (agent) join
    //    through the VIP after the agent unit's own wait on /ping.
    let t = Instant::now();
    let (_m1d, m1_rx) = k3s(&root, &k3s_bin, &m1, "master1", &vms["master1"], "server");
    let m1_ready = ready(&m1_rx, Duration::from_secs(20));
    rows.row(
        "STAND-IN k3s server on master1 notifies READY=1 (cluster-init)",
        m1_ready.is_some(),
        &format!("{:.1} s", t.elapsed().as_secs_f64()),
    );
    let wait = vms["worker1"]
        .exec("k3s-agent.service", "ExecStartPre")
        .into_iter()
        .find(|l| l.contains("/ping"))
        .expect("agent waits on /ping");
    let o = w1.try_exec(&["timeout", "30", "sh", "-c", &wait]);
    rows.row(
        "worker1's generated ExecStartPre (curl on /ping through the VIP) ends",
        o.status.success(),
        &format!("{} {}", wait.chars().take(60).collect::<String>(), out(&o)),
    );
    let (_m2d, m2_rx) = k3s(&root, &k3s_bin, &m2, "master2", &vms["master2"], "server");
    let (_w1d, w1_rx) = k3s(&root, &k3s_bin, &w1, "worker1", &vms["worker1"], "agent");
    // storage1's agent with a wrong token: refused, never ready.
    let mut bad = Vm {
        files: vms["storage1"].files.clone(),
        units: BTreeMap::new(),
    };
    bad.files.insert(
        "/etc/rancher/k3s/agent-token".into(),
        b"0000000000000000000000000000000000000000000000000000000000000000\n".to_vec(),
    );
    let (_s1d, s1_rx) = k3s(&root, &k3s_bin, &s1, "storage1", &bad, "agent");
    for (name, rx, role, a) in [
        ("master2", &m2_rx, "server", addr("master2")),
        ("worker1", &w1_rx, "agent", addr("worker1")),
    ] {
        let r = ready(rx, Duration::from_secs(20));
        let j = joins(&root);
        let entry = j
            .iter()
            .find(|e| e["node"] == name && e["accepted"] == true);
        let ok = r.is_some()
            && entry.is_some_and(|e| {
                e["url"] == join_url.as_str()
                    && e["role"] == role
                    && e["peer"] == a.to_string().as_str()
                    && e["host_header"] == join_url.trim_start_matches("https://")
            });
        rows.row(
            &format!("{name} joins through {join_url} as {role}, then READY=1"),
            ok,
            &format!(
                "master1 logged {}",
                entry.map_or("nothing".to_string(), |e| e.to_string())
            ),
        );
    }
    let refused = support::wait_until(Duration::from_secs(10), || {
        joins(&root)
            .iter()
            .any(|e| e["node"] == "storage1" && e["accepted"] == false)
    });
    let bad_ready = ready(&s1_rx, Duration::from_secs(3));
    rows.row(
        "storage1 with a wrong agent token: refused, logged, never READY",
        refused.is_some()
            && bad_ready.is_none()
            && !Path::new(&root.host("storage1", "/var/lib/rancher/k3s/standin/joined")).exists(),
        "master1 logged REFUSED (wrong token)",
    );
    let curl =
        |url: &str| -> String { out(&s1.try_exec(&["curl", "-ksS", "--max-time", "3", url])) };
    let got = curl(&format!("http://{}:30080/", addr("worker1")));
    rows.row(
        "worker1 ingress stand-in: HTTP 30080 names the node",
        got == "worker1",
        &got,
    );
    let got = curl(&format!("https://{}:30443/", addr("worker1")));
    rows.row(
        "worker1 ingress stand-in: TLS 30443 names the node",
        got == "worker1",
        &got,
    );
    let got = curl(&format!("{join_url}/version"));
    rows.row(
        "K3s API /version through the join URL",
        got.contains("\"gitVersion\"") && got.contains("master1"),
        &got,
    );
    println!("k3s phase {:.1} s", t.elapsed().as_secs_f64());

    // 4. The docker verbs the units and deploys use.
    let o = docker(&infra, &["inspect", "-f", "{{.State.Running}}", "coredns"]);
    rows.row(
        "docker inspect -f '{{.State.Running}}' coredns",
        out(&o) == "true",
        &out(&o),
    );
    let o = docker(&pg, &["inspect", "-f", "{{.State.Running}}", "postgres"]);
    rows.row(
        "docker inspect -f '{{.State.Running}}' postgres",
        out(&o) == "true",
        &out(&o),
    );
    let o = docker(&infra, &["kill", "--signal=USR1", "coredns"]);
    let reloaded = support::wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(root.dir.join("coredns.log"))
            .unwrap_or_default()
            .contains("received SIGHUP signal to reload zones")
    });
    rows.row(
        "docker kill --signal=USR1 coredns: named reloads, still answers",
        o.status.success() && reloaded.is_some() && dig(&[&api]) == a_of("api"),
        &out(&o),
    );
    let o = docker(&pg, &["kill", "--signal=HUP", "postgres"]);
    let reloaded = support::wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(root.dir.join("postgres.log"))
            .unwrap_or_default()
            .contains("received SIGHUP, reloading configuration files")
    });
    rows.row(
        "docker kill --signal=HUP postgres: PostgreSQL reloads",
        o.status.success() && reloaded.is_some(),
        &out(&o),
    );
    let o = docker(
        &infra,
        &[
            "run",
            "--rm",
            "--name",
            "coredns",
            "--network",
            "host",
            "registry.k8s.io/coredns/coredns:v1",
        ],
    );
    rows.row(
        "docker run with a name in use: refused",
        !o.status.success() && out(&o).contains("already in use"),
        &out(&o),
    );
    let o = docker(
        &infra,
        &[
            "run",
            "--rm",
            "--name",
            "x",
            "--network",
            "host",
            "docker.io/library/nginx:1",
        ],
    );
    rows.row(
        "docker run of an unknown image: clear error, non-zero",
        o.status.code() == Some(125)
            && out(&o).contains("runs only the CoreDNS and postgres images"),
        &out(&o),
    );
    let t = Instant::now();
    let o = docker(&infra, &["stop", "-t", "5", "coredns"]);
    let gone = docker(&infra, &["inspect", "-f", "{{.State.Running}}", "coredns"]);
    rows.row(
        "docker stop -t 5 coredns: stopped, then no such object",
        o.status.success() && !gone.status.success() && out(&gone).contains("No such object"),
        &format!("{:.1} s; {}", t.elapsed().as_secs_f64(), out(&gone)),
    );
    let o = docker(&pg, &["rm", "-f", "postgres"]);
    let gone = docker(&pg, &["inspect", "-f", "{{.State.Running}}", "postgres"]);
    rows.row(
        "docker rm -f postgres: killed and removed",
        o.status.success() && !gone.status.success(),
        &out(&gone),
    );
    let o = docker(&pg, &["rm", "-f", "postgres"]);
    rows.row(
        "docker rm -f of a missing container: exit 0",
        o.status.success(),
        &out(&o),
    );

    for name in ["master1", "master2", "worker1", "storage1"] {
        let log =
            std::fs::read_to_string(root.dir.join(format!("{name}-k3s.log"))).unwrap_or_default();
        let other: Vec<&str> = log
            .lines()
            .filter(|l| !l.starts_with("STAND-IN k3s"))
            .collect();
        rows.row(
            &format!("{name}: every line of the K3s stand-in says STAND-IN"),
            other.is_empty() && !log.is_empty(),
            &format!("{} lines; others: {other:?}", log.lines().count()),
        );
    }
    println!(
        "stand-ins live test: {:.1} s",
        t_all.elapsed().as_secs_f64()
    );
    drop((infra, pg, m1, m2, w1, s1, sw));
    assert!(
        rows.failed.is_empty(),
        "failed claims:\n{}",
        rows.failed.join("\n")
    );
}
