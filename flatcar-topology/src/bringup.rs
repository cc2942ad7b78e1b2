//! The first-boot bring-up graph: what each service needs before it can
//! start (a resolver, time, egress to the artifact hosts, a VIP, a peer) and
//! what it provides, derived from the model.
//!
//! A need is met by *any* of its alternatives (systemd-resolved and
//! timesyncd fall through their server lists): an upstream resolver or NTP
//! pool the VM can reach is available from the start; a service on a VM is
//! available once it has started. [`plan`] starts, stage by stage, every
//! step whose needs are met; whatever is left can never start, and each of
//! those steps becomes a problem that names the step and the provider it
//! waits for (a cycle, a VM that resolves through itself, or a need nothing
//! provides).
//!
//! ```
//! use flatcar_topology::{net4, Cluster, HostBuilder, Role};
//! let mut c = Cluster::builder("demo", HostBuilder::new("kvm1"));
//! let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(40));
//! c.dns("demo.home.arpa", &[]); // no upstream resolver: infra's only resolver is itself
//! c.vm("infra", |vm| vm.role(Role::Dns).nic(&lan, 30));
//! c.ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNBE0yGR9doLSjjPtPCkgpn6fWfiNVJ44xnctKvgyUU admin");
//! let text = c.build().unwrap_err().to_string();
//! assert!(text.contains("infra resolves through itself before CoreDNS runs"), "{text}");
//! ```

use crate::{DomainName, Endpoint, Name, NetworkKind, Role, Spec, Vm};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

/// A daemon that runs at first boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Daemon {
    /// Keepalived: holds the VIPs.
    Keepalived,
    /// HAProxy: forwards VIP ports to the backends.
    Haproxy,
    /// CoreDNS (a container: pulled at first boot).
    CoreDns,
    /// Chrony serving time (a container: pulled at first boot).
    Chrony,
    /// PostgreSQL (a container: pulled at first boot).
    Postgres,
    /// The kernel NFS server.
    Nfs,
    /// A K3s server (embedded etcd + control plane).
    K3sServer,
    /// A K3s agent.
    K3sAgent,
}

impl Daemon {
    /// The name as printed (`coredns`, `k3s-server`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Daemon::Keepalived => "keepalived",
            Daemon::Haproxy => "haproxy",
            Daemon::CoreDns => "coredns",
            Daemon::Chrony => "chrony",
            Daemon::Postgres => "postgres",
            Daemon::Nfs => "nfs",
            Daemon::K3sServer => "k3s-server",
            Daemon::K3sAgent => "k3s-agent",
        }
    }

    /// The name used in prose ("before CoreDNS runs").
    pub fn title(self) -> &'static str {
        match self {
            Daemon::Keepalived => "Keepalived",
            Daemon::Haproxy => "HAProxy",
            Daemon::CoreDns => "CoreDNS",
            Daemon::Chrony => "Chrony",
            Daemon::Postgres => "PostgreSQL",
            Daemon::Nfs => "the NFS server",
            Daemon::K3sServer => "the K3s server",
            Daemon::K3sAgent => "the K3s agent",
        }
    }
}

impl fmt::Display for Daemon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a step needs before it can start.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Need {
    /// A DNS resolver that answers (image pulls, pool names, downloads).
    Resolver,
    /// A time source (TLS certificates, etcd).
    Time,
    /// A route to the artifact hosts on the internet (registries, GitHub).
    Egress,
    /// The VIP answering (keepalived on a holder).
    Vip(Name),
    /// Another step running first.
    Peer(Name, Daemon),
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Resolver => f.write_str("a resolver"),
            Need::Time => f.write_str("a time source"),
            Need::Egress => f.write_str("egress to the artifact hosts"),
            Need::Vip(v) => write!(f, "vip {v}"),
            Need::Peer(vm, d) => write!(f, "{vm}/{d}"),
        }
    }
}

/// Something a step provides once it runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Provide {
    /// DNS for the VMs that list this VM as a resolver.
    Resolver,
    /// Time for the VMs that list this VM as a time source.
    Time,
    /// A VIP.
    Vip(Name),
    /// The Kubernetes API (and etcd membership for servers).
    Api,
    /// A database.
    Database,
    /// NFS shares.
    Nfs,
}

