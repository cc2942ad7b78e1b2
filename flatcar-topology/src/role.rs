//! What a VM does.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A role a VM plays; services are placed by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs HAProxy + Keepalived and holds VIPs.
    LoadBalancer,
    /// Serves DNS (CoreDNS) for every node.
    Dns,
    /// Serves time (Chrony) for every node.
    Ntp,
    /// Runs a database (PostgreSQL).
    Database,
    /// K3s server: embedded etcd member and control plane.
    Master,
    /// K3s agent for application workloads.
    Worker,
    /// K3s agent dedicated to storage: NFS exports and Longhorn disks.
    Storage,
}

impl Role {
    /// Every role, in order.
    pub const ALL: [Role; 7] = [
        Role::LoadBalancer,
        Role::Dns,
        Role::Ntp,
        Role::Database,
        Role::Master,
        Role::Worker,
        Role::Storage,
    ];

    /// The role's name as written in files (`load-balancer`, `master`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::LoadBalancer => "load-balancer",
            Role::Dns => "dns",
            Role::Ntp => "ntp",
            Role::Database => "database",
            Role::Master => "master",
            Role::Worker => "worker",
            Role::Storage => "storage",
        }
    }

    /// Whether VMs with this role run a K3s node (server or agent).
    pub fn is_k3s_node(self) -> bool {
        matches!(self, Role::Master | Role::Worker | Role::Storage)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}"))
    }
}
