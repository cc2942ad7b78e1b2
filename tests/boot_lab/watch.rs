//! Day two's diagnostics of the load balancers, printed per phase: what
//! the LAN bridge carried (every VRRP advert and gratuitous ARP, by
//! `tcpdump` in the lab namespace), how fast each load balancer's kernel
//! answered (a ping every 100 ms from the lab namespace), and each guest's
//! pressure-stall counters (`/proc/pressure`) over SSH. None of it is a
//! claim: when a VIP moves in a phase that moves none, these lines say
//! whether the holder stopped advertising (its adverts' gap on the wire),
//! the backup went deaf (no advert gap, but the backup advertised), or a
//! whole guest stalled (its ping answers late).

use super::support::{Daemon, Netns};
use flatcar_topology::{Cluster, Role};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The ping interval towards each load balancer.
const PING_EVERY: &str = "0.1";

/// A process in the lab namespace ([`Netns::spawn_logged`]), its output
/// in `file`; killed on drop.
struct Logged {
    _daemon: Daemon,
    file: PathBuf,
}

impl Logged {
    fn start(lab: &Netns, args: &[&str], file: PathBuf) -> Logged {
        Logged {
            _daemon: lab.spawn_logged(args, &file),
            file,
        }
    }
}

/// The running diagnostics.
pub(super) struct Watch {
    /// Unix time (s) of day two's start: the `+x s` of every line.
    t0_unix: f64,
    wire: Logged,
    pings: Vec<(String, Logged)>,
    /// VRRP router id → VIP name.
    vrids: BTreeMap<u8, String>,
    /// LAN address → load balancer name.
    lbs: BTreeMap<Ipv4Addr, String>,
    /// MAC → load balancer name.
    macs: BTreeMap<String, String>,
    /// VIP addresses → VIP name.
    vips: BTreeMap<Ipv4Addr, String>,
}

