//! The crate's error type.

/// Everything that can go wrong rendering load-balancer configs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The VM is not a load balancer of the cluster.
    #[error("vm {0:?} does not exist or holds no VIP")]
    NotAHolder(String),
    /// No VIP network NIC on the holder.
    #[error("vm {vm:?} has no NIC on network {network:?} of vip {vip:?}")]
    NoNic {
        /// The VM.
        vm: String,
        /// The VIP.
        vip: String,
        /// Its network.
        network: String,
    },
    /// Two VIPs could not get distinct virtual router ids.
    #[error("more than 255 VIPs on one cluster: no virtual_router_id left for {0:?}")]
    RouterIds(String),
    /// More holders than distinct VRRP priorities (the model's validation
    /// rejects this first; see `flatcar_topology::MAX_VIP_HOLDERS`).
    #[error("vip {vip:?} has {holders} holders; VRRP priorities are distinct for at most {max}", max = flatcar_topology::MAX_VIP_HOLDERS)]
    TooManyHolders {
        /// The VIP.
        vip: String,
        /// How many holders it has.
        holders: usize,
    },
}
