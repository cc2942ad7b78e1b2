//! K3s for a flatcar-microcloud: HA servers with embedded etcd, agents, the
//! storage node, Traefik and Longhorn — generated from the model.
//!
//! - The first master (model order) runs `cluster-init`; every other node
//!   joins `https://<API VIP>:6443` through the API VIP on its *own* network
//!   when there is one ([`config::join_vip`]: request and answer then stay
//!   on that network, a symmetric path the host never routes), and its unit
//!   waits until the VIP answers (`/ping`), so boot order cannot deadlock:
//!   master1 up → load balancers route the VIP to it → the others join.
//! - `tls-san` holds every API VIP and its names; the kubeconfig is 0600; the
//!   token is generated once, stored as a secret, referenced by file.
//! - Traefik's node ports are `cluster.k3s().ingress` — the very ports the
//!   load balancers forward the web VIP to.
//! - Every rendered config is checked against the keys K3s accepts
//!   ([`keys`], [`config::to_checked_yaml`]); an unknown key is an error
//!   naming it.
//!
//! No live K3s runs in the tests: there is no K3s binary or internet here.
//!
//! ```
//! use flatcar_topology::{net4, Cluster, HostBuilder, Role};
//! let mut c = Cluster::builder("demo", HostBuilder::new("kvm1"));
//! let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(40));
//! let lb = c.vm("lb1", |v| v.role(Role::LoadBalancer).nic(&lan, 11));
//! for i in 1..=3u32 {
//!     c.vm(&format!("master{i}"), |v| v.role(Role::Master).nic(&lan, 20 + i));
//! }
//! c.vip("api", &lan, 10, |v| v.tcp(6443, Role::Master, 6443).holders([&lb]));
//! let cluster = c.build().expect("valid");
//! let m1 = flatcar_k3s::config::server(&cluster, cluster.vm("master1").expect("m1")).expect("config");
//! let m2 = flatcar_k3s::config::server(&cluster, cluster.vm("master2").expect("m2")).expect("config");
//! assert_eq!(m1.cluster_init, Some(true));
//! assert_eq!(m2.server.as_deref(), Some("https://198.18.0.10:6443"));
//! ```
#![deny(missing_docs)]

pub mod config;
mod error;
mod install;
pub mod keys;
pub mod manifests;

pub use error::Error;
pub use install::{binary_url, exports, flows, K3sCluster, K3S_SHA512};