/// Seconds since the Unix epoch of `t`.
fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Watch {
    /// Starts the capture and the pings; `since` is the day two's start
    /// (now minus `since` is the `+0 s` of the report lines).
    pub(super) fn start(lab: &Netns, cluster: &Cluster, dir: &Path, since: Duration) -> Watch {
        let lan = cluster.lan().expect("a LAN");
        let t0_unix = unix(SystemTime::now()) - since.as_secs_f64();
        let wire = Logged::start(
            lab,
            &[
                "tcpdump",
                "-i",
                lan.bridge.as_str(),
                "-n",
                "-e",
                "-tt",
                "-l",
                "ip proto 112 or arp",
            ],
            dir.join("wire.txt"),
        );
        let mut lbs = BTreeMap::new();
        let mut macs = BTreeMap::new();
        let mut pings = Vec::new();
        for vm in cluster.with_role(Role::LoadBalancer) {
            for nic in cluster.nics(vm) {
                macs.insert(nic.mac.to_string(), vm.name.to_string());
            }
            let Some(a) = vm.address_on(lan.name.as_str()) else {
                continue;
            };
            lbs.insert(a, vm.name.to_string());
            let file = dir.join(format!("ping-{}.txt", vm.name));
            pings.push((
                vm.name.to_string(),
                Logged::start(
                    lab,
                    &["ping", "-D", "-n", "-i", PING_EVERY, &a.to_string()],
                    file,
                ),
            ));
        }
        let vrids = flatcar_lb::keepalived::router_ids(cluster)
            .expect("router ids")
            .into_iter()
            .map(|(name, id)| (id, name))
            .collect();
        let vips = cluster
            .vips()
            .iter()
            .map(|v| (v.address, v.name.to_string()))
            .collect();
        Watch {
            t0_unix,
            wire,
            pings,
            vrids,
            lbs,
            macs,
            vips,
        }
    }

    /// The lines for the window `from..to` (seconds since day two's start).
    pub(super) fn report(&self, phase: &str, from: f64, to: f64) -> Vec<String> {
        let rel = |t: f64| t - self.t0_unix;
        let inside = |t: f64| (from..=to).contains(&rel(t));
        let mut out = Vec::new();
        // The wire: adverts per (sender, VIP), their longest gap, their
        // priorities; gratuitous ARPs for VIPs by sender.
        let wire = std::fs::read_to_string(&self.wire.file).unwrap_or_default();
        // (sender, vip) → (count, last, longest gap, its end, priorities)
        type Adverts = (usize, Option<f64>, f64, f64, BTreeMap<u16, usize>);
        let mut adverts: BTreeMap<(String, String), Adverts> = BTreeMap::new();
        let mut garps: Vec<String> = Vec::new();
        for line in wire.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let Some(t) = f.first().and_then(|t| t.parse::<f64>().ok()) else {
                continue;
            };
            if !inside(t) {
                continue;
            }
            if let Some(i) = f.iter().position(|w| w.starts_with("VRRP")) {
                let src = f
                    .get(i.wrapping_sub(3))
                    .and_then(|s| s.parse::<Ipv4Addr>().ok());
                let num = |key: &str| {
                    f.iter()
                        .position(|w| *w == key)
                        .and_then(|k| f.get(k + 1))
                        .and_then(|v| v.trim_end_matches(',').parse::<u16>().ok())
                };
                let (Some(src), Some(vrid), Some(prio)) = (src, num("vrid"), num("prio")) else {
                    continue;
                };
                let who = self
                    .lbs
                    .get(&src)
                    .cloned()
                    .unwrap_or_else(|| src.to_string());
                let vip = u8::try_from(vrid)
                    .ok()
                    .and_then(|v| self.vrids.get(&v).cloned())
                    .unwrap_or_else(|| format!("vrid {vrid}"));
                let e = adverts
                    .entry((who, vip))
                    .or_insert((0, None, 0.0, 0.0, BTreeMap::new()));
                e.0 += 1;
                if let Some(last) = e.1 {
                    if t - last > e.2 {
                        e.2 = t - last;
                        e.3 = rel(t);
                    }
                }
                e.1 = Some(t);
                *e.4.entry(prio).or_default() += 1;
            } else if let Some(i) = f.iter().position(|w| *w == "who-has") {
                // A gratuitous ARP: "who-has X [(mac)] tell X" with X a VIP.
                let tell = f.iter().skip(i).position(|w| *w == "tell").map(|k| k + i);
                let (Some(x), Some(y)) = (f.get(i + 1), tell.and_then(|k| f.get(k + 1))) else {
                    continue;
                };
                let y = y.trim_end_matches(',');
                if *x != y {
                    continue;
                }
                let Some(vip) = x.parse::<Ipv4Addr>().ok().and_then(|a| self.vips.get(&a)) else {
                    continue;
                };
                let by = f
                    .get(1)
                    .and_then(|m| self.macs.get(*m))
                    .cloned()
                    .unwrap_or_else(|| f.get(1).unwrap_or(&"?").to_string());
                garps.push(format!("{vip} by {by} at +{:.2} s", rel(t)));
            }
        }
        for ((who, vip), (n, _, gap, end, prios)) in &adverts {
            out.push(format!(
                "{phase} wire: {who} advertised {vip} {n}× (priorities {}), longest gap {:.0} ms (ending at +{end:.2} s)",
                prios
                    .iter()
                    .map(|(p, k)| format!("{p}: {k}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                gap * 1000.0
            ));
        }
        let shown = garps.len().min(12);
        out.push(format!(
            "{phase} wire: {} gratuitous ARP(s) for VIPs{}{}",
            garps.len(),
            if shown > 0 { ": " } else { "" },
            garps[..shown].join("; ")
        ));
        // The pings: the slowest answer and the unanswered ones.
        for (lb, ping) in &self.pings {
            let text = std::fs::read_to_string(&ping.file).unwrap_or_default();
            let mut seqs = Vec::new();
            let mut worst = (0.0f64, 0.0f64);
            for line in text.lines() {
                let Some(t) = line
                    .strip_prefix('[')
                    .and_then(|l| l.split(']').next())
                    .and_then(|t| t.parse::<f64>().ok())
                else {
                    continue;
                };
                if !inside(t) {
                    continue;
                }
                let field = |key: &str| {
                    line.split_whitespace()
                        .find_map(|w| w.strip_prefix(key))
                        .and_then(|v| v.parse::<f64>().ok())
                };
                if let (Some(seq), Some(rtt)) = (field("icmp_seq="), field("time=")) {
                    seqs.push(seq as u64);
                    if rtt > worst.0 {
                        worst = (rtt, rel(t));
                    }
                }
            }
            let expected = match (seqs.iter().min(), seqs.iter().max()) {
                (Some(a), Some(b)) => b - a + 1,
                _ => 0,
            };
            out.push(format!(
                "{phase} ping {lb}: {} answered, {} unanswered, slowest {:.0} ms (answered at +{:.2} s)",
                seqs.len(),
                expected.saturating_sub(seqs.len() as u64),
                worst.0,
                worst.1
            ));
        }
        out
    }
}

/// One line of a `/proc/pressure/<resource>` file (`some avg10=… total=N`):
/// its kind (`some`, `full`) and its total stall time in µs.
fn psi_total(line: &str) -> Option<(&str, u64)> {
    let mut words = line.split_whitespace();
    let kind = words.next()?;
    let total = words.find_map(|w| w.strip_prefix("total="))?.parse().ok()?;
    Some((kind, total))
}

/// A guest's pressure-stall totals (µs stalled, "some" and "full" per
/// resource) and available memory, from one `cat` over SSH.
#[derive(Debug, Default, Clone)]
pub(super) struct Pressure {
    totals: BTreeMap<String, u64>,
    available_kib: Option<u64>,
}

/// The command that prints what [`Pressure::parse`] reads.
pub(super) const PRESSURE_CMD: &str =
    "for r in cpu memory io; do sed \"s/^/$r /\" /proc/pressure/$r; done; grep MemAvailable /proc/meminfo";

impl Pressure {
    /// Parses [`PRESSURE_CMD`]'s output.
    pub(super) fn parse(text: &str) -> Pressure {
        let mut p = Pressure::default();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.first() == Some(&"MemAvailable:") {
                p.available_kib = f.get(1).and_then(|v| v.parse().ok());
            } else if let Some((r, rest)) = line.split_once(' ') {
                if let Some((kind, total)) = psi_total(rest) {
                    p.totals.insert(format!("{r} {kind}"), total);
                }
            }
        }
        p
    }

    /// The stall time since `before`, per resource, and the memory left.
    pub(super) fn since(&self, before: &Pressure) -> String {
        if self.totals.is_empty() {
            return "no /proc/pressure".into();
        }
        let stalls: Vec<String> = self
            .totals
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k} {:.2} s",
                    v.saturating_sub(before.totals.get(k).copied().unwrap_or(0)) as f64 / 1e6
                )
            })
            .collect();
        format!(
            "stalled {}; MemAvailable {} MiB",
            stalls.join(", "),
            self.available_kib
                .map_or("?".into(), |k| (k / 1024).to_string())
        )
    }
}

