//! The LAN's router: not managed by the cloud, but part of the model — the
//! public ports it forwards (DNAT) to the VIPs. The bundle carries them as a
//! table for the user's router and as an nftables ruleset for a Linux or
//! OpenWrt router.

use crate::{IfName, Name, Port};
use serde::{Deserialize, Serialize};

/// One port forward: TCP `public` on the router's WAN side to `port` on
/// VIP `vip` (the source address stays the client's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortForward {
    /// Port on the router's public address.
    pub public: Port,
    /// The VIP it forwards to (on the LAN).
    pub vip: Name,
    /// Port on the VIP.
    pub port: Port,
}

/// The LAN router and its port forwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanRouter {
    /// The router's WAN (internet-side) interface, as its nftables ruleset
    /// names it (`wan` on OpenWrt).
    pub wan: IfName,
    /// Port forwards, in declaration order.
    #[serde(default)]
    pub forwards: Vec<PortForward>,
}