/// One daemon on one VM in the bring-up graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The VM.
    pub vm: Name,
    /// The daemon.
    pub daemon: Daemon,
    /// What it needs first.
    pub needs: Vec<Need>,
    /// What it provides.
    pub provides: Vec<Provide>,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.vm, self.daemon)
    }
}

/// A resolver in a VM's `DNS=` list, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolver {
    /// A VM with role DNS (CoreDNS), at its primary address.
    Vm(Name, Ipv4Addr),
    /// An upstream resolver the VM reaches directly (no cloud service needed).
    Upstream(Ipv4Addr),
}

impl Resolver {
    /// The address written to `DNS=`.
    pub fn address(&self) -> Ipv4Addr {
        match self {
            Resolver::Vm(_, a) | Resolver::Upstream(a) => *a,
        }
    }
}

/// A time source of a VM, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeSource {
    /// A VM with role NTP (Chrony), at its primary address.
    Vm(Name, Ipv4Addr),
    /// An upstream pool (needs a resolver and egress).
    Pool(DomainName),
}

impl fmt::Display for TimeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeSource::Vm(_, a) => write!(f, "{a}"),
            TimeSource::Pool(p) => write!(f, "{p}"),
        }
    }
}

/// Whether `endpoint` covers `vm`.
fn covers(endpoint: &Endpoint, vm: &Vm, spec: &Spec) -> bool {
    match endpoint {
        Endpoint::Network(n) => vm.nics.iter().any(|nic| nic.network == *n),
        Endpoint::Lan => vm.nics.iter().any(|nic| {
            spec.networks
                .iter()
                .any(|n| n.name == nic.network && n.kind == NetworkKind::Lan)
        }),
        Endpoint::Role(r) => vm.has(*r),
        Endpoint::Vm(n) => vm.name == *n,
        _ => false,
    }
}

/// Whether `vm` reaches the internet at first boot: a NIC on the LAN (whose
/// gateway is the user's router) or a declared flow from the VM to the internet.
pub fn has_egress(spec: &Spec, vm: &Vm) -> bool {
    let on_lan = vm.nics.iter().any(|nic| {
        spec.networks
            .iter()
            .any(|n| n.name == nic.network && n.kind == NetworkKind::Lan)
    });
    on_lan
        || spec
            .flows
            .iter()
            .any(|f| f.to == Endpoint::Internet && covers(&f.from, vm, spec))
}

/// Whether `vm` reaches `address` without the internet (it is on one of its networks).
fn on_link(spec: &Spec, vm: &Vm, address: Ipv4Addr) -> bool {
    vm.nics.iter().any(|nic| {
        spec.networks
            .iter()
            .any(|n| n.name == nic.network && crate::addr::contains(n.cidr, address))
    })
}

/// The resolvers of `vm` in `DNS=` order: the other DNS VMs, then the VM
/// itself when it serves DNS, then the upstream resolvers (`dns.forwarders`)
/// it can reach — so every VM falls through to a resolver that works before
/// the cloud's own DNS is up.
pub fn resolvers(spec: &Spec, vm: &Vm) -> Vec<Resolver> {
    let dns_vm = |v: &Vm| v.primary_address().map(|a| Resolver::Vm(v.name.clone(), a));
    let mut out: Vec<Resolver> = spec
        .vms
        .iter()
        .filter(|v| v.has(Role::Dns) && v.name != vm.name)
        .filter_map(dns_vm)
        .collect();
    if vm.has(Role::Dns) {
        out.extend(dns_vm(vm));
    }
    let egress = has_egress(spec, vm);
    out.extend(
        spec.dns
            .forwarders
            .iter()
            .filter(|a| egress || on_link(spec, vm, **a))
            .map(|a| Resolver::Upstream(*a)),
    );
    out
}

/// The time sources of `vm` in order: the NTP VMs (not itself), then the
/// upstream pools when the VM has egress.
pub fn time_sources(spec: &Spec, vm: &Vm) -> Vec<TimeSource> {
    let mut out: Vec<TimeSource> = spec
        .vms
        .iter()
        .filter(|v| v.has(Role::Ntp) && v.name != vm.name)
        .filter_map(|v| {
            v.primary_address()
                .map(|a| TimeSource::Vm(v.name.clone(), a))
        })
        .collect();
    if has_egress(spec, vm) {
        out.extend(spec.ntp.upstreams.iter().cloned().map(TimeSource::Pool));
    }
    out
}

