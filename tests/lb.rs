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
            "bind 192.168.0.10:6443",
            "bind 192.168.0.14:80",
            "bind 192.168.0.14:443"
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
    assert_eq!(ids.len(), 2);
    assert_ne!(ids["api"], ids["web"]);
    assert_eq!(
        keepalived::router_ids(&c).expect("ids"),
        ids,
        "deterministic"
    );
    let k1 = keepalived::render(&c, c.vm("lb1").expect("lb1"), &Settings::default()).expect("k");
    let k2 = keepalived::render(&c, c.vm("lb2").expect("lb2"), &Settings::default()).expect("k");
    assert_eq!(k1.matches("priority 200").count(), 2);
    assert_eq!(k2.matches("priority 150").count(), 2);
    assert!(k1.contains("unicast_src_ip 192.168.0.11") && k1.contains("        192.168.0.12\n"));
    assert!(k1.contains("192.168.0.10/24 dev eth0") && k1.contains("192.168.0.14/24 dev eth0"));
    assert!(k1.contains("vrrp_version 3") && k1.contains("advert_int 0.02"));
    assert!(k1.contains("preempt_delay 5"));
    assert!(!k1.contains("auth_pass") && !k1.contains("notify"));
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
    let unit = composed.nodes["lb1"].units["haproxy.service"]
        .contents
        .clone()
        .expect("unit");
    assert!(
        unit.contains("@sha256:") && unit.contains("--network host"),
        "{unit}"
    );
    assert!(composed.artifacts.contains_key("lb/lb1/haproxy.cfg"));
}

/// The track script works on a real Flatcar node only if the pid HAProxy
/// writes means the same process in Keepalived's container: both run in the
/// host pid namespace and share the runtime directory holding the pid file.
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
    let (hap_unit, ka_unit) = (unit("haproxy.service"), unit("keepalived.service"));
    let mount = format!("-v {0}:{0}", haproxy::RUN_DIR);
    for u in [&hap_unit, &ka_unit] {
        assert!(u.contains("--pid host") && u.contains(&mount), "{u}");
    }
    assert!(
        ka_unit.contains(&format!("--entrypoint {} ", flatcar_lb::KEEPALIVED_BIN)),
        "{ka_unit}"
    );
    assert!(haproxy::PID_FILE.starts_with(haproxy::RUN_DIR));
    assert!(file("/etc/haproxy/haproxy.cfg").contains(&format!("pidfile {}", haproxy::PID_FILE)));
    assert!(
        file("/etc/keepalived/keepalived.conf").contains(&format!("$(cat {})", haproxy::PID_FILE))
    );
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
    // Every image is pinned by digest.
    for u in [&hap_unit, &ka_unit] {
        assert!(u.contains("@sha256:"), "{u}");
    }
}
