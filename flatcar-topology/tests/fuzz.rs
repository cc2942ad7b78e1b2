//! Time-bounded mutation fuzzing of every parser of user text, on the stable
//! toolchain (no coverage guidance: structure-aware mutations of valid seeds
//! plus hostile tokens). Budget per target: `FUZZ_SECONDS` (default 3; the
//! test script sets more). Seed: `FUZZ_SEED` (default: from the clock; it
//! is printed). A panic is saved under `target/fuzz-crashes/` and fails the
//! test; minimized crashes are checked in under `tests/fuzz-regressions/`
//! and replayed first.

mod common;

use flatcar_topology::addr::{parse_ipv4, parse_net4};
use flatcar_topology::{
    Cluster, DialAddr, DomainName, Endpoint, Format, MacAddr, Name, PortRange, SshKey,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "\n",
    "\"",
    "'",
    "{",
    "}",
    "[",
    "]",
    "[[vms]]",
    ";",
    "=",
    ",",
    ":",
    "\\",
    "\u{0}",
    "\u{430}",
    "\u{200b}",
    "-1",
    "0",
    "65535",
    "65536",
    "4294967296",
    "18446744073709551616",
    "1e309",
    "NaN",
    "true",
    "null",
    "255.255.255.255",
    "0.0.0.0/0",
    "/33",
    "..",
    "${x}",
    "$(reboot)",
    "`id`",
    "\r\n",
    "#",
    "\t",
    "é",
    "𝕒",
    "name = ",
    "address = \"",
    "network = \"",
    "roles = [\"master\"]",
    "mac = \"",
    "ports = [",
    "\"\"\"",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                v.splice(at..at, t.iter().copied());
            }
            2 if !v.is_empty() => {
                let len = rng.below(32).min(v.len() - at.min(v.len()));
                v.drain(at.min(v.len())..at.min(v.len()) + len);
            }
            3 if !v.is_empty() => {
                let a = rng.below(v.len());
                let len = rng.below(64).min(v.len() - a);
                let chunk: Vec<u8> = v[a..a + len].to_vec();
                v.splice(at..at, chunk);
            }
            4 => {
                let b = (rng.next() & 0xff) as u8;
                v.insert(at, b);
            }
            _ => {
                let d = (b'0' + rng.below(10) as u8) as char;
                v.splice(at..at, d.to_string().into_bytes());
            }
        }
    }
    v
}

fn budget() -> Duration {
    let s: f64 = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(s)
}

fn seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        })
}

fn fuzz(target: &str, seeds: &[Vec<u8>], f: impl Fn(&[u8])) {
    let regressions =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    if let Ok(dir) = std::fs::read_dir(&regressions) {
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().starts_with(target) {
                let bytes = std::fs::read(e.path()).expect("read regression");
                f(&bytes);
            }
        }
    }
    let s = seed();
    let mut rng = Rng(s);
    let start = Instant::now();
    let mut runs = 0u64;
    while start.elapsed() < budget() {
        let pick = rng.below(seeds.len());
        let input = mutate(&mut rng, &seeds[pick]);
        if catch_unwind(AssertUnwindSafe(|| f(&input))).is_err() {
            let dir =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-crashes");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{target}-{s}-{runs}"));
            let _ = std::fs::write(&path, &input);
            panic!(
                "fuzz target {target} panicked (FUZZ_SEED={s}, input saved to {})",
                path.display()
            );
        }
        runs += 1;
    }
    eprintln!(
        "fuzz {target}: {runs} inputs in {:?}, seed {s}, no panic",
        start.elapsed()
    );
    assert!(runs > 0);
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn cluster_seeds(f: Format) -> Vec<Vec<u8>> {
    [
        common::Shape {
            nats: 2,
            masters: 3,
            workers: 2,
            extra: vec![(0, 1), (3, 0)],
            lbs: 2,
            with_vpn: true,
        },
        common::Shape {
            nats: 1,
            masters: 0,
            workers: 0,
            extra: vec![],
            lbs: 0,
            with_vpn: false,
        },
    ]
    .iter()
    .map(|s| {
        common::build(s)
            .to_string_as(f)
            .expect("serializes")
            .into_bytes()
    })
    .collect()
}

#[test]
fn fuzz_toml_loader() {
    fuzz("toml", &cluster_seeds(Format::Toml), |b| {
        if let Err(e) = Cluster::from_str_as(&text(b), Format::Toml) {
            let m = e.to_string();
            assert!(!m.is_empty());
            assert!(
                flatcar_topology::text::is_clean(&m),
                "control character in {m:?}"
            );
        }
    });
}

#[test]
fn fuzz_json_loader() {
    fuzz("json", &cluster_seeds(Format::Json), |b| {
        if let Err(e) = Cluster::from_str_as(&text(b), Format::Json) {
            let m = e.to_string();
            assert!(!m.is_empty());
            assert!(
                flatcar_topology::text::is_clean(&m),
                "control character in {m:?}"
            );
        }
    });
}

/// The error formatter: no input makes a message hold a control character
/// or grow with the input.
#[test]
fn fuzz_error_formatter() {
    use flatcar_topology::problem::{Element, Problem};
    use flatcar_topology::text::{clean, is_clean, shown};
    let seeds: Vec<Vec<u8>> = ["lb1", "a\nb", "\u{1b}[2J", "\u{202e}x", "é\u{0}"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    fuzz("formatter", &seeds, |b| {
        let t = text(b);
        let p = Problem::InvalidName {
            element: Element::Vm(t.clone()),
            name: t.clone(),
            reason: flatcar_topology::NameError::Empty,
        };
        let r = Problem::Rule {
            element: Element::Disk {
                vm: t.clone(),
                disk: t.clone(),
            },
            rule: t.clone(),
        };
        for m in [shown(&t), clean(&t, 80), p.to_string(), r.to_string()] {
            assert!(is_clean(&m) && !m.contains('\n'), "{m:?}");
            assert!(m.chars().count() < 1_000, "{} chars", m.chars().count());
        }
        for m in [
            Name::new(t.clone()).err().map(|e| e.to_string()),
            DomainName::new(t.clone()).err().map(|e| e.to_string()),
            SshKey::new(t.clone()).err().map(|e| e.to_string()),
            t.parse::<MacAddr>().err().map(|e| e.to_string()),
            flatcar_topology::ImageRef::new(t.clone())
                .err()
                .map(|e| e.to_string()),
        ]
        .into_iter()
        .flatten()
        {
            assert!(is_clean(&m) && !m.contains('\n'), "{m:?}");
        }
    });
}

#[test]
fn fuzz_small_parsers() {
    let seeds: Vec<Vec<u8>> = [
        "192.168.0.10",
        "10.17.4.0/24",
        "master1",
        "microcloud.home.arpa",
        "2379-2380",
        "52:54:00:12:34:56",
        "role:master",
        "vm:lb1",
        "vpn.example.org:51820",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA admin@x",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz("small", &seeds, |b| {
        let s = text(b);
        let _ = parse_ipv4(&s);
        let _ = parse_net4(&s);
        if let Ok(n) = Name::new(s.clone()) {
            assert!(n
                .as_str()
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'));
        }
        let _ = DomainName::new(s.clone());
        let _ = s.parse::<PortRange>();
        let _ = s.parse::<MacAddr>();
        let _ = s.parse::<Endpoint>();
        let _ = s.parse::<DialAddr>();
        if let Ok(k) = SshKey::new(s.clone()) {
            assert!(!k.as_str().contains('\n'));
        }
    });
}
