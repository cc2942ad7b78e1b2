//! K3s cluster settings that other parts of the model depend on.

use crate::{Endpoint, Name, Port};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Why a K3s version or cron schedule was rejected (the text is shown
/// escaped and shortened).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum K3sSettingError {
    /// Not `vMAJOR.MINOR.PATCH+k3sN`.
    #[error("{0} is not a K3s version like v1.31.4+k3s1")]
    Version(String),
    /// Not a five-field cron expression of `0-9 * / , -`.
    #[error("{0} is not a five-field cron schedule")]
    Cron(String),
    /// A cron field holds a value outside its range.
    #[error("cron field {field} ({range}) has {value} in {text}")]
    CronRange {
        /// The field (`minute`, `hour`, `day of month`, `month`, `day of week`).
        field: &'static str,
        /// Its range, e.g. `0-59`.
        range: &'static str,
        /// The value outside it (or a zero step).
        value: String,
        /// The schedule, shown escaped.
        text: String,
    },
}

crate::validated_string! {
    /// A K3s release (`v1.31.4+k3s1`).
    pub struct K3sVersion;
    error = K3sSettingError;
    validate = k3s_version;
}

fn k3s_version(s: &str) -> Result<(), K3sSettingError> {
    let ok = (|| {
        let rest = s.strip_prefix('v')?;
        let (ver, k3s) = rest.split_once("+k3s")?;
        let parts: Vec<&str> = ver.split('.').collect();
        let num = |p: &str| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit());
        (parts.len() == 3 && parts.iter().all(|p| num(p)) && num(k3s)).then_some(())
    })()
    .is_some();
    ok.then_some(())
        .ok_or_else(|| K3sSettingError::Version(crate::text::shown(s)))
}

crate::validated_string! {
    /// A five-field cron schedule (`0 */6 * * *`) whose every value is inside
    /// its field's range (minute 0–59, hour 0–23, day of month 1–31, month
    /// 1–12, day of week 0–7), as K3s' cron parser requires.
    pub struct Cron;
    error = K3sSettingError;
    validate = cron;
}

/// The five cron fields: name, lowest and highest value.
const CRON_FIELDS: [(&str, u32, u32, &str); 5] = [
    ("minute", 0, 59, "0-59"),
    ("hour", 0, 23, "0-23"),
    ("day of month", 1, 31, "1-31"),
    ("month", 1, 12, "1-12"),
    ("day of week", 0, 7, "0-7"),
];

fn cron(s: &str) -> Result<(), K3sSettingError> {
    let fields: Vec<&str> = s.split(' ').collect();
    let chars_ok = fields.len() == 5
        && fields.iter().all(|f| {
            !f.is_empty()
                && f.len() <= 64
                && f.bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'*' | b'/' | b',' | b'-'))
        });
    if !chars_ok {
        return Err(K3sSettingError::Cron(crate::text::shown(s)));
    }
    for (f, (field, lo, hi, range)) in fields.iter().zip(CRON_FIELDS) {
        let bad = |value: &str| K3sSettingError::CronRange {
            field,
            range,
            value: crate::text::escaped(value, 16),
            text: crate::text::shown(s),
        };
        for item in f.split(',') {
            let (span, step) = match item.split_once('/') {
                Some((span, step)) => (span, Some(step)),
                None => (item, None),
            };
            if let Some(step) = step {
                match step.parse::<u32>() {
                    Ok(n) if n >= 1 && n <= hi.max(1) => {}
                    _ => return Err(bad(item)),
                }
            }
            if span == "*" {
                continue;
            }
            let (a, b) = span.split_once('-').unwrap_or((span, span));
            let num = |t: &str| t.parse::<u32>().ok().filter(|n| (lo..=hi).contains(n));
            match (num(a), num(b)) {
                (Some(x), Some(y)) if x <= y => {}
                _ => return Err(bad(item)),
            }
        }
    }
    Ok(())
}

/// Ports on every ingress node where Traefik's entry points are exposed
/// (host ports or NodePorts). The single source of truth: the K3s side
/// configures Traefik with them and the load balancers forward to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ingress {
    /// Traefik `web` (HTTP).
    pub web: Port,
    /// Traefik `websecure` (HTTPS).
    pub websecure: Port,
}

/// Pod network backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flannel {
    /// VXLAN, udp/8472.
    Vxlan,
    /// WireGuard, udp/51820–51821.
    WireguardNative,
}

/// etcd snapshot schedule and retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSnapshots {
    /// When to snapshot.
    pub schedule: Cron,
    /// How many to keep.
    pub retention: u32,
}

/// K3s settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct K3s {
    /// Pinned release.
    pub version: K3sVersion,
    /// Pod CIDR; must not overlap any network of the model.
    #[serde(with = "crate::addr::subnet")]
    pub cluster_cidr: Ipv4Net,
    /// Service CIDR; must not overlap any network of the model.
    #[serde(with = "crate::addr::subnet")]
    pub service_cidr: Ipv4Net,
    /// Where Traefik's entry points are exposed.
    pub ingress: Ingress,
    /// Whether masters also run application pods (otherwise tainted).
    #[serde(default)]
    pub masters_schedulable: bool,
    /// Pod network backend.
    #[serde(default = "default_flannel")]
    pub flannel: Flannel,
    /// etcd snapshots.
    pub etcd_snapshots: EtcdSnapshots,
    /// The secret holding the cluster join token: always
    /// [`SecretId::K3sToken`](crate::SecretId::K3sToken), written
    /// `"k3s-token"` (kept so files saved earlier load; any other name is
    /// rejected, since it could only point at another secret).
    #[serde(default)]
    pub token: K3sToken,
}

/// The K3s join token's secret, as written in files: only `"k3s-token"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct K3sToken;

impl K3sToken {
    /// Its secret.
    pub fn id(&self) -> crate::SecretId {
        crate::SecretId::K3sToken
    }
}

impl TryFrom<String> for K3sToken {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s == "k3s-token" {
            Ok(K3sToken)
        } else {
            Err(format!(
                "{}{} is not \"k3s-token\": the join token is its own secret and cannot name another",
                crate::text::INVALID_VALUE,
                crate::text::shown(&s)
            ))
        }
    }
}

impl From<K3sToken> for String {
    fn from(_: K3sToken) -> String {
        "k3s-token".into()
    }
}

fn default_flannel() -> Flannel {
    Flannel::Vxlan
}

impl Default for K3s {
    fn default() -> Self {
        K3s {
            version: K3sVersion::unchecked("v1.36.5+k3s1"),
            cluster_cidr: crate::net4!("10.42.0.0/16"),
            service_cidr: crate::net4!("10.43.0.0/16"),
            ingress: Ingress {
                web: Port::of(30080),
                websecure: Port::of(30443),
            },
            masters_schedulable: false,
            flannel: Flannel::Vxlan,
            etcd_snapshots: EtcdSnapshots {
                schedule: Cron::unchecked("0 */6 * * *"),
                retention: 10,
            },
            token: K3sToken,
        }
    }
}

/// An NFS export on the storage node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NfsShare {
    /// Name; exported as `/srv/nfs/<name>` from the storage node's data disk.
    pub name: Name,
    /// Who may mount it.
    pub clients: Vec<Endpoint>,
}
