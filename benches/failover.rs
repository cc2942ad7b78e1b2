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
//! Medians over RUNS runs, a fresh lab per run.

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
        println!("{name:>12}: (a) holder dies -> client connects: {:?}", a);
        println!("{name:>12}: (b) master dies -> marked DOWN:     {:?}", b);
        results.push((name, median(a), median(b)));
    }
    println!();
    println!(
        "{:>12} {:>22} {:>22}",
        "settings", "(a) median", "(b) median"
    );
    for (name, a, b) in &results {
        println!(
            "{name:>12} {:>19.0} ms {:>19.0} ms",
            a.as_secs_f64() * 1000.0,
            b.as_secs_f64() * 1000.0
        );
    }
    let (_, ga, gb) = results[0];
    let (_, ha, hb) = results[1];
    let ra = ha.as_secs_f64() / ga.as_secs_f64();
    let rb = hb.as_secs_f64() / gb.as_secs_f64();
    println!("ratio hand-written/generated: (a) {ra:.1}x, (b) {rb:.1}x");
    let ok = ga < Duration::from_secs(1) && gb < Duration::from_secs(1) && ra >= 3.0 && rb >= 3.0;
    println!(
        "floors (generated < 1 s, >= 3x faster): {}",
        if ok { "met" } else { "MISSED" }
    );
}
