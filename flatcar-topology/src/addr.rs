//! Compile-time IPv4 addresses and networks.
//!
//! [`ipv4!`](crate::ipv4), [`net4!`](crate::net4) and [`host!`](crate::host)
//! evaluate their argument in a *named* `const` item, so a malformed literal
//! is rejected by `cargo check`, clippy and rust-analyzer, not only by
//! `cargo build`. The public types are [`std::net::Ipv4Addr`] and
//! [`ipnet::Ipv4Net`].
//!
//! ```
//! use flatcar_topology::{host, ipv4, net4};
//! use ipnet::Ipv4Net;
//! use std::net::Ipv4Addr;
//!
//! const K8S: Ipv4Net = net4!("10.17.4.0/24");
//! let master1: Ipv4Addr = host!(K8S, 21);
//! assert_eq!(master1, ipv4!("10.17.4.21"));
//! ```
//!
//! A bad literal is a compile error that quotes it:
//!
//! ```compile_fail
//! let _ = flatcar_topology::ipv4!("192.168.0.256");
//! ```

use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// Why an address or network literal was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// The text is empty or an octet between dots is empty.
    #[error("empty octet")]
    EmptyOctet,
    /// An octet is greater than 255.
    #[error("octet greater than 255")]
    OctetRange,
    /// An octet has a leading zero (ambiguous: octal or decimal).
    #[error("octet with a leading zero")]
    LeadingZero,
    /// A character other than a digit, `.` or `/`.
    #[error("unexpected character")]
    BadChar,
    /// Fewer than four octets.
    #[error("fewer than four octets")]
    TooFewOctets,
    /// More than four octets.
    #[error("more than four octets")]
    TooManyOctets,
    /// The network has no `/prefix`.
    #[error("missing /prefix")]
    MissingPrefix,
    /// The prefix is not a number from 0 to 32.
    #[error("prefix length is not 0..=32")]
    BadPrefix,
    /// The address part has bits set outside the prefix.
    #[error("host bits set (not a network address)")]
    HostBits,
}

/// Why a host number does not name a usable host of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// Host number 0 is the network address.
    #[error("host 0 is the network address")]
    NetworkAddress,
    /// The last host number of the network is its broadcast address.
    #[error("the host number is the broadcast address")]
    Broadcast,
    /// The host number does not fit in the network.
    #[error("the host number is outside the network")]
    Outside,
}

const fn parse_octets(b: &[u8], start: usize, end: usize) -> Result<Ipv4Addr, AddrError> {
    let mut octets = [0u8; 4];
    let mut idx = 0;
    let mut val: u32 = 0;
    let mut digits = 0;
    let mut i = start;
    while i < end {
        let c = b[i];
        if c == b'.' {
            if digits == 0 {
                return Err(AddrError::EmptyOctet);
            }
            if idx == 3 {
                return Err(AddrError::TooManyOctets);
            }
            octets[idx] = val as u8;
            idx += 1;
            val = 0;
            digits = 0;
        } else if c.is_ascii_digit() {
            if digits > 0 && val == 0 {
                return Err(AddrError::LeadingZero);
            }
            val = val * 10 + (c - b'0') as u32;
            digits += 1;
            if val > 255 {
                return Err(AddrError::OctetRange);
            }
        } else {
            return Err(AddrError::BadChar);
        }
        i += 1;
    }
    if digits == 0 {
        return Err(AddrError::EmptyOctet);
    }
    if idx != 3 {
        return Err(AddrError::TooFewOctets);
    }
    octets[3] = val as u8;
    Ok(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
}

/// Parses a dotted-quad IPv4 address in a `const` context.
///
/// Stricter than many parsers: leading zeros (`010`) are rejected.
pub const fn parse_ipv4(s: &str) -> Result<Ipv4Addr, AddrError> {
    let b = s.as_bytes();
    parse_octets(b, 0, b.len())
}

/// The netmask of a prefix length as a `u32` (const; `Ipv4Net::netmask` is not).
pub const fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else if prefix >= 32 {
        u32::MAX
    } else {
        u32::MAX << (32 - prefix)
    }
}

