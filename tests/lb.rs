//! flatcar-lb on the reference cloud: frontends, backends, VRRP instances
//! and contributions follow the model; one source of truth for ports. (The
//! real `haproxy -c` and `keepalived -t` are the live target `lb_tools.rs`.)

use flatcar_ignition::compose;
use flatcar_lb::{haproxy, keepalived, LoadBalancers, Settings};
use flatcar_microcloud::reference::cluster;
use flatcar_topology::provision::{Contents, MemorySecrets};
use flatcar_topology::{Preempt, Spec};

#[test]
fn frontends_bind_only_vips_and_backends_follow_the_model() {
    let c = cluster().expect("valid");
    let h = haproxy::render(&c, c.vm("lb1").expect("lb1"), &Settings::default()).expect("haproxy");
    let binds: Vec<&str> = h
        .lines()
        .filter(|l| l.trim_start().starts_with("bind "))
        .map(str::trim)
        .collect();
    assert_eq!(
        binds,
        [
            "bind 192.168.0.10:6443 transparent",
            "bind 192.168.0.14:80 transparent",
            "bind 192.168.0.14:443 transparent",
            "bind 10.17.4.10:6443 transparent"
        ]
    );
    assert!(!h.contains("0.0.0.0") && !h.contains("*:"));
    for m in 21..=23 {
        assert!(
            h.contains(&format!("server master{} 10.17.4.{m}:6443 check", m - 20)),
            "{h}"
        );
    }
    for w in 24..=26 {
        assert!(
            h.contains(&format!("10.17.4.{w}:30080 check"))
                && h.contains(&format!("10.17.4.{w}:30443 check")),
            "{h}"
        );
    }
    // One source of truth: change the ingress ports in the model, HAProxy follows.
    let mut spec: Spec = c.into_spec();
    spec.k3s.ingress.web = flatcar_topology::Port::of(31080);
    let c2 = flatcar_topology::Cluster::try_from(spec).expect("valid");
    let h2 =
        haproxy::render(&c2, c2.vm("lb1").expect("lb1"), &Settings::default()).expect("haproxy");
    assert!(
        h2.contains("10.17.4.24:31080 check") && !h2.contains(":30080"),
        "{h2}"
    );
}

#[test]
fn vrrp_instances_follow_holders_and_preemption() {
    let c = cluster().expect("valid");
    let ids = keepalived::router_ids(&c).expect("ids");
    assert_eq!(ids.len(), 3);
    assert_ne!(ids["api"], ids["web"]);
    assert_ne!(ids["api"], ids["api-internal"]);
    assert_ne!(ids["web"], ids["api-internal"]);
    assert_eq!(
        keepalived::router_ids(&c).expect("ids"),
        ids,
        "deterministic"
    );
    let k1 = keepalived::render(&c, c.vm("lb1").expect("lb1"), &Settings::default()).expect("k");
    let k2 = keepalived::render(&c, c.vm("lb2").expect("lb2"), &Settings::default()).expect("k");
    assert_eq!(k1.matches("priority 200").count(), 3);
    assert_eq!(k2.matches("priority 150").count(), 3);
    assert!(k1.contains("unicast_src_ip 192.168.0.11") && k1.contains("        192.168.0.12\n"));
    assert!(k1.contains("192.168.0.10/24 dev eth0") && k1.contains("192.168.0.14/24 dev eth0"));
    // The internal API VIP: its own instance on the k8s NIC, peers on k8s.
    assert!(k1.contains("vrrp_instance vip_api_internal {"), "{k1}");
    assert!(k1.contains("unicast_src_ip 10.17.4.11") && k1.contains("        10.17.4.12\n"));
    assert!(k1.contains("10.17.4.10/24 dev eth1"), "{k1}");
    assert!(k1.contains("vrrp_version 3") && k1.contains("advert_int 0.02"));
    assert!(k1.contains("preempt_delay 5"));
    assert!(!k1.contains("auth_pass"));
    assert!(
        !k1.lines().any(|l| l.trim_start().starts_with("notify")),
        "{k1}"
    );
    for (p, nopreempt, delay) in [
        (Preempt::Never, true, false),
        (Preempt::Always, false, false),
        (Preempt::AfterSecs(9), false, true),
    ] {
        let mut spec = c.clone().into_spec();
        for v in &mut spec.vips {
            v.preempt = p;
        }
        let c2 = flatcar_topology::Cluster::try_from(spec).expect("valid");
        let k =
            keepalived::render(&c2, c2.vm("lb1").expect("lb1"), &Settings::default()).expect("k");
        assert_eq!(k.contains("nopreempt"), nopreempt, "{p:?}\n{k}");
        assert_eq!(k.contains("preempt_delay 9"), delay, "{p:?}\n{k}");
    }
}

