//! Memory and disk sizes.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A memory size in mebibytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MiB(pub u64);

/// A disk size in gibibytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GiB(pub u64);

impl MiB {
    /// `n` GiB expressed in MiB (saturating: an absurd size stays absurd
    /// and validation rejects it, it never wraps to a small one).
    pub const fn gib(n: u64) -> Self {
        MiB(n.saturating_mul(1024))
    }
    /// Size in bytes, or `None` if it does not fit in a `u64` (validation
    /// rejects such a size, naming the VM).
    pub const fn bytes(self) -> Option<u64> {
        self.0.checked_mul(1024 * 1024)
    }
}

impl GiB {
    /// Size in bytes, or `None` if it does not fit in a `u64` (validation
    /// rejects such a size, naming the VM and disk).
    pub const fn bytes(self) -> Option<u64> {
        self.0.checked_mul(1024 * 1024 * 1024)
    }
}

impl fmt::Display for MiB {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1024 && self.0 % 1024 == 0 {
            write!(f, "{} GiB", self.0 / 1024)
        } else {
            write!(f, "{} MiB", self.0)
        }
    }
}

impl fmt::Debug for MiB {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for GiB {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} GiB", self.0)
    }
}

impl fmt::Debug for GiB {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_never_wrap() {
        assert_eq!(MiB(512).bytes(), Some(512 << 20));
        assert_eq!(GiB(50).bytes(), Some(50 << 30));
        assert_eq!(MiB(u64::MAX).bytes(), None);
        assert_eq!(GiB(1 << 34).bytes(), None);
        assert_eq!(GiB((1 << 34) - 1).bytes(), Some(((1 << 34) - 1) << 30));
        assert_eq!(MiB::gib(u64::MAX), MiB(u64::MAX));
    }
}
