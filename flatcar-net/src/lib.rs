//! Network services of a flatcar-microcloud, as functions of the model:
//! the physical host's nftables ruleset ([`ruleset`]: typed, rendered as
//! `nft -f` text and as `nft -j` JSON through the `nftables` crate, applied
//! atomically to tables of its own), WireGuard keys and configs
//! ([`wireguard`]), CoreDNS Corefile and zone files ([`coredns`]) and
//! Chrony server/client configs ([`chrony`]). [`NetServices`] contributes
//! all of it to the VMs and the bundle through the provisioning model.
//!
//! ```
//! use flatcar_topology::{net4, Cluster, Endpoint, HostBuilder, Proto, Role};
//! use flatcar_net::ruleset::{self, Family, Policy};
//! let mut c = Cluster::builder("demo", HostBuilder::new("kvm1"));
//! let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(40));
//! c.vm("infra", |v| v.roles([Role::Dns, Role::Ntp]).nic(&lan, 30));
//! c.allow(Endpoint::Lan, Endpoint::Host, Proto::Tcp, &[22]);
//! c.dns("demo.home.arpa", &[std::net::Ipv4Addr::new(198, 18, 250, 53)]); // an upstream resolver for first boot
//! c.ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNBE0yGR9doLSjjPtPCkgpn6fWfiNVJ44xnctKvgyUU admin");
//! let cluster = c.build().expect("valid");
//!
//! // The host ruleset: a typed value, rendered as text and as JSON.
//! let rules = ruleset::build(&cluster, &[]);
//! assert_eq!(rules.tables[0].chains[0].policy, Policy::Drop);
//! let text = rules.to_text();
//! assert!(text.contains("ip saddr 198.18.0.0/24 tcp dport 22 accept"));
//! assert!(!text.contains("flush ruleset"));
//! assert!(rules.to_json().expect("json").contains("\"nftables\""));
//! assert_eq!(rules.rules(Family::Bridge, "forward").len(), 0);
//!
//! // DNS: every VM in the zone file, serial derived from the content.
//! let zone = flatcar_net::coredns::zone(&cluster, &[]);
//! assert!(zone.contains("infra                    IN A 198.18.0.30"));
//! assert_eq!(zone, flatcar_net::coredns::zone(&cluster, &[]));
//!
//! // Chrony: clients point at the NTP role.
//! assert!(flatcar_net::chrony::client(&cluster).contains("server 198.18.0.30 iburst"));
//! ```
#![deny(missing_docs)]

pub mod chrony;
pub mod coredns;
mod error;
pub mod fabric;
mod flatcar;
pub mod router;
pub mod ruleset;
pub mod wireguard;

pub use error::Error;
pub use flatcar::{
    chrony_sysext, coredns_image, NetServices, CHRONY_CONF, CHRONY_VERSION, COREDNS_DIGEST,
    COREDNS_IMAGE, COREDNS_VERSION,
};

/// A secret's name as shown in errors: `"wg-peer-laptop" (secrets/wg-peer-laptop in a bundle)`.
pub(crate) fn shown_id(id: &flatcar_topology::SecretId) -> String {
    let f = id.file_name();
    format!(
        "{} (secrets/{f} in a bundle)",
        flatcar_topology::text::shown(&f)
    )
}