/// Every step of `spec`, in model order (VMs, then their roles).
pub fn steps(spec: &Spec) -> Vec<Step> {
    let api = spec
        .vips
        .iter()
        .find(|v| v.ports.iter().any(|p| p.role == Role::Master));
    let first_master = spec.vms.iter().find(|v| v.has(Role::Master));
    let fetch = || vec![Need::Resolver, Need::Egress];
    let mut out = Vec::new();
    for vm in &spec.vms {
        let mut step = |daemon, needs: Vec<Need>, provides: Vec<Provide>| {
            out.push(Step {
                vm: vm.name.clone(),
                daemon,
                needs,
                provides,
            })
        };
        if vm.has(Role::LoadBalancer) {
            let held: Vec<Provide> = spec
                .vips
                .iter()
                .filter(|v| v.holders.contains(&vm.name))
                .map(|v| Provide::Vip(v.name.clone()))
                .collect();
            step(Daemon::Keepalived, Vec::new(), held);
            step(Daemon::Haproxy, Vec::new(), Vec::new());
        }
        if vm.has(Role::Dns) {
            step(Daemon::CoreDns, fetch(), vec![Provide::Resolver]);
        }
        if vm.has(Role::Ntp) {
            step(Daemon::Chrony, fetch(), vec![Provide::Time]);
        }
        if vm.has(Role::Database) {
            step(Daemon::Postgres, fetch(), vec![Provide::Database]);
        }
        if vm.has(Role::Storage) && !spec.shares.is_empty() {
            step(Daemon::Nfs, Vec::new(), vec![Provide::Nfs]);
        }
        let joins = |needs: &mut Vec<Need>| {
            if let Some(api) = api {
                needs.push(Need::Vip(api.name.clone()));
            }
            if let Some(m) = first_master {
                needs.push(Need::Peer(m.name.clone(), Daemon::K3sServer));
            }
        };
        let mut needs = vec![Need::Resolver, Need::Egress, Need::Time];
        if vm.has(Role::Master) {
            if first_master.is_some_and(|m| m.name != vm.name) {
                joins(&mut needs);
            }
            step(Daemon::K3sServer, needs, vec![Provide::Api]);
        } else if vm.has(Role::Worker) || vm.has(Role::Storage) {
            joins(&mut needs);
            step(Daemon::K3sAgent, needs, Vec::new());
        }
    }
    out
}

/// The bring-up order: stages of steps; every step of a stage can start
/// once the stages before it run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BringUp {
    /// Stages in order.
    pub stages: Vec<Vec<Step>>,
}

impl fmt::Display for BringUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, stage) in self.stages.iter().enumerate() {
            let names: Vec<String> = stage.iter().map(Step::to_string).collect();
            writeln!(f, "  {}. {}", i + 1, names.join(", "))?;
        }
        Ok(())
    }
}

/// A step that can never start: which need, and the provider(s) it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The VM.
    pub vm: Name,
    /// The daemon that cannot start.
    pub daemon: Daemon,
    /// The unmet need.
    pub need: Need,
    /// Why, naming the other end.
    pub why: String,
}

/// Per VM: the providers of each kind, by VM name.
struct Index<'a> {
    spec: &'a Spec,
    vms: BTreeMap<&'a str, &'a Vm>,
}

/// A way to meet a need: available from the start, or once a step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Alt {
    External,
    Step(Name, Daemon),
}

impl Index<'_> {
    fn alternatives(&self, vm: &Vm, need: &Need) -> Vec<Alt> {
        match need {
            Need::Resolver => resolvers(self.spec, vm)
                .into_iter()
                .map(|r| match r {
                    Resolver::Vm(n, _) => Alt::Step(n, Daemon::CoreDns),
                    Resolver::Upstream(_) => Alt::External,
                })
                .collect(),
            Need::Time => time_sources(self.spec, vm)
                .into_iter()
                .map(|t| match t {
                    TimeSource::Vm(n, _) => Alt::Step(n, Daemon::Chrony),
                    // A pool needs a resolver: checked with the Resolver need.
                    TimeSource::Pool(_) => Alt::External,
                })
                .collect(),
            Need::Egress => {
                if has_egress(self.spec, vm) {
                    vec![Alt::External]
                } else {
                    Vec::new()
                }
            }
            Need::Vip(v) => self
                .spec
                .vips
                .iter()
                .filter(|x| x.name == *v)
                .flat_map(|x| x.holders.iter())
                .filter(|h| self.vms.contains_key(h.as_str()))
                .map(|h| Alt::Step(h.clone(), Daemon::Keepalived))
                .collect(),
            Need::Peer(n, d) => vec![Alt::Step(n.clone(), *d)],
        }
    }
}

