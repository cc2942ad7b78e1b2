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
    /// `n` GiB expressed in MiB.
    pub const fn gib(n: u64) -> Self {
        MiB(n * 1024)
    }
    /// Size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0 * 1024 * 1024
    }
}

impl GiB {
    /// Size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0 * 1024 * 1024 * 1024
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
