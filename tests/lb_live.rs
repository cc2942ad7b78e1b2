//! Live proof in network namespaces with real HAProxy and Keepalived from
//! the generated configs: both VIPs answer; killing LB1's keepalived or its
//! haproxy moves both VIPs to LB2; a dead master leaves the rotation; LB1
//! coming back takes the VIPs back after the configured preempt delay, or
//! never with `nopreempt`.

#[path = "support/lb_lab.rs"]
mod lb_lab;
mod support;

use flatcar_lb::Settings;
use flatcar_microcloud::reference::{cluster_with, AddressPlan};
use flatcar_topology::{Cluster, Preempt};
use lb_lab::{Lab, ECON, STOT};
use std::time::Duration;
use support::wait_until;

const T: Duration = Duration::from_millis(500);

fn both_vips_on(lab: &Lab, lb: &str) -> bool {
    let want = vec![lb.to_string()];
    lab.holders(lab.vip("api")) == want && lab.holders(lab.vip("web")) == want
}

fn reaches_everything(lab: &Lab) {
    let api = lab.vip("api");
    let web = lab.vip("web");
    let a = wait_until(Duration::from_secs(10), || {
        lab.connect(api, 6443, T)
            .is_some_and(|b| b.starts_with("master"))
    });
    assert!(a.is_some(), "API VIP unreachable");
    for port in [80, 443] {
        let ok = wait_until(Duration::from_secs(10), || {
            lab.connect(web, port, T)
                .is_some_and(|b| b.starts_with("worker"))
        });
        assert!(ok.is_some(), "web VIP :{port} unreachable");
    }
}

#[test]
fn client_reaches_both_vips_and_lb1_holds_them() {
    let lab = Lab::new(Settings::default());
    wait_until(Duration::from_secs(20), || both_vips_on(&lab, "lb1")).expect("lb1 holds both VIPs");
    reaches_everything(&lab);
    // Round robin over all three workers, least-conn over masters.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..12 {
        if let Some(b) = lab.connect(lab.vip("web"), 80, T) {
            seen.insert(b);
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[test]
fn killing_keepalived_moves_both_vips_and_preempt_delay_brings_them_back() {
    let mut lab = Lab::new(Settings::default());
    wait_until(Duration::from_secs(20), || both_vips_on(&lab, "lb1")).expect("lb1 holds both VIPs");
    lab.kill_keepalived(0);
    wait_until(Duration::from_secs(5), || both_vips_on(&lab, "lb2"))
        .expect("both VIPs moved to lb2");
    reaches_everything(&lab);
    // LB1 returns: the model says Preempt::AfterSecs(5), so LB2 keeps the
    // VIPs for a while, then LB1 (higher priority) takes them back.
    lab.start_keepalived(0);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        both_vips_on(&lab, "lb2"),
        "lb1 preempted before its preempt_delay"
    );
    if wait_until(Duration::from_secs(15), || both_vips_on(&lab, "lb1")).is_none() {
        panic!(
            "lb1 did not take the VIPs back\nlb1:\n{}\nlb2:\n{}",
            lab.keepalived_log(0),
            lab.keepalived_log(1)
        );
    }
    reaches_everything(&lab);
}

#[test]
fn killing_haproxy_moves_both_vips() {
    let mut lab = Lab::new(Settings::default());
    wait_until(Duration::from_secs(20), || both_vips_on(&lab, "lb1")).expect("lb1 holds both VIPs");
    lab.kill_haproxy(0);
    wait_until(Duration::from_secs(8), || both_vips_on(&lab, "lb2"))
        .expect("track script released the VIPs");
    reaches_everything(&lab);
}

#[test]
fn killing_haproxys_worker_moves_both_vips() {
    let mut lab = Lab::new(Settings::default());
    wait_until(Duration::from_secs(20), || both_vips_on(&lab, "lb1")).expect("lb1 holds both VIPs");
    lab.kill_haproxy_worker(0);
    wait_until(Duration::from_secs(8), || both_vips_on(&lab, "lb2"))
        .expect("track script released the VIPs");
    reaches_everything(&lab);
}

#[test]
fn dead_master_leaves_the_rotation() {
    let mut lab = Lab::new(Settings::default());
    wait_until(Duration::from_secs(20), || both_vips_on(&lab, "lb1")).expect("lb1 holds both VIPs");
    reaches_everything(&lab);
    let api = lab.vip("api");
    lab.kill_backend("master1");
    wait_until(Duration::from_secs(5), || {
        lab.server_status(0, "api-6443", "master1")
            .starts_with("DOWN")
    })
    .expect("HAProxy marked master1 DOWN");
    // From now on HAProxy must not even try master1: its session and
    // connection-error counters stay put while 30 clients are served by the
    // other two (a retried/redispatched attempt would count on master1).
    let count = |server: &str, field: usize| lab.server_counter(0, "api-6443", server, field);
    let before = (count("master1", STOT), count("master1", ECON));
    let others = count("master2", STOT) + count("master3", STOT);
    for _ in 0..30 {
        let got = lab.connect(api, 6443, T);
        assert!(
            got.as_deref()
                .is_some_and(|b| b == "master2" || b == "master3"),
            "got {got:?}"
        );
    }
    assert_eq!(
        (count("master1", STOT), count("master1", ECON)),
        before,
        "a session was sent to the dead master"
    );
    assert_eq!(count("master2", STOT) + count("master3", STOT), others + 30);
}

#[test]
fn nopreempt_keeps_the_vips_on_lb2_when_lb1_returns() {
    let mut spec = cluster_with(&AddressPlan::test())
        .expect("valid")
        .into_spec();
    for v in &mut spec.vips {
        v.preempt = Preempt::Never;
    }
    let mut lab = Lab::with_cluster(Cluster::try_from(spec).expect("valid"), Settings::default());
    wait_until(Duration::from_secs(20), || both_vips_on(&lab, "lb1")).expect("lb1 holds both VIPs");
    lab.kill_keepalived(0);
    wait_until(Duration::from_secs(5), || both_vips_on(&lab, "lb2"))
        .expect("both VIPs moved to lb2");
    lab.start_keepalived(0);
    // lb1 (priority 200) is back and sees lb2's (150) adverts; with
    // nopreempt it stays BACKUP. Watched for 6 s — longer than
    // the reference cloud's 5 s preempt delay.
    wait_until(Duration::from_secs(10), || {
        lab.keepalived_log(0).contains("Entering BACKUP STATE")
    })
    .expect("lb1's keepalived is back in BACKUP");
    for _ in 0..30 {
        assert!(
            both_vips_on(&lab, "lb2"),
            "lb1 preempted despite nopreempt\nlb1:\n{}",
            lab.keepalived_log(0)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    reaches_everything(&lab);
}

#[test]
fn lb_crash_moves_vips_and_clients_reconnect() {
    let mut lab = Lab::new(Settings::default());
    wait_until(Duration::from_secs(20), || both_vips_on(&lab, "lb1")).expect("lb1 holds both VIPs");
    lab.crash(0);
    wait_until(Duration::from_secs(5), || {
        lab.connect(lab.vip("api"), 6443, Duration::from_millis(200))
            .is_some()
    })
    .expect("client reconnected through lb2");
    assert_eq!(lab.holders(lab.vip("api")), vec!["lb2".to_string()]);
}
