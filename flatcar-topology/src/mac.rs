//! MAC addresses, derived deterministically from the cluster and VM names.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Why a MAC address text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a MAC address like 52:54:00:12:34:56")]
pub struct MacError(pub String);

/// An Ethernet MAC address.
///
/// ```
/// use flatcar_topology::MacAddr;
/// let a = MacAddr::derive("microcloud", "master1", 0);
/// assert_eq!(a, MacAddr::derive("microcloud", "master1", 0)); // stable
/// assert_ne!(a, MacAddr::derive("microcloud", "master2", 0));
/// assert!(a.is_local_unicast());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// A stable MAC for NIC `index` of VM `vm` in cluster `cluster`:
    /// `52:` followed by 40 bits of SHA-256 — locally administered, unicast,
    /// in the same first octet as QEMU's `52:54:00` so it reads as a VM NIC,
    /// and with 2^40 values collisions stay negligible at 10,000 VMs (a
    /// collision is still reported by validation).
    pub fn derive(cluster: &str, vm: &str, index: usize) -> Self {
        let mut h = Sha256::new();
        h.update(b"flatcar-microcloud/mac/v1\0");
        h.update(cluster.as_bytes());
        h.update([0]);
        h.update(vm.as_bytes());
        h.update([0]);
        h.update((index as u64).to_be_bytes());
        let d = h.finalize();
        MacAddr([0x52, d[0], d[1], d[2], d[3], d[4]])
    }

    /// Why no NIC may use this address: `Some("broadcast")`,
    /// `Some("multicast")` (the group bit of the first octet) or
    /// `Some("all zeros")`; `None` for a unicast address.
    ///
    /// ```
    /// use flatcar_topology::MacAddr;
    /// assert_eq!("ff:ff:ff:ff:ff:ff".parse::<MacAddr>().ok().and_then(|m| m.unusable()), Some("broadcast"));
    /// assert_eq!("01:00:5e:00:00:01".parse::<MacAddr>().ok().and_then(|m| m.unusable()), Some("multicast"));
    /// assert_eq!("52:54:00:00:00:01".parse::<MacAddr>().ok().and_then(|m| m.unusable()), None);
    /// ```
    pub fn unusable(&self) -> Option<&'static str> {
        if self.0 == [0xff; 6] {
            Some("broadcast")
        } else if self.0[0] & 1 == 1 {
            Some("multicast")
        } else if self.0 == [0; 6] {
            Some("all zeros")
        } else {
            None
        }
    }

    /// Whether the address is locally administered and unicast.
    pub fn is_local_unicast(&self) -> bool {
        self.0[0] & 0b11 == 0b10
    }
}

impl std::str::FromStr for MacAddr {
    type Err = MacError;
    fn from_str(s: &str) -> Result<Self, MacError> {
        let err = || MacError(crate::text::shown(s));
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for o in out.iter_mut() {
            let p = parts.next().ok_or_else(err)?;
            if p.len() != 2 {
                return Err(err());
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(out))
    }
}

impl TryFrom<String> for MacAddr {
    type Error = MacError;
    fn try_from(s: String) -> Result<Self, MacError> {
        s.parse()
    }
}

impl From<MacAddr> for String {
    fn from(m: MacAddr) -> String {
        m.to_string()
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_roundtrip() {
        let m = MacAddr::derive("c", "v", 1);
        assert_eq!(m.to_string().parse::<MacAddr>(), Ok(m));
        assert!("52:54:00:00:00".parse::<MacAddr>().is_err());
        assert!("52:54:00:00:00:zz".parse::<MacAddr>().is_err());
        assert!("52:54:00:00:00:00:00".parse::<MacAddr>().is_err());
        assert_ne!(MacAddr::derive("c", "v", 0), MacAddr::derive("c", "v", 1));
        assert_ne!(MacAddr::derive("c1", "v", 0), MacAddr::derive("c", "1v", 0));
    }
}