/// Parses `a.b.c.d/n` in a `const` context; host bits must be zero.
pub const fn parse_net4(s: &str) -> Result<Ipv4Net, AddrError> {
    let b = s.as_bytes();
    let mut slash = 0;
    let mut found = false;
    while slash < b.len() {
        if b[slash] == b'/' {
            found = true;
            break;
        }
        slash += 1;
    }
    if !found {
        return Err(AddrError::MissingPrefix);
    }
    let addr = match parse_octets(b, 0, slash) {
        Ok(a) => a,
        Err(e) => return Err(e),
    };
    let mut i = slash + 1;
    if i == b.len() || b.len() - i > 2 {
        return Err(AddrError::BadPrefix);
    }
    let mut prefix: u32 = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            return Err(AddrError::BadPrefix);
        }
        prefix = prefix * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    if prefix > 32 {
        return Err(AddrError::BadPrefix);
    }
    if addr.to_bits() & !mask(prefix as u8) != 0 {
        return Err(AddrError::HostBits);
    }
    match Ipv4Net::new(addr, prefix as u8) {
        Ok(n) => Ok(n),
        Err(_) => Err(AddrError::BadPrefix),
    }
}

/// Number of addresses in a network (2^(32-prefix)), as `u64`.
pub const fn size(net: Ipv4Net) -> u64 {
    1u64 << (32 - net.prefix_len() as u32)
}

/// The `n`-th address of `net` as a usable host address, in a `const` context.
///
/// Host 0 (the network address) and, for prefixes shorter than /31, the last
/// address (broadcast) are rejected.
pub const fn host_of(net: Ipv4Net, n: u32) -> Result<Ipv4Addr, HostError> {
    let size = size(net);
    let p2p = net.prefix_len() >= 31;
    if (n as u64) >= size {
        return Err(HostError::Outside);
    }
    if !p2p && n == 0 {
        return Err(HostError::NetworkAddress);
    }
    if !p2p && (n as u64) == size - 1 {
        return Err(HostError::Broadcast);
    }
    Ok(Ipv4Addr::from_bits(net.addr().to_bits() + n))
}

/// Whether `addr` lies inside `net` (const; `Ipv4Net::contains` is not).
pub const fn contains(net: Ipv4Net, addr: Ipv4Addr) -> bool {
    let m = mask(net.prefix_len());
    addr.to_bits() & m == net.addr().to_bits() & m
}

/// The host number of `addr` inside `net`, if it is inside.
pub const fn host_number(net: Ipv4Net, addr: Ipv4Addr) -> Option<u32> {
    if contains(net, addr) {
        Some(addr.to_bits() - net.addr().to_bits())
    } else {
        None
    }
}

/// Whether two networks share at least one address.
pub fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    contains(a, b.network()) || contains(b, a.network())
}

/// An IPv4 address literal checked at compile time.
///
/// ```
/// let lb1: std::net::Ipv4Addr = flatcar_topology::ipv4!("192.168.0.11");
/// assert_eq!(lb1.octets(), [192, 168, 0, 11]);
/// ```
#[macro_export]
macro_rules! ipv4 {
    ($lit:literal) => {{
        const __FMC_ADDR: ::std::net::Ipv4Addr = match $crate::addr::parse_ipv4($lit) {
            ::core::result::Result::Ok(a) => a,
            ::core::result::Result::Err(e) => {
                $crate::__addr_panic!("invalid IPv4 literal", $lit, e)
            }
        };
        __FMC_ADDR
    }};
}