#[test]
fn contributed_to_the_load_balancers_only() {
    let c = cluster().expect("valid");
    let composed = compose(
        &c,
        &[&LoadBalancers::default()],
        &mut MemorySecrets::default(),
    )
    .expect("no collisions");
    for (name, node) in &composed.nodes {
        let is_lb = name.starts_with("lb");
        assert_eq!(
            node.files.contains_key("/etc/haproxy/haproxy.cfg"),
            is_lb,
            "{name}"
        );
        assert_eq!(
            node.units.contains_key("keepalived.service"),
            is_lb,
            "{name}"
        );
        assert_eq!(
            node.sysctls
                .get("net.ipv4.ip_nonlocal_bind")
                .map(String::as_str),
            is_lb.then_some("1"),
            "{name}"
        );
    }
    // HAProxy and Keepalived come from the sysext-bakery extensions, with
    // their own units; the cloud adds drop-ins, not container units.
    let lb1 = &composed.nodes["lb1"];
    assert!(lb1.units["haproxy.service"].contents.is_none());
    assert!(lb1.units["haproxy.service"]
        .dropins
        .contains_key("20-microcloud.conf"));
    assert_eq!(
        lb1.links
            .get("/etc/extensions/haproxy.raw")
            .map(String::as_str),
        Some("/opt/extensions/haproxy/haproxy-3.2.5-x86-64.raw")
    );
    assert!(composed.artifacts.contains_key("lb/lb1/haproxy.cfg"));
}

/// The track script works on a real Flatcar node only if the pid HAProxy
/// writes is the pid Keepalived probes: both run as host services from
/// their system extensions (no pid namespaces), the extension's HAProxy unit
/// writes `-p /run/haproxy/haproxy.pid`, which is what the config and the
/// track script name.
#[test]
fn keepalived_sees_the_haproxy_pid_it_tracks() {
    let c = cluster().expect("valid");
    let composed = compose(
        &c,
        &[&LoadBalancers::default()],
        &mut MemorySecrets::default(),
    )
    .expect("no collisions");
    let node = &composed.nodes["lb1"];
    let unit = |n: &str| node.units[n].contents.clone().expect("unit text");
    let file = |p: &str| match &node.files[p].contents {
        Contents::Inline(b) => String::from_utf8(b.clone()).expect("utf8"),
        other => panic!("{p}: {other:?}"),
    };
    assert!(haproxy::PID_FILE.starts_with(haproxy::RUN_DIR));
    assert!(file("/etc/haproxy/haproxy.cfg").contains(&format!("pidfile {}", haproxy::PID_FILE)));
    assert!(
        file("/etc/keepalived/keepalived.conf").contains(&format!("$(cat {})", haproxy::PID_FILE))
    );
    // Keepalived runs VRRP only, after HAProxy.
    assert_eq!(
        file(flatcar_lb::KEEPALIVED_ENV),
        "KEEPALIVED_OPTIONS=\"--vrrp\"\n"
    );
    let order = &node.units["keepalived.service"].dropins["20-microcloud.conf"];
    assert!(order.contains("After=haproxy.service"), "{order}");
    // Both extensions are downloaded to /opt/extensions and linked.
    for (name, ver) in [
        ("haproxy", flatcar_lb::HAPROXY_VERSION),
        ("keepalived", flatcar_lb::KEEPALIVED_VERSION),
    ] {
        let raw = format!("/opt/extensions/{name}/{name}-{ver}-x86-64.raw");
        assert!(matches!(node.files[&raw].contents, Contents::Remote { .. }));
        assert_eq!(node.links[&format!("/etc/extensions/{name}.raw")], raw);
    }
    // The fast path: the watcher on the host writes the down file in the
    // shared runtime directory; Keepalived tracks that file.
    assert!(haproxy::DOWN_FILE.starts_with(haproxy::RUN_DIR));
    let watch = file(haproxy::WATCH_SCRIPT);
    assert!(
        watch.contains(haproxy::PID_FILE) && watch.contains(haproxy::DOWN_FILE),
        "{watch}"
    );
    assert!(unit("haproxy-watch.service").contains(haproxy::WATCH_SCRIPT));
    assert!(file("/etc/keepalived/keepalived.conf")
        .contains(&format!("file \"{}\"", haproxy::DOWN_FILE)));
}

