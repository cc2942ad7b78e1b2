//! `cargo bench --bench failover` (root, network namespaces): failover times
//! of the generated defaults against the common hand-written settings
//! (`advert_int 1` VRRPv2, `check inter 3s fall 3 rise 2`), same lab, same run.
//!
//! (a) VIP holder dies (links down, then daemons SIGKILLed — no goodbye
//!     advert) → first successful client TCP connection to the API VIP.
//!     The client retries with a 100 ms connect timeout, so a SYN lost during
//!     the move costs at most 100 ms, not the kernel's 1 s SYN retransmit.
//! (b) a master's listener dies → HAProxy on the VIP holder reports it DOWN
//!     (polled on the stats socket every 10 ms).
//! (c) informational: LB1's HAProxy process dies → first client connection
//!     through LB2 (bounded below by Keepalived's whole-second track-script
//!     interval; no floor).
//! Medians over RUNS runs, a fresh lab per run.
//!
//! "Hand-written" is rendered by the same generator with
//! `Settings::hand_written()`, so it keeps the generator's extras
//! (`fastinter inter/2`, `observe layer4`, `on-error mark-down`): a plain
//! hand-written `check inter 3s fall 3 rise 2` is slower still, so the
//! ratios printed are conservative.

#[path = "../tests/support/lb_lab.rs"]
mod lb_lab;
#[path = "../tests/support/mod.rs"]
mod support;

use flatcar_lb::Settings;
use lb_lab::Lab;
use std::time::{Duration, Instant};

const RUNS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ready(lab: &Lab) {
    let want = vec!["lb1".to_string()];
    support::wait_until(Duration::from_secs(15), || {
        lab.holders(lab.vip("api")) == want && lab.holders(lab.vip("web")) == want
    })
    .expect("lb1 holds the VIPs");
    support::wait_until(Duration::from_secs(15), || {
        lab.server_status(0, "api-6443", "master1")
            .starts_with("UP")
    })
    .expect("master1 UP");
}

fn holder_failover(settings: Settings) -> Duration {
    let mut lab = Lab::new(settings);
    ready(&lab);
    let api = lab.vip("api");
    let start = Instant::now();
    lab.crash(0);
    loop {
        if lab.connect(api, 6443, Duration::from_millis(100)).is_some() {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no failover");
    }
}

/// (c), informational: LB1's HAProxy dies, Keepalived's track script
/// notices (interval in whole seconds — Keepalived 2.2 rejects fractions)
/// and releases both VIPs → first client connection through LB2.
/// Run `k` of `RUNS` kills at phase k/RUNS of the script interval (after
/// `ready`), so the median is not an artefact of one fixed phase.
fn haproxy_death(settings: Settings, k: usize) -> Duration {
    let mut lab = Lab::new(settings);
    ready(&lab);
    let api = lab.vip("api");
    let interval = Duration::from_secs(settings.track_interval_secs.into());
    std::thread::sleep(interval * k as u32 / RUNS as u32);
    let start = Instant::now();
    lab.kill_haproxy(0);
    loop {
        if lab.connect(api, 6443, Duration::from_millis(100)).is_some() {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no failover");
    }
}

fn backend_removal(settings: Settings) -> Duration {
    let mut lab = Lab::new(settings);
    ready(&lab);
    let start = Instant::now();
    lab.kill_backend("master1");
    loop {
        if lab
            .server_status(0, "api-6443", "master1")
            .starts_with("DOWN")
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never marked DOWN"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let cases = [
        ("generated", Settings::default()),
        ("hand-written", Settings::hand_written()),
    ];
    let mut results = Vec::new();
    for (name, s) in cases {
        let a: Vec<Duration> = (0..RUNS).map(|_| holder_failover(s)).collect();
        let b: Vec<Duration> = (0..RUNS).map(|_| backend_removal(s)).collect();
        let c: Vec<Duration> = (0..RUNS).map(|k| haproxy_death(s, k)).collect();
        println!("{name:>12}: (a) holder dies -> client connects:  {a:?}");
        println!("{name:>12}: (b) master dies -> marked DOWN:      {b:?}");
        println!("{name:>12}: (c) haproxy dies -> client connects: {c:?}");
        results.push((name, median(a), median(b), median(c)));
    }
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    println!();
    println!(
        "{:>12} {:>16} {:>16} {:>16}",
        "settings", "(a) median", "(b) median", "(c) median"
    );
    for (name, a, b, c) in &results {
        println!(
            "{name:>12} {:>13.0} ms {:>13.0} ms {:>13.0} ms",
            ms(a),
            ms(b),
            ms(c)
        );
    }
    let (_, ga, gb, gc) = results[0];
    let (_, ha, hb, hc) = results[1];
    let ratio = |h: Duration, g: Duration| h.as_secs_f64() / g.as_secs_f64();
    let (ra, rb, rc) = (ratio(ha, ga), ratio(hb, gb), ratio(hc, gc));
    println!("ratio hand-written/generated: (a) {ra:.1}x, (b) {rb:.1}x, (c) {rc:.1}x");
    let ok = ga < Duration::from_secs(1) && gb < Duration::from_secs(1) && ra >= 3.0 && rb >= 3.0;
    println!(
        "floors on (a) and (b) (generated < 1 s, >= 3x faster): {}",
        if ok { "met" } else { "MISSED" }
    );
}
