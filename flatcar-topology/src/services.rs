//! DNS and NTP settings shared by every node.

use crate::{DomainName, Name};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// The cluster's DNS zone, served by the VMs with [`crate::Role::Dns`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// Zone for every VM and VIP (RFC 8375 recommends `home.arpa` for home networks).
    pub domain: DomainName,
    /// Upstream resolvers for everything else.
    #[serde(default)]
    pub forwarders: Vec<Ipv4Addr>,
    /// Label of the wildcard that points at the web VIP (`*.apps.<domain>`).
    #[serde(default = "default_apps")]
    pub apps: Name,
}

fn default_apps() -> Name {
    Name::unchecked("apps")
}

impl Default for Dns {
    fn default() -> Self {
        Dns {
            domain: DomainName::unchecked("microcloud.home.arpa"),
            forwarders: Vec::new(),
            apps: default_apps(),
        }
    }
}

/// Time sources: the NTP role VMs sync from `upstreams` and serve every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ntp {
    /// Upstream servers or pools.
    #[serde(default)]
    pub upstreams: Vec<DomainName>,
}

impl Default for Ntp {
    fn default() -> Self {
        Ntp {
            upstreams: ["0.flatcar.pool.ntp.org", "1.flatcar.pool.ntp.org"]
                .into_iter()
                .map(DomainName::unchecked)
                .collect(),
        }
    }
}
