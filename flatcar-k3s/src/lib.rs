//! K3s for a flatcar-microcloud: HA servers, agents, storage node, Traefik.
//!
//! ```
//! assert_eq!(flatcar_k3s::CRATE, "flatcar-k3s");
//! ```
#![deny(missing_docs)]

/// This crate's name.
pub const CRATE: &str = "flatcar-k3s";