/// Every runtime path HAProxy's config, the watcher and Keepalived use
/// (stats socket, pid file, down file) lies in a directory that the
/// generated HAProxy drop-in creates before HAProxy starts (the
/// extension's tmpfiles.d entry is only applied at the boot after the one
/// that merged it: HAProxy's first start failed on a missing `/run/haproxy`
/// in the boot lab), and that survives HAProxy's stop (the down file must
/// stay readable for Keepalived).
#[test]
fn haproxy_unit_creates_its_runtime_directory() {
    let c = cluster().expect("valid");
    let composed = compose(
        &c,
        &[&LoadBalancers::default()],
        &mut MemorySecrets::default(),
    )
    .expect("no collisions");
    let node = &composed.nodes["lb1"];
    let dropin = &node.units["haproxy.service"].dropins["20-microcloud.conf"];
    let key = |k: &str| -> Vec<String> {
        dropin
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{k}=")))
            .flat_map(|v| v.split_whitespace().map(str::to_string))
            .collect()
    };
    let made: Vec<String> = key("RuntimeDirectory")
        .iter()
        .map(|d| format!("/run/{d}"))
        .collect();
    assert_eq!(key("RuntimeDirectoryPreserve"), ["yes"], "{dropin}");
    // An empty server-state file before HAProxy starts (HAProxy warns at
    // every start and check when the file its config names is missing).
    assert!(
        dropin.contains(&format!(
            "ExecStartPre=/bin/sh -c 'test -s {s} || echo 1 > {s}'\n",
            s = haproxy::STATE_FILE
        )),
        "{dropin}"
    );
    // HAProxy's unit (upstream's, as Debian's and the extensions') passes
    // `-p $PIDFILE`, which wins over the config's `pidfile`: the drop-in
    // must point it where the watcher and the track script read.
    assert_eq!(
        key("Environment"),
        [format!("PIDFILE={}", haproxy::PID_FILE)],
        "{dropin}"
    );
    let Contents::Inline(cfg) = &node.files["/etc/haproxy/haproxy.cfg"].contents else {
        panic!("inline config")
    };
    let cfg = String::from_utf8(cfg.clone()).expect("utf8");
    let mut paths: Vec<String> = cfg
        .split_whitespace()
        .filter(|w| w.starts_with("/run/"))
        .map(str::to_string)
        .collect();
    assert!(paths.len() >= 2, "stats socket and pid file: {cfg}");
    paths.push(haproxy::DOWN_FILE.to_string());
    for p in paths {
        let dir = p.rsplit_once('/').map(|(d, _)| d).expect("a directory");
        assert!(
            made.iter().any(|m| m == dir),
            "{p}: {dir} is not created by the unit ({made:?})\n{dropin}"
        );
    }
}

