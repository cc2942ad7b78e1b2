//! TCP/UDP ports and port ranges.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::num::NonZeroU16;

/// Why a port or port range was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// Port 0 is not a usable port.
    #[error("port 0 is not a usable port")]
    Zero,
    /// Not a number from 1 to 65535.
    #[error("{0:?} is not a port number 1..=65535")]
    NotANumber(String),
    /// A range whose start is after its end.
    #[error("port range {start}-{end} is reversed")]
    Reversed {
        /// First port.
        start: u16,
        /// Last port.
        end: u16,
    },
}

/// A TCP or UDP port, 1–65535.
///
/// ```
/// use flatcar_topology::Port;
/// const API: Port = Port::of(6443);
/// assert_eq!(API.get(), 6443);
/// assert!(Port::new(0).is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct Port(NonZeroU16);

impl Port {
    /// A port from a number, rejecting 0.
    pub const fn new(n: u16) -> Result<Self, PortError> {
        match NonZeroU16::new(n) {
            Some(p) => Ok(Port(p)),
            None => Err(PortError::Zero),
        }
    }

    /// A port known at compile time; `Port::of(0)` fails to compile in a const.
    pub const fn of(n: u16) -> Self {
        match NonZeroU16::new(n) {
            Some(p) => Port(p),
            None => panic!("port 0 is not a usable port"),
        }
    }

    /// The port number.
    pub const fn get(self) -> u16 {
        self.0.get()
    }
}

impl TryFrom<u16> for Port {
    type Error = PortError;
    fn try_from(n: u16) -> Result<Self, PortError> {
        Port::new(n)
    }
}

impl From<Port> for u16 {
    fn from(p: Port) -> u16 {
        p.get()
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

/// An inclusive range of ports; a single port is a range of one.
/// Written `"2379-2380"` or `"6443"` in files.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "PortRangeRepr", into = "PortRangeRepr")]
pub struct PortRange {
    start: Port,
    end: Port,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum PortRangeRepr {
    One(u16),
    Text(String),
}

impl PortRange {
    /// A range `start..=end`.
    pub fn new(start: Port, end: Port) -> Result<Self, PortError> {
        if start > end {
            return Err(PortError::Reversed {
                start: start.get(),
                end: end.get(),
            });
        }
        Ok(PortRange { start, end })
    }

    /// A single port.
    pub const fn one(p: Port) -> Self {
        PortRange { start: p, end: p }
    }

    /// First port.
    pub fn start(&self) -> Port {
        self.start
    }

    /// Last port.
    pub fn end(&self) -> Port {
        self.end
    }

    /// Whether `p` is inside the range.
    pub fn contains(&self, p: Port) -> bool {
        self.start <= p && p <= self.end
    }
}

impl From<Port> for PortRange {
    fn from(p: Port) -> Self {
        PortRange::one(p)
    }
}

impl std::str::FromStr for PortRange {
    type Err = PortError;
    fn from_str(s: &str) -> Result<Self, PortError> {
        let num = |t: &str| -> Result<Port, PortError> {
            let n: u16 = t
                .trim()
                .parse()
                .map_err(|_| PortError::NotANumber(t.to_string()))?;
            Port::new(n)
        };
        match s.split_once('-') {
            Some((a, b)) => PortRange::new(num(a)?, num(b)?),
            None => Ok(PortRange::one(num(s)?)),
        }
    }
}

impl TryFrom<PortRangeRepr> for PortRange {
    type Error = PortError;
    fn try_from(r: PortRangeRepr) -> Result<Self, PortError> {
        match r {
            PortRangeRepr::One(n) => Ok(PortRange::one(Port::new(n)?)),
            PortRangeRepr::Text(s) => s.parse(),
        }
    }
}

impl From<PortRange> for PortRangeRepr {
    fn from(r: PortRange) -> Self {
        if r.start == r.end {
            PortRangeRepr::One(r.start.get())
        } else {
            PortRangeRepr::Text(r.to_string())
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl fmt::Debug for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(Port::new(0), Err(PortError::Zero));
        assert_eq!(Port::new(65535).map(Port::get), Ok(65535));
        assert_eq!(
            "2379-2380".parse::<PortRange>().map(|r| r.to_string()),
            Ok("2379-2380".into())
        );
        assert!(matches!(
            "2380-2379".parse::<PortRange>(),
            Err(PortError::Reversed { .. })
        ));
        assert!(matches!(
            "65536".parse::<PortRange>(),
            Err(PortError::NotANumber(_))
        ));
        assert_eq!("0".parse::<PortRange>(), Err(PortError::Zero));
        let r: PortRange = "30000-32767".parse().expect("valid");
        assert!(r.contains(Port::of(30080)) && !r.contains(Port::of(80)));
    }
}
