//! Network services of a flatcar-microcloud: nftables firewall, WireGuard,
//! CoreDNS and Chrony, as functions of the topology model.
//!
//! ```
//! assert_eq!(flatcar_net::CRATE, "flatcar-net");
//! ```
#![deny(missing_docs)]

/// This crate's name.
pub const CRATE: &str = "flatcar-net";