/// Orders every step of `spec` into stages, or returns every step that can
/// never start.
pub fn plan(spec: &Spec) -> Result<BringUp, Vec<Blocked>> {
    let index = Index {
        spec,
        vms: spec.vms.iter().map(|v| (v.name.as_str(), v)).collect(),
    };
    let all = steps(spec);
    // Alternatives per step and need, computed once.
    let alts: Vec<Vec<(Need, Vec<Alt>)>> = all
        .iter()
        .map(|s| {
            let vm = index.vms.get(s.vm.as_str()).copied();
            s.needs
                .iter()
                .map(|n| {
                    let a = vm.map(|vm| index.alternatives(vm, n)).unwrap_or_default();
                    (n.clone(), a)
                })
                .collect()
        })
        .collect();
    let mut started: BTreeSet<(Name, Daemon)> = BTreeSet::new();
    let mut left: Vec<usize> = (0..all.len()).collect();
    let mut stages = Vec::new();
    loop {
        let met = |alt: &Alt| match alt {
            Alt::External => true,
            Alt::Step(n, d) => started.contains(&(n.clone(), *d)),
        };
        let (ready, rest): (Vec<usize>, Vec<usize>) = left
            .iter()
            .partition(|&&i| alts[i].iter().all(|(_, a)| a.iter().any(met)));
        if ready.is_empty() {
            left = rest;
            break;
        }
        for &i in &ready {
            started.insert((all[i].vm.clone(), all[i].daemon));
        }
        stages.push(ready.iter().map(|&i| all[i].clone()).collect());
        left = rest;
    }
    if left.is_empty() {
        return Ok(BringUp { stages });
    }
    let mut blocked = Vec::new();
    for i in left {
        let step = &all[i];
        let Some((need, alts)) = alts[i].iter().find(|(_, a)| {
            !a.iter().any(|alt| match alt {
                Alt::External => true,
                Alt::Step(n, d) => started.contains(&(n.clone(), *d)),
            })
        }) else {
            continue;
        };
        let others: Vec<String> = alts
            .iter()
            .filter_map(|a| match a {
                Alt::Step(n, d) => Some(format!("{n}/{d}")),
                Alt::External => None,
            })
            .collect();
        let selfish = alts
            .iter()
            .all(|a| matches!(a, Alt::Step(n, _) if *n == step.vm));
        let why = if alts.is_empty() {
            match need {
                Need::Egress => format!(
                    "but no flow lets {} reach the internet and it is not on the LAN",
                    step.vm
                ),
                Need::Resolver => format!(
                    "but {} has no resolver: add a DNS VM or an upstream resolver it can reach",
                    step.vm
                ),
                Need::Time => format!(
                    "but {} has no time source: add an NTP VM or egress to the NTP pools",
                    step.vm
                ),
                _ => "but nothing in the model provides it".to_string(),
            }
        } else if selfish {
            let provider = match alts.first() {
                Some(Alt::Step(_, d)) => d.title(),
                _ => "it",
            };
            let verb = match need {
                Need::Resolver => "resolves through",
                Need::Time => "takes its time from",
                _ => "waits for",
            };
            format!(
                "but its only source is {vm} itself: {vm} {verb} itself before {provider} runs",
                vm = step.vm
            )
        } else {
            format!(
                "from {}, which never starts: it is blocked too",
                others.join(" or ")
            )
        };
        blocked.push(Blocked {
            vm: step.vm.clone(),
            daemon: step.daemon,
            need: need.clone(),
            why,
        });
    }
    Err(blocked)
}

#[cfg(test)]
mod tests {
    use super::Daemon;

    #[test]
    fn names() {
        assert_eq!(Daemon::CoreDns.to_string(), "coredns");
        assert_eq!(Daemon::CoreDns.title(), "CoreDNS");
    }
}