/// Keepalived's realtime budget is stated whenever it runs realtime, and
/// the model's failure-detection timing reaches both daemons' configs
/// through the load-balancer service (the boot lab's TCG settings).
#[test]
fn failover_timing_and_realtime_budget_come_from_the_model() {
    use flatcar_topology::failover::Failover;
    let c = cluster().expect("valid");
    let lb1 = c.vm("lb1").expect("lb1");
    let k = keepalived::render(&c, lb1, &Settings::default()).expect("k");
    assert!(k.contains("vrrp_rt_priority 40"), "{k}");
    assert!(k.contains("vrrp_rlimit_rttime 100000\n"), "{k}");
    // No realtime, no budget (Keepalived sets RLIMIT_RTTIME only then).
    let k = keepalived::render(&c, lb1, &Settings::hand_written()).expect("k");
    assert!(!k.contains("rlimit"), "{k}");

    let mut spec: Spec = c.spec().clone();
    spec.failover = Failover {
        vrrp_advert_ms: Some(300),
        check_inter_ms: Some(1000),
        vrrp_rlimit_rttime_ms: Some(2000),
        track_interval_s: Some(5),
    };
    let tcg = flatcar_topology::Cluster::try_from(spec.clone()).expect("valid");
    assert!(tcg.summary().contains("VRRP adverts every 300 ms"));
    let composed = compose(
        &tcg,
        &[&LoadBalancers::default()],
        &mut MemorySecrets::default(),
    )
    .expect("composes");
    let text = |p: &str| match &composed.nodes["lb1"].files[p].contents {
        Contents::Inline(b) => String::from_utf8(b.clone()).expect("utf8"),
        other => panic!("{p}: {other:?}"),
    };
    let k = text("/etc/keepalived/keepalived.conf");
    assert!(k.contains("advert_int 0.3\n"), "{k}");
    assert!(k.contains("vrrp_rlimit_rttime 2000000\n"), "{k}");
    assert!(k.contains("vrrp_rt_priority 40"), "{k}");
    assert!(k.contains("    interval 5\n    timeout 4\n"), "{k}");
    let h = text("/etc/haproxy/haproxy.cfg");
    assert!(h.contains("inter 1s fastinter 200ms"), "{h}");

    // Out-of-range timing is a model error, not a config Keepalived rejects.
    spec.failover.vrrp_advert_ms = Some(305);
    let err = flatcar_topology::Cluster::try_from(spec).expect_err("305 ms is no VRRPv3 interval");
    assert!(err.to_string().contains("vrrp_advert_ms 305"), "{err}");
}

/// A reload keeps every server's state: the config reads the state file
/// (`load-server-state-from-file`), and the reload command the rollout runs
/// writes it from the admin socket before it reloads. Without it the new
/// process starts every server as up, and one that is down takes requests
/// until its checks fail again (seen as one failed request per reload with
/// HAProxy 2.6 and two of three servers down).
#[test]
fn a_reload_keeps_the_server_states() {
    let c = cluster().expect("valid");
    let lb1 = c.vm("lb1").expect("lb1");
    let cfg = haproxy::render(&c, lb1, &Settings::default()).expect("renders");
    let (global, rest) = cfg.split_once("\ndefaults\n").expect("sections");
    let defaults = rest.split("\nfrontend ").next().expect("defaults");
    assert!(global.contains(&format!("    server-state-file {}\n", haproxy::STATE_FILE)));
    assert!(defaults.contains("    load-server-state-from-file global\n"));
    assert!(haproxy::STATE_FILE.starts_with(haproxy::RUN_DIR));
    let cmd = flatcar_topology::change::Reload::Haproxy.command();
    let dump = cmd
        .find(&format!(
            "show servers state' | socat stdio unix-connect:{}",
            haproxy::STATS_SOCKET
        ))
        .expect("dumps from the admin socket");
    let reload = cmd
        .find("systemctl reload haproxy.service")
        .expect("reloads");
    assert!(dump < reload, "{cmd}");
    assert!(
        cmd.starts_with(&format!("s={}; ", haproxy::STATE_FILE)),
        "{cmd}"
    );
}
