//! `cargo bench --bench scale`: build + validate + render every artifact for
//! generated clouds of 10, 100, 1,000 and 10,000 VMs, each size in its own
//! child process pinned to one core (`taskset -c 0`), reporting median time,
//! peak memory (VmHWM) and the growth factor per 10x.

use flatcar_lb::{haproxy, keepalived, Settings};
#[path = "common/scale.rs"]
mod scale;

use flatcar_microcloud::{inventory, Bundle, BundleSecrets};
use flatcar_topology::{Cluster, Role};
use std::path::Path;
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
    ansible_comparison();
    if let Some((s, m)) = ten_k {
        println!(
            "10,000 VMs: {s:.3} s (floor 1 s: {}), peak {m:.0} MiB (floor 500 MiB: {})",
            if s < 1.0 { "met" } else { "MISSED" },
            if m < 500.0 { "met" } else { "MISSED" }
        );
    }
}

/// Our side of the comparison: HAProxy + Keepalived for every LB and the inventory.
fn ours(c: &Cluster) -> Duration {
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for lb in c.with_role(Role::LoadBalancer) {
                let _ = haproxy::render(c, lb, &Settings::default());
                let _ = keepalived::render(c, lb, &Settings::default());
            }
            let _ = inventory::render(c);
            t.elapsed()
        })
        .collect();
    times.sort();
    times[2]
}

/// The same cloud as Ansible template variables.
fn vars(c: &Cluster, out: &Path) -> serde_json::Value {
    use serde_json::json;
    let ids = keepalived::router_ids(c).unwrap_or_default();
    let lbs: Vec<_> = c
        .with_role(Role::LoadBalancer)
        .enumerate()
        .map(|(i, v)| json!({"name": v.name.as_str(), "address": v.primary_address().map(|a| a.to_string()), "priority": keepalived::priority(i)}))
        .collect();
    let vips: Vec<_> = c
        .vips()
        .iter()
        .map(|v| {
            let ports: Vec<_> = v
                .ports
                .iter()
                .map(|p| {
                    let backends: Vec<_> = c
                        .backends(v, p)
                        .iter()
                        .map(|b| json!({"name": b.vm.name.as_str(), "address": b.address.to_string(), "port": b.port.get()}))
                        .collect();
                    json!({"port": p.port.get(), "backends": backends})
                })
                .collect();
            json!({"name": v.name.as_str(), "address": v.address.to_string(), "vrid": ids.get(v.name.as_str()), "ports": ports})
        })
        .collect();
    let vms: Vec<_> = c
        .vms()
        .iter()
        .map(|v| json!({"name": v.name.as_str(), "address": v.primary_address().map(|a| a.to_string())}))
        .collect();
    let mut groups = serde_json::Map::new();
    for r in Role::ALL {
        let m: Vec<_> = c.with_role(r).map(|v| v.name.as_str()).collect();
        if !m.is_empty() {
            groups.insert(inventory::group_name(r), json!(m));
        }
    }
    json!({"lbs": lbs, "vips": vips, "vms": vms, "groups_by_role": groups, "out": out.display().to_string()})
}

fn ansible_comparison() {
    let venv = "/opt/flatcar-microcloud-venv/bin/ansible-playbook";
    let playbook = if Path::new(venv).exists() {
        venv.to_string()
    } else {
        "ansible-playbook".to_string()
    };
    let dir = std::env::temp_dir().join(format!("fmc-ansible-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    println!();
    println!("same HAProxy + Keepalived + inventory files: this library vs ansible-playbook templates (localhost)");
    println!(
        "{:>8} {:>14} {:>14} {:>10}",
        "VMs", "this library", "ansible", "ratio"
    );
    for n in [10usize, 100, 1000, 10_000] {
        let c = scale::cloud(n).unwrap_or_else(|p| panic!("{p}"));
        let ours = ours(&c);
        let out = dir.join(format!("out{n}"));
        let _ = std::fs::create_dir_all(&out);
        let vars_file = dir.join(format!("vars{n}.json"));
        let _ = std::fs::write(&vars_file, vars(&c, &out).to_string());
        let t = Instant::now();
        let status = Command::new(&playbook)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/ansible"))
            .args(["-i", "localhost,", "render.yml", "-e"])
            .arg(format!("@{}", vars_file.display()))
            .env("ANSIBLE_LOCALHOST_WARNING", "False")
            .env(
                "ANSIBLE_PYTHON_INTERPRETER",
                Path::new(&playbook)
                    .with_file_name("python")
                    .display()
                    .to_string(),
            )
            .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "False")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let theirs = t.elapsed();
        match status {
            Ok(s) if s.success() => println!(
                "{n:>8} {:>14} {:>14} {:>9.0}x",
                format!("{ours:.2?}"),
                format!("{theirs:.2?}"),
                theirs.as_secs_f64() / ours.as_secs_f64()
            ),
            other => {
                println!("{n:>8} ansible-playbook failed or is missing ({other:?}); install ansible-core (scripts/test does)");
                break;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
