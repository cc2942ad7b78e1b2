//! Network services of a flatcar-microcloud, as functions of the model:
//! the host's nftables ruleset ([`ruleset`]), WireGuard ([`wireguard`]),
//! CoreDNS ([`dns`]) and Chrony ([`chrony`]).
//!
//! ```
//! use flatcar_topology::{net4, Cluster, Endpoint, HostBuilder, Proto, Role};
//! let mut c = Cluster::builder("demo", HostBuilder::new("kvm1"));
//! let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(40));
//! c.vm("infra", |v| v.roles([Role::Dns, Role::Ntp]).nic(&lan, 30));
//! c.allow(Endpoint::Lan, Endpoint::Host, Proto::Tcp, &[22]);
//! let cluster = c.build().expect("valid");
//! let rules = flatcar_net::ruleset::render(&cluster, &[]);
//! assert!(rules.contains("policy drop"));
//! assert!(rules.contains("ip saddr { 198.18.0.0/24 } tcp dport { 22 } accept"));
//! let zone = flatcar_net::dns::zone(&cluster, &[]);
//! assert!(zone.contains("infra                    IN A 198.18.0.30"));
//! ```
#![deny(missing_docs)]

pub mod chrony;
pub mod dns;
mod error;
mod flatcar;
pub mod ruleset;
pub mod wireguard;

pub use error::Error;
pub use flatcar::{NetServices, COREDNS_IMAGE};