/// The KVM host's own counters (this machine's kernel): memory compaction
/// and reclaim stalls, huge-page faults (QEMU asks for huge pages for guest
/// RAM, and with `defrag=madvise` a fault compacts memory synchronously in
/// the faulting vCPU thread), and the host's pressure-stall totals.
#[derive(Debug, Default, Clone)]
pub(super) struct Host {
    counters: BTreeMap<String, u64>,
}

/// The `/proc/vmstat` counters [`Host`] reads.
const VMSTAT: [&str; 6] = [
    "compact_stall",
    "compact_fail",
    "allocstall_normal",
    "allocstall_movable",
    "thp_fault_alloc",
    "pgmajfault",
];

impl Host {
    /// Reads the counters now.
    pub(super) fn read() -> Host {
        let mut counters = BTreeMap::new();
        let vmstat = std::fs::read_to_string("/proc/vmstat").unwrap_or_default();
        for line in vmstat.lines() {
            let mut f = line.split_whitespace();
            if let (Some(k), Some(v)) = (f.next(), f.next()) {
                if VMSTAT.contains(&k) {
                    if let Ok(v) = v.parse() {
                        counters.insert(k.to_string(), v);
                    }
                }
            }
        }
        for r in ["cpu", "memory", "io"] {
            let text = std::fs::read_to_string(format!("/proc/pressure/{r}")).unwrap_or_default();
            for (kind, total) in text.lines().filter_map(psi_total) {
                counters.insert(format!("{r} {kind} µs"), total);
            }
        }
        Host { counters }
    }

    /// What changed since `before`, one line.
    pub(super) fn since(&self, before: &Host) -> String {
        self.counters
            .iter()
            .map(|(k, v)| {
                let d = v.saturating_sub(before.counters.get(k).copied().unwrap_or(0));
                match k.strip_suffix(" µs") {
                    Some(k) => format!("{k} stalled {:.2} s", d as f64 / 1e6),
                    None => format!("{k} +{d}"),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}
