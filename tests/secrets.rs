//! No secret (K3s token, WireGuard private keys, anything a service
//! generates) appears in a non-secret file, in `Debug`/`Display` output of
//! the bundle, plan or composed model, or in an error.

mod support;

use flatcar_microcloud::reference::cluster;
use flatcar_microcloud::{Bundle, BundleSecrets};
use flatcar_topology::provision::{random_hex, Contributions, File, Service};
use flatcar_topology::{Cluster, Error};

/// A probe that uses a secret the way real services do, so the scan is
/// never vacuous even if no registered service generates one.
struct Probe;
impl Service for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn contribute(&self, cluster: &Cluster, out: &mut Contributions<'_>) -> Result<(), Error> {
        let id = flatcar_topology::SecretId::service("probe", "probe-token").expect("valid");
        let s = out.secret(&id, &|| random_hex(24))?;
        out.file(
            &cluster.vms()[0].name,
            File::secret("/etc/probe-token", 0o600, s.clone()),
        );
        out.artifact("probe/token", s.expose().as_bytes().to_vec(), true);
        out.artifact("probe/public.txt", "not secret\n", false);
        Ok(())
    }
}

#[test]
fn secrets_only_in_secret_files() {
    let tmp = support::TempDir::new("secrets");
    let out = tmp.path().join("out");
    let c = cluster().expect("valid");
    let services = flatcar_microcloud::services::all();
    let mut refs: Vec<&dyn Service> = services.iter().map(|s| s.as_ref()).collect();
    refs.push(&Probe);
    let b =
        Bundle::render_with(&c, &refs, &mut BundleSecrets::from_bundle_dir(&out)).expect("renders");
    let secrets: Vec<(String, String)> = b
        .files()
        .iter()
        .filter(|(p, _)| p.starts_with("secrets/"))
        .map(|(p, f)| {
            (
                p.clone(),
                String::from_utf8_lossy(&f.contents).trim().to_string(),
            )
        })
        .collect();
    assert!(
        secrets
            .iter()
            .any(|(p, _)| p == "secrets/probe.probe-token"),
        "{secrets:?}"
    );
    for (name, value) in &secrets {
        assert!(value.len() >= 16, "{name} is too short to scan for");
        let mut found_in_secret = false;
        for (path, f) in b.files() {
            let text = String::from_utf8_lossy(&f.contents);
            // Ignition JSON carries file contents base64-encoded: scan that form too.
            let hit = text.contains(value.as_str())
                || (0..3).any(|k| text.contains(&base64_at(value, k)));
            if f.secret {
                found_in_secret |= hit;
            } else {
                assert!(!hit, "secret {name} leaked into non-secret file {path}");
            }
        }
        assert!(found_in_secret, "{name} is not in any secret file");
        b.write_to(&out).expect("writes");
        let plan = b.plan(&out).expect("plan");
        for shown in [format!("{b:?}"), format!("{plan}"), format!("{plan:?}")] {
            assert!(
                !shown.contains(value.as_str()),
                "secret {name} in Debug/Display output"
            );
        }
    }
}

/// The base64 text a secret produces when it starts `offset` bytes into an
/// encoded file, without the groups it shares with its neighbours.
fn base64_at(s: &str, offset: usize) -> String {
    let padded = format!("{}{s}", "\0".repeat(offset));
    let full = base64_of(&padded);
    let skip = if offset == 0 { 0 } else { 4 };
    full.get(skip..full.len().saturating_sub(4))
        .unwrap_or_default()
        .to_string()
}

fn base64_of(s: &str) -> String {
    // Standard alphabet, as Ignition data URLs use.
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | (x as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    // Only full groups are compared (a secret inside a longer file is
    // encoded at an arbitrary offset), so drop the last partial group.
    out.truncate(out.len() / 4 * 4);
    out
}
