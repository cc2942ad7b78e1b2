//! `cargo bench --bench scale`: build + validate + render every artifact for
//! generated clouds of 10, 100, 1,000 and 10,000 VMs, each size in its own
//! child process pinned to one core (`taskset -c 0`), reporting median time,
//! peak memory (VmHWM) and the growth factor per 10x.

use flatcar_microcloud::{scale, Bundle, BundleSecrets};
use std::process::Command;
use std::time::{Duration, Instant};

fn child(n: usize, iters: usize) {
    let mut times = Vec::new();
    let mut files = 0;
    let mut bytes = 0;
    for _ in 0..iters {
        let t = Instant::now();
        let cluster = scale::cloud(n).unwrap_or_else(|p| panic!("{p}"));
        let bundle = Bundle::render(&cluster, &mut BundleSecrets::default())
            .unwrap_or_else(|e| panic!("{e}"));
        times.push(t.elapsed());
        files = bundle.files().len();
        bytes = bundle
            .files()
            .values()
            .map(|f| f.contents.len())
            .sum::<usize>();
        drop(bundle);
    }
    times.sort();
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .unwrap_or_default();
    println!(
        "{n} {} {hwm} {files} {bytes}",
        times[times.len() / 2].as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let n = args[i + 1].parse().unwrap_or(10);
        let iters = args[i + 2].parse().unwrap_or(3);
        return child(n, iters);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    println!("scale benchmark: build + validate + render every artifact, one core (taskset -c 0)");
    println!(
        "{:>8} {:>12} {:>12} {:>8} {:>12} {:>10} {:>14}",
        "VMs", "median", "peak RSS", "files", "bytes", "x per 10x", "n·log n bound"
    );
    let mut prev: Option<(usize, f64)> = None;
    let mut ten_k = None;
    for (n, iters) in [(10usize, 9usize), (100, 9), (1000, 5), (10_000, 3)] {
        let out = Command::new("taskset")
            .args(["-c", "0"])
            .arg(&exe)
            .args(["--child", &n.to_string(), &iters.to_string()])
            .output()
            .unwrap_or_else(|e| panic!("taskset: {e}"));
        let line = String::from_utf8_lossy(&out.stdout).to_string();
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 {
            panic!(
                "child failed for {n}: {line}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let secs: f64 = f[1].parse().unwrap_or(f64::NAN);
        let kib: f64 = f[2].parse().unwrap_or(f64::NAN);
        let (growth, bound) = match prev {
            Some((pn, pt)) => {
                let bound = (n as f64 * (n as f64).ln()) / (pn as f64 * (pn as f64).ln());
                (format!("{:.1}", secs / pt), format!("{bound:.1}"))
            }
            None => ("-".into(), "-".into()),
        };
        println!(
            "{n:>8} {:>12} {:>9.1} MiB {:>8} {:>12} {growth:>10} {bound:>14}",
            format!("{:.2?}", Duration::from_secs_f64(secs)),
            kib / 1024.0,
            f[3],
            f[4]
        );
        prev = Some((n, secs));
        if n == 10_000 {
            ten_k = Some((secs, kib / 1024.0));
        }
    }
    if let Some((s, m)) = ten_k {
        println!(
            "10,000 VMs: {s:.3} s (floor 1 s: {}), peak {m:.0} MiB (floor 500 MiB: {})",
            if s < 1.0 { "met" } else { "MISSED" },
            if m < 500.0 { "met" } else { "MISSED" }
        );
    }
}