/// An IPv4 network literal (`a.b.c.d/n`, host bits zero) checked at compile time.
///
/// ```
/// let k8s: ipnet::Ipv4Net = flatcar_topology::net4!("10.17.4.0/24");
/// assert_eq!(k8s.prefix_len(), 24);
/// ```
#[macro_export]
macro_rules! net4 {
    ($lit:literal) => {{
        const __FMC_NET: $crate::__ipnet::Ipv4Net = match $crate::addr::parse_net4($lit) {
            ::core::result::Result::Ok(n) => n,
            ::core::result::Result::Err(e) => {
                $crate::__addr_panic!("invalid IPv4 network literal", $lit, e)
            }
        };
        __FMC_NET
    }};
}

/// Host number `n` of a `const` network, checked at compile time.
///
/// ```
/// use flatcar_topology::{host, net4};
/// const LAN: ipnet::Ipv4Net = net4!("192.168.0.0/24");
/// assert_eq!(host!(LAN, 40).to_string(), "192.168.0.40");
/// ```
///
/// ```compile_fail
/// use flatcar_topology::{host, net4};
/// const LAN: ipnet::Ipv4Net = net4!("192.168.0.0/24");
/// let _ = host!(LAN, 255); // broadcast
/// ```
#[macro_export]
macro_rules! host {
    ($net:expr, $n:literal) => {{
        const __FMC_HOST: ::std::net::Ipv4Addr = match $crate::addr::host_of($net, $n) {
            ::core::result::Result::Ok(a) => a,
            ::core::result::Result::Err($crate::addr::HostError::NetworkAddress) => ::core::panic!(
                "{}",
                ::core::concat!(
                    "host ",
                    ::core::stringify!($n),
                    " of ",
                    ::core::stringify!($net),
                    " is the network address"
                )
            ),
            ::core::result::Result::Err($crate::addr::HostError::Broadcast) => ::core::panic!(
                "{}",
                ::core::concat!(
                    "host ",
                    ::core::stringify!($n),
                    " of ",
                    ::core::stringify!($net),
                    " is the broadcast address"
                )
            ),
            ::core::result::Result::Err($crate::addr::HostError::Outside) => ::core::panic!(
                "{}",
                ::core::concat!(
                    "host ",
                    ::core::stringify!($n),
                    " is outside ",
                    ::core::stringify!($net)
                )
            ),
            #[allow(unreachable_patterns)] // the enum is non_exhaustive outside its crate
            ::core::result::Result::Err(_) => ::core::panic!(
                "{}",
                ::core::concat!(
                    "host ",
                    ::core::stringify!($n),
                    " of ",
                    ::core::stringify!($net),
                    " is invalid"
                )
            ),
        };
        __FMC_HOST
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __addr_panic {
    ($what:literal, $lit:literal, $e:expr) => {
        match $e {
            $crate::addr::AddrError::EmptyOctet => $crate::__addr_panic!(@ $what, $lit, "empty octet"),
            $crate::addr::AddrError::OctetRange => $crate::__addr_panic!(@ $what, $lit, "octet greater than 255"),
            $crate::addr::AddrError::LeadingZero => $crate::__addr_panic!(@ $what, $lit, "octet with a leading zero"),
            $crate::addr::AddrError::BadChar => $crate::__addr_panic!(@ $what, $lit, "unexpected character"),
            $crate::addr::AddrError::TooFewOctets => $crate::__addr_panic!(@ $what, $lit, "fewer than four octets"),
            $crate::addr::AddrError::TooManyOctets => $crate::__addr_panic!(@ $what, $lit, "more than four octets"),
            $crate::addr::AddrError::MissingPrefix => $crate::__addr_panic!(@ $what, $lit, "missing /prefix"),
            $crate::addr::AddrError::BadPrefix => $crate::__addr_panic!(@ $what, $lit, "prefix length is not 0..=32"),
            $crate::addr::AddrError::HostBits => $crate::__addr_panic!(@ $what, $lit, "host bits set (not a network address)"),
            #[allow(unreachable_patterns)] // the enum is non_exhaustive outside its crate
            _ => $crate::__addr_panic!(@ $what, $lit, "invalid"),
        }
    };
    (@ $what:literal, $lit:literal, $why:literal) => {
        ::core::panic!("{}", ::core::concat!($what, " \"", $lit, "\": ", $why))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(parse_ipv4("10.17.4.21"), Ok(Ipv4Addr::new(10, 17, 4, 21)));
        assert_eq!(parse_ipv4("0.0.0.0"), Ok(Ipv4Addr::UNSPECIFIED));
        assert_eq!(parse_ipv4("192.168.0.256"), Err(AddrError::OctetRange));
        assert_eq!(parse_ipv4("192.168.0"), Err(AddrError::TooFewOctets));
        assert_eq!(parse_ipv4("1.2.3.4.5"), Err(AddrError::TooManyOctets));
        assert_eq!(parse_ipv4("1..3.4"), Err(AddrError::EmptyOctet));
        assert_eq!(parse_ipv4("01.2.3.4"), Err(AddrError::LeadingZero));
        assert_eq!(parse_ipv4("1.2.3.x"), Err(AddrError::BadChar));
        assert_eq!(parse_ipv4(""), Err(AddrError::EmptyOctet));
        assert_eq!(parse_net4("10.17.4.0/33"), Err(AddrError::BadPrefix));
        assert_eq!(parse_net4("10.17.4.1/24"), Err(AddrError::HostBits));
        assert_eq!(parse_net4("10.17.4.0"), Err(AddrError::MissingPrefix));
        assert_eq!(parse_net4("10.17.4.0/"), Err(AddrError::BadPrefix));
        assert_eq!(parse_net4("0.0.0.0/0").map(|n| n.prefix_len()), Ok(0));
    }

    #[test]
    fn hosts() {
        let n = crate::net4!("10.17.4.0/24");
        assert_eq!(host_of(n, 21), Ok(Ipv4Addr::new(10, 17, 4, 21)));
        assert_eq!(host_of(n, 0), Err(HostError::NetworkAddress));
        assert_eq!(host_of(n, 255), Err(HostError::Broadcast));
        assert_eq!(host_of(n, 256), Err(HostError::Outside));
        let p2p = crate::net4!("198.18.0.0/31");
        assert_eq!(host_of(p2p, 0), Ok(Ipv4Addr::new(198, 18, 0, 0)));
        assert_eq!(host_number(n, Ipv4Addr::new(10, 17, 4, 9)), Some(9));
        assert_eq!(host_number(n, Ipv4Addr::new(10, 17, 5, 9)), None);
        assert!(overlaps(n, crate::net4!("10.17.0.0/16")));
        assert!(!overlaps(n, crate::net4!("10.17.5.0/24")));
    }

    proptest::proptest! {
        #[test]
        fn roundtrip_std(a: u32) {
            let addr = Ipv4Addr::from_bits(a);
            proptest::prop_assert_eq!(parse_ipv4(&addr.to_string()), Ok(addr));
        }

        #[test]
        fn never_panics(s in ".{0,24}") {
            let _ = parse_ipv4(&s);
            let _ = parse_net4(&s);
        }
    }
}

/// Serde for subnets in the document form: written `a.b.c.d/n`, read with
/// [`parse_net4`], so a leading zero (`010.17.3.0/24`) or host bits
/// (`10.17.3.1/24`) are an invalid value naming the field, never a subnet
/// silently written as-is. Use with `#[serde(with = "crate::addr::subnet")]`.
pub mod subnet {
    use ipnet::Ipv4Net;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `a.b.c.d/n`.
    pub fn serialize<S: Serializer>(net: &Ipv4Net, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(net)
    }

    /// Reads a subnet, strictly.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv4Net, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_net4(&s).map_err(|e| {
            serde::de::Error::custom(crate::text::invalid_value(&crate::text::shown(&s), &e))
        })
    }
}
