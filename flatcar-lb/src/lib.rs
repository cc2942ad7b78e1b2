//! Load balancing for a flatcar-microcloud: HAProxy and Keepalived for every VIP.
//!
//! ```
//! assert_eq!(flatcar_lb::CRATE, "flatcar-lb");
//! ```
#![deny(missing_docs)]

/// This crate's name.
pub const CRATE: &str = "flatcar-lb";
