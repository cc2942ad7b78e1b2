//! PostgreSQL for a flatcar-microcloud, as a function of the model: every VM
//! with [`Role::Database`] runs a digest-pinned PostgreSQL container from an
//! enabled systemd unit, keeps its data on its own data disk (formatted and
//! mounted by Ignition), gets a generated superuser password as a 0600
//! secret, and a `pg_hba.conf` that admits exactly the networks whose flows
//! reach the database port.
//!
//! ```
//! use flatcar_topology::{net4, Cluster, GiB, HostBuilder, Proto, Role};
//! let mut c = Cluster::builder("demo", HostBuilder::new("kvm1"));
//! let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(40));
//! c.vm("db1", |v| v.role(Role::Database).data_disk("pgdata", GiB(20)).nic(&lan, 14));
//! c.vm("app1", |v| v.role(Role::Worker).nic(&lan, 21));
//! c.allow(Role::Worker, Role::Database, Proto::Tcp, &[5432]);
//! c.dns("demo.home.arpa", &[std::net::Ipv4Addr::new(198, 18, 250, 53)]); // an upstream resolver for first boot
//! c.ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNBE0yGR9doLSjjPtPCkgpn6fWfiNVJ44xnctKvgyUU admin");
//! let cluster = c.build().expect("valid");
//! let hba = flatcar_db::pg_hba(&cluster);
//! assert!(hba.contains("host all all 198.18.0.21/32 scram-sha-256"), "{hba}");
//! ```
#![deny(missing_docs)]

mod error;
mod postgres;

pub use error::Error;
#[doc(no_inline)]
pub use flatcar_topology::Role;
pub use postgres::{
    data_disk, pg_hba, unit, Postgres, DATA_SUBDIR, HBA_FILE, PASSWORD_FILE, PASSWORD_SECRET,
    POSTGRES_IMAGE, POSTGRES_PORT, POSTGRES_UID,
};
