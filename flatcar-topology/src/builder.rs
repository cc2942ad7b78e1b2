//! The builder DSL: typed handles, closures for nested parts, every problem
//! reported at once by [`ClusterBuilder::build`].

use crate::addr::host_of;
use crate::problem::{Element, Problem, Problems};
use crate::DialAddr;
use crate::{
    Admin, BackendPort, Channel, Cluster, Cron, DataDisk, DhcpRange, DomainName, Endpoint, Flannel,
    FlatcarVersion, Flow, GiB, IfName, Ingress, K3s, K3sVersion, MacAddr, MiB, Name, Network,
    NetworkKind, NfsShare, Nic, OsImage, Port, PortRange, Preempt, Proto, Role, Spec, SshKey, Vip,
    VipPort, Vm, Vpn, VpnEndpoint, VpnPeer,
};
use ipnet::Ipv4Net;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};

mod hosts;
pub use hosts::HostRef;

static NEXT_BUILDER: AtomicU64 = AtomicU64::new(1);

/// Collects problems while parts are added.
#[derive(Debug, Default)]
struct Sink(Vec<Problem>);

impl Sink {
    fn name(&mut self, element: Element, s: &str) -> Name {
        match Name::new(s) {
            Ok(n) => n,
            Err(reason) => {
                self.0.push(Problem::InvalidName {
                    element,
                    name: s.to_string(),
                    reason,
                });
                Name::unchecked(s)
            }
        }
    }

    fn value(&mut self, element: Element, field: &'static str, reason: impl ToString) {
        self.0.push(Problem::InvalidValue {
            element,
            field,
            reason: reason.to_string(),
        });
    }

    fn port(&mut self, element: &Element, field: &'static str, n: u16) -> Port {
        Port::new(n).unwrap_or_else(|e| {
            self.value(element.clone(), field, e);
            Port::of(u16::MAX)
        })
    }

    fn host(&mut self, element: &Element, field: &'static str, net: Ipv4Net, n: u32) -> Ipv4Addr {
        host_of(net, n).unwrap_or_else(|e| {
            self.value(element.clone(), field, format!("host {n} of {net}: {e}"));
            net.network()
        })
    }
}

/// Handle to a network added to a builder. Only handles from the same builder
/// are accepted; a VM can only be attached to a network that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetRef {
    builder: u64,
    name: Name,
    cidr: Ipv4Net,
}

impl NetRef {
    /// The network's name.
    pub fn name(&self) -> &Name {
        &self.name
    }
    /// The network's subnet.
    pub fn cidr(&self) -> Ipv4Net {
        self.cidr
    }
}

/// Handle to a VM added to a builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmRef {
    builder: u64,
    name: Name,
}

impl VmRef {
    /// The VM's name.
    pub fn name(&self) -> &Name {
        &self.name
    }
}

/// Handle to a VIP added to a builder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipRef {
    builder: u64,
    name: Name,
}

impl From<&NetRef> for Endpoint {
    fn from(n: &NetRef) -> Self {
        Endpoint::Network(n.name.clone())
    }
}
impl From<&VmRef> for Endpoint {
    fn from(v: &VmRef) -> Self {
        Endpoint::Vm(v.name.clone())
    }
}
impl From<&VipRef> for Endpoint {
    fn from(v: &VipRef) -> Self {
        Endpoint::Vip(v.name.clone())
    }
}

/// Settings of the physical host, given when the builder is created.
#[derive(Debug, Clone)]
pub struct HostBuilder {
    name: String,
    uplink: String,
    pool_name: String,
    pool_path: String,
    at: Option<u32>,
    libvirt: Option<String>,
    capacity: Option<crate::Capacity>,
    accelerator: crate::Accelerator,
}

impl HostBuilder {
    /// A host named `name` with uplink `eno1` and pool `microcloud` at
    /// `/var/lib/libvirt/images/microcloud`.
    pub fn new(name: &str) -> Self {
        HostBuilder {
            name: name.into(),
            uplink: "eno1".into(),
            pool_name: "microcloud".into(),
            pool_path: "/var/lib/libvirt/images/microcloud".into(),
            at: None,
            libvirt: None,
            capacity: None,
            accelerator: crate::Accelerator::Kvm,
        }
    }
    /// The physical uplink enslaved to the LAN bridge.
    pub fn uplink(mut self, ifname: &str) -> Self {
        self.uplink = ifname.into();
        self
    }
    /// The libvirt storage pool for VM disks.
    pub fn pool(mut self, name: &str, path: &str) -> Self {
        self.pool_name = name.into();
        self.pool_path = path.into();
        self
    }
}

/// Settings of one network, inside [`ClusterBuilder::lan`] / [`ClusterBuilder::nat`].
#[derive(Debug)]
pub struct NetworkBuilder {
    element: Element,
    bridge: Option<String>,
    gateway: u32,
    dhcp: Option<(u32, u32)>,
    host_at: Option<u32>,
}

impl NetworkBuilder {
    /// Bridge device on the host.
    pub fn bridge(mut self, name: &str) -> Self {
        self.bridge = Some(name.into());
        self
    }
    /// Gateway as host number (default 1).
    pub fn gateway(mut self, host: u32) -> Self {
        self.gateway = host;
        self
    }
    /// DHCP pool from host number `first` to `last`.
    pub fn dhcp(mut self, first: u32, last: u32) -> Self {
        self.dhcp = Some((first, last));
        self
    }
    /// (LAN only) the physical host's own address, as host number.
    pub fn host_at(mut self, host: u32) -> Self {
        self.host_at = Some(host);
        self
    }
}

/// Settings of one VM, inside [`ClusterBuilder::vm`].
#[derive(Debug)]
pub struct VmBuilder {
    builder: u64,
    element: Element,
    sink: Sink,
    roles: BTreeSet<Role>,
    vcpus: u16,
    memory: MiB,
    root_disk: GiB,
    data_disks: Vec<DataDisk>,
    nics: Vec<Nic>,
    image: Option<OsImage>,
    on: Option<Name>,
}

impl VmBuilder {
    /// Adds a role.
    pub fn role(mut self, role: Role) -> Self {
        self.roles.insert(role);
        self
    }
    /// Adds roles.
    pub fn roles(mut self, roles: impl IntoIterator<Item = Role>) -> Self {
        self.roles.extend(roles);
        self
    }
    /// Virtual CPUs (default 1).
    pub fn vcpus(mut self, n: u16) -> Self {
        self.vcpus = n;
        self
    }
    /// Memory (default 1 GiB).
    pub fn memory(mut self, m: MiB) -> Self {
        self.memory = m;
        self
    }
    /// Root disk size (default 10 GiB).
    pub fn root_disk(mut self, g: GiB) -> Self {
        self.root_disk = g;
        self
    }
    /// Adds a data disk.
    pub fn data_disk(mut self, name: &str, size: GiB) -> Self {
        let el = Element::Disk {
            vm: self.vm_name(),
            disk: name.into(),
        };
        let name = self.sink.name(el, name);
        self.data_disks.push(DataDisk { name, size });
        self
    }
    /// Adds a NIC on `net` at host number `host`; the address is derived.
    pub fn nic(self, net: &NetRef, host: u32) -> Self {
        self.nic_inner(net, host, None)
    }
    /// Adds a NIC with a fixed MAC instead of a derived one.
    pub fn nic_with_mac(self, net: &NetRef, host: u32, mac: MacAddr) -> Self {
        self.nic_inner(net, host, Some(mac))
    }
    /// Boots from another image than the cluster's.
    pub fn image(mut self, image: OsImage) -> Self {
        self.image = Some(image);
        self
    }

    fn vm_name(&self) -> String {
        match &self.element {
            Element::Vm(n) => n.clone(),
            _ => String::new(),
        }
    }

    fn nic_inner(mut self, net: &NetRef, host: u32, mac: Option<MacAddr>) -> Self {
        let el = Element::Nic {
            vm: self.vm_name(),
            index: self.nics.len(),
        };
        if net.builder != self.builder {
            self.sink
                .value(el.clone(), "network", "handle comes from another builder");
        }
        let address = self.sink.host(&el, "address", net.cidr, host);
        self.nics.push(Nic {
            network: net.name.clone(),
            address,
            mac,
        });
        self
    }
}

/// Configures the LAN router's port forwards
/// ([`ClusterBuilder::router`]).
#[derive(Debug)]
pub struct RouterBuilder {
    builder: u64,
    sink: Sink,
    forwards: Vec<crate::PortForward>,
}

impl RouterBuilder {
    /// Forwards TCP `public` on the router's WAN side to `port` on `vip`.
    pub fn forward(mut self, public: u16, vip: &VipRef, port: u16) -> Self {
        if vip.builder != self.builder {
            self.sink
                .value(Element::Router, "vip", "handle comes from another builder");
        }
        let public = self.sink.port(&Element::Router, "public port", public);
        let port = self.sink.port(&Element::Router, "vip port", port);
        self.forwards.push(crate::PortForward {
            public,
            vip: vip.name.clone(),
            port,
        });
        self
    }
}

/// Settings of one VIP, inside [`ClusterBuilder::vip`].
#[derive(Debug)]
pub struct VipBuilder {
    builder: u64,
    element: Element,
    sink: Sink,
    ports: Vec<VipPort>,
    holders: Vec<Name>,
    preempt: Preempt,
}

impl VipBuilder {
    /// Forwards TCP `port` to VMs with `role` on `backend`.
    pub fn tcp(mut self, port: u16, role: Role, backend: u16) -> Self {
        let p = self.sink.port(&self.element, "port", port);
        let b = self.sink.port(&self.element, "backend port", backend);
        self.ports.push(VipPort {
            port: p,
            role,
            backend: BackendPort::Port(b),
        });
        self
    }
    /// Forwards TCP `port` to VMs with `role` on an ingress entry point
    /// declared in the K3s settings.
    pub fn ingress(mut self, port: u16, role: Role, entry: BackendPort) -> Self {
        let p = self.sink.port(&self.element, "port", port);
        self.ports.push(VipPort {
            port: p,
            role,
            backend: entry,
        });
        self
    }
    /// Holder VMs, highest priority first.
    pub fn holders<'a>(mut self, vms: impl IntoIterator<Item = &'a VmRef>) -> Self {
        for vm in vms {
            if vm.builder != self.builder {
                self.sink.value(
                    self.element.clone(),
                    "holders",
                    "handle comes from another builder",
                );
            }
            self.holders.push(vm.name.clone());
        }
        self
    }
    /// Preemption when a higher-priority holder returns.
    pub fn preempt(mut self, p: Preempt) -> Self {
        self.preempt = p;
        self
    }
}

/// Settings of the VPN, inside [`ClusterBuilder::vpn`].
#[derive(Debug)]
pub struct VpnBuilder {
    sink: Sink,
    vpn: Vpn,
}

impl VpnBuilder {
    /// Terminate the VPN on a VM instead of the physical host.
    pub fn on_vm(mut self, vm: &VmRef) -> Self {
        self.vpn.endpoint = VpnEndpoint::Vm(vm.name.clone());
        self
    }
    /// UDP listen port (default 51820).
    pub fn listen(mut self, port: u16) -> Self {
        self.vpn.listen_port = self.sink.port(&Element::Vpn, "listen port", port);
        self
    }
    /// The endpoint's tunnel address, as host number (default 1).
    pub fn address(mut self, host: u32) -> Self {
        self.vpn.address = self
            .sink
            .host(&Element::Vpn, "address", self.vpn.subnet, host);
        self
    }
    /// What peers dial (`vpn.example.org:51820`).
    pub fn public_endpoint(mut self, addr: &str) -> Self {
        match addr.parse::<DialAddr>() {
            Ok(a) => self.vpn.public_endpoint = Some(a),
            Err(e) => self.sink.value(Element::Vpn, "public endpoint", e),
        }
        self
    }
    /// Adds a peer at host number `host` of the VPN subnet.
    pub fn peer(
        mut self,
        name: &str,
        host: u32,
        f: impl FnOnce(PeerBuilder) -> PeerBuilder,
    ) -> Self {
        let el = Element::VpnPeer(name.into());
        let n = self.sink.name(el.clone(), name);
        let address = self.sink.host(&el, "address", self.vpn.subnet, host);
        let p = f(PeerBuilder {
            element: el,
            sink: Sink::default(),
            peer: VpnPeer {
                name: n,
                address,
                endpoint: None,
                keepalive: None,
            },
        });
        self.sink.0.extend(p.sink.0);
        self.vpn.peers.push(p.peer);
        self
    }
}

/// Settings of one VPN peer.
#[derive(Debug)]
pub struct PeerBuilder {
    element: Element,
    sink: Sink,
    peer: VpnPeer,
}

impl PeerBuilder {
    /// Where the peer can be reached (`203.0.113.7:51820`).
    pub fn endpoint(mut self, addr: &str) -> Self {
        match addr.parse::<DialAddr>() {
            Ok(a) => self.peer.endpoint = Some(a),
            Err(e) => self.sink.value(self.element.clone(), "endpoint", e),
        }
        self
    }
    /// Persistent keepalive in seconds.
    pub fn keepalive(mut self, secs: u16) -> Self {
        self.peer.keepalive = Some(secs);
        self
    }
}

/// K3s settings, inside [`ClusterBuilder::k3s`].
#[derive(Debug)]
pub struct K3sBuilder {
    sink: Sink,
    k3s: K3s,
}

impl K3sBuilder {
    /// Pinned K3s release (`v1.31.4+k3s1`).
    pub fn version(mut self, v: &str) -> Self {
        match K3sVersion::new(v) {
            Ok(v) => self.k3s.version = v,
            Err(e) => self.sink.value(Element::K3s("version"), "value", e),
        }
        self
    }
    /// Pod CIDR.
    pub fn cluster_cidr(mut self, c: Ipv4Net) -> Self {
        self.k3s.cluster_cidr = c;
        self
    }
    /// Service CIDR.
    pub fn service_cidr(mut self, c: Ipv4Net) -> Self {
        self.k3s.service_cidr = c;
        self
    }
    /// Ports where Traefik's web and websecure entry points are exposed.
    pub fn ingress(mut self, web: u16, websecure: u16) -> Self {
        let el = Element::K3s("ingress");
        self.k3s.ingress = Ingress {
            web: self.sink.port(&el, "web", web),
            websecure: self.sink.port(&el, "websecure", websecure),
        };
        self
    }
    /// Whether masters run application pods.
    pub fn masters_schedulable(mut self, yes: bool) -> Self {
        self.k3s.masters_schedulable = yes;
        self
    }
    /// Pod network backend.
    pub fn flannel(mut self, f: Flannel) -> Self {
        self.k3s.flannel = f;
        self
    }
    /// etcd snapshot schedule (cron) and retention.
    pub fn etcd_snapshots(mut self, schedule: &str, retention: u32) -> Self {
        match Cron::new(schedule) {
            Ok(c) => self.k3s.etcd_snapshots.schedule = c,
            Err(e) => self
                .sink
                .value(Element::K3s("etcd_snapshots"), "schedule", e),
        }
        self.k3s.etcd_snapshots.retention = retention;
        self
    }
}

/// Builds a [`Cluster`]. Every method records problems instead of failing;
/// [`ClusterBuilder::build`] returns all of them at once.
#[derive(Debug)]
pub struct ClusterBuilder {
    id: u64,
    sink: Sink,
    name: Name,
    host: HostBuilder,
    host_address: Option<(Ipv4Addr, Name)>,
    image: OsImage,
    admin: Admin,
    dns: crate::Dns,
    ntp: crate::Ntp,
    k3s: K3s,
    networks: Vec<Network>,
    vms: Vec<Vm>,
    vips: Vec<Vip>,
    flows: Vec<Flow>,
    vpn: Option<Vpn>,
    shares: Vec<NfsShare>,
    artifacts: crate::artifact::ArtifactSettings,
    failover: crate::failover::Failover,
    router: Option<crate::LanRouter>,
    extra_hosts: Vec<HostBuilder>,
    placement: std::collections::BTreeMap<Name, Name>,
}

impl Cluster {
    /// Starts a cluster named `name` on the physical `host`.
    ///
    /// ```
    /// use flatcar_topology::{net4, Cluster, HostBuilder, Role, MiB, GiB};
    /// let mut c = Cluster::builder("demo", HostBuilder::new("kvm1"));
    /// let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(40));
    /// c.vm("web1", |vm| vm.role(Role::Worker).nic(&lan, 21));
    /// c.dns("demo.home.arpa", &[std::net::Ipv4Addr::new(198, 18, 250, 53)]); // an upstream resolver for first boot
    /// c.ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNBE0yGR9doLSjjPtPCkgpn6fWfiNVJ44xnctKvgyUU admin");
    /// let cluster = c.build().expect("valid");
    /// assert_eq!(cluster.vm("web1").and_then(|v| v.primary_address()).map(|a| a.to_string()),
    ///            Some("198.18.0.21".to_string()));
    /// ```
    pub fn builder(name: &str, host: HostBuilder) -> ClusterBuilder {
        let mut sink = Sink::default();
        let name = sink.name(Element::Cluster, name);
        ClusterBuilder {
            id: NEXT_BUILDER.fetch_add(1, Ordering::Relaxed),
            sink,
            name,
            host,
            host_address: None,
            image: OsImage::default(),
            admin: Admin::default(),
            dns: crate::Dns::default(),
            ntp: crate::Ntp::default(),
            k3s: K3s::default(),
            networks: Vec::new(),
            vms: Vec::new(),
            vips: Vec::new(),
            flows: Vec::new(),
            vpn: None,
            shares: Vec::new(),
            artifacts: crate::artifact::ArtifactSettings::default(),
            failover: crate::failover::Failover::default(),
            router: None,
            extra_hosts: Vec::new(),
            placement: std::collections::BTreeMap::new(),
        }
    }
}

impl ClusterBuilder {
    fn network(
        &mut self,
        kind: NetworkKind,
        name: &str,
        cidr: Ipv4Net,
        f: impl FnOnce(NetworkBuilder) -> NetworkBuilder,
    ) -> NetRef {
        let element = Element::Network(name.into());
        let n = self.sink.name(element.clone(), name);
        let b = f(NetworkBuilder {
            element,
            bridge: None,
            gateway: 1,
            dhcp: None,
            host_at: None,
        });
        let el = b.element.clone();
        let gateway = self.sink.host(&el, "gateway", cidr, b.gateway);
        let bridge_text = b.bridge.clone().unwrap_or_else(|| match kind {
            NetworkKind::Lan => "br0".to_string(),
            NetworkKind::Nat => format!("virbr-{name}"),
        });
        let bridge = IfName::new(bridge_text.clone()).unwrap_or_else(|e| {
            self.sink.value(
                el.clone(),
                "bridge",
                e.to_string() + " (set one with .bridge())",
            );
            IfName::unchecked(bridge_text)
        });
        let dhcp = b.dhcp.map(|(a, z)| DhcpRange {
            start: self.sink.host(&el, "dhcp start", cidr, a),
            end: self.sink.host(&el, "dhcp end", cidr, z),
        });
        match (kind, b.host_at) {
            (NetworkKind::Lan, Some(h)) => {
                let a = self.sink.host(&el, "host address", cidr, h);
                self.host_address = Some((a, n.clone()));
            }
            (NetworkKind::Nat, Some(_)) => self.sink.value(
                el.clone(),
                "host address",
                "only the LAN takes host_at (the host is the gateway of a NAT network)",
            ),
            _ => {}
        }
        self.networks.push(Network {
            name: n.clone(),
            kind,
            cidr,
            gateway,
            bridge,
            dhcp,
        });
        NetRef {
            builder: self.id,
            name: n,
            cidr,
        }
    }

    /// Adds the LAN (bridged to the host's uplink). Call `.host_at(n)` inside
    /// to place the physical host on it.
    pub fn lan(
        &mut self,
        name: &str,
        cidr: Ipv4Net,
        f: impl FnOnce(NetworkBuilder) -> NetworkBuilder,
    ) -> NetRef {
        self.network(NetworkKind::Lan, name, cidr, f)
    }

    /// Adds a libvirt NAT network (the host is its gateway).
    pub fn nat(
        &mut self,
        name: &str,
        cidr: Ipv4Net,
        f: impl FnOnce(NetworkBuilder) -> NetworkBuilder,
    ) -> NetRef {
        self.network(NetworkKind::Nat, name, cidr, f)
    }

    /// Adds a VM.
    pub fn vm(&mut self, name: &str, f: impl FnOnce(VmBuilder) -> VmBuilder) -> VmRef {
        let element = Element::Vm(name.into());
        let n = self.sink.name(element.clone(), name);
        let b = f(VmBuilder {
            builder: self.id,
            element,
            sink: Sink::default(),
            roles: BTreeSet::new(),
            vcpus: 1,
            memory: MiB::gib(1),
            root_disk: GiB(10),
            data_disks: Vec::new(),
            nics: Vec::new(),
            image: None,
            on: None,
        });
        self.sink.0.extend(b.sink.0);
        if let Some(host) = b.on {
            self.placement.insert(n.clone(), host);
        }
        self.vms.push(Vm {
            name: n.clone(),
            roles: b.roles,
            vcpus: b.vcpus,
            memory: b.memory,
            root_disk: b.root_disk,
            data_disks: b.data_disks,
            nics: b.nics,
            image: b.image,
        });
        VmRef {
            builder: self.id,
            name: n,
        }
    }

    /// Adds a VIP on `net` at host number `host`.
    pub fn vip(
        &mut self,
        name: &str,
        net: &NetRef,
        host: u32,
        f: impl FnOnce(VipBuilder) -> VipBuilder,
    ) -> VipRef {
        let element = Element::Vip(name.into());
        let n = self.sink.name(element.clone(), name);
        if net.builder != self.id {
            self.sink.value(
                element.clone(),
                "network",
                "handle comes from another builder",
            );
        }
        let address = self.sink.host(&element, "address", net.cidr, host);
        let b = f(VipBuilder {
            builder: self.id,
            element,
            sink: Sink::default(),
            ports: Vec::new(),
            holders: Vec::new(),
            preempt: Preempt::default(),
        });
        self.sink.0.extend(b.sink.0);
        self.vips.push(Vip {
            name: n.clone(),
            network: net.name.clone(),
            address,
            ports: b.ports,
            holders: b.holders,
            preempt: b.preempt,
        });
        VipRef {
            builder: self.id,
            name: n,
        }
    }

    /// Allows new `proto` connections from `from` to `to` on `ports` (empty: all).
    pub fn allow(
        &mut self,
        from: impl Into<Endpoint>,
        to: impl Into<Endpoint>,
        proto: Proto,
        ports: &[u16],
    ) -> &mut Self {
        let el = Element::Flow(self.flows.len());
        let ports = ports
            .iter()
            .map(|&p| PortRange::one(self.sink.port(&el, "port", p)))
            .collect();
        self.flows.push(Flow {
            from: from.into(),
            to: to.into(),
            proto,
            ports,
            why: None,
        });
        self
    }

    /// Adds a fully specified flow.
    pub fn flow(&mut self, flow: Flow) -> &mut Self {
        self.flows.push(flow);
        self
    }

    /// Adds the WireGuard VPN on `subnet`, terminated on the host by default.
    pub fn vpn(&mut self, subnet: Ipv4Net, f: impl FnOnce(VpnBuilder) -> VpnBuilder) -> &mut Self {
        let mut sink = Sink::default();
        let address = sink.host(&Element::Vpn, "address", subnet, 1);
        let b = f(VpnBuilder {
            sink,
            vpn: Vpn {
                endpoint: VpnEndpoint::Host,
                interface: IfName::unchecked("wg0"),
                listen_port: Port::of(51820),
                subnet,
                address,
                public_endpoint: None,
                peers: Vec::new(),
            },
        });
        self.sink.0.extend(b.sink.0);
        self.vpn = Some(b.vpn);
        self
    }

    /// DNS zone and upstream forwarders.
    pub fn dns(&mut self, domain: &str, forwarders: &[Ipv4Addr]) -> &mut Self {
        match DomainName::new(domain) {
            Ok(d) => self.dns.domain = d,
            Err(reason) => self.sink.0.push(Problem::InvalidName {
                element: Element::Dns,
                name: domain.into(),
                reason,
            }),
        }
        self.dns.forwarders = forwarders.to_vec();
        self
    }

    /// Upstream NTP servers.
    pub fn ntp(&mut self, upstreams: &[&str]) -> &mut Self {
        self.ntp.upstreams.clear();
        for u in upstreams {
            match DomainName::new(*u) {
                Ok(d) => self.ntp.upstreams.push(d),
                Err(e) => self
                    .sink
                    .value(Element::Cluster, "ntp upstream", format!("{u:?} {e}")),
            }
        }
        self
    }

    /// K3s settings.
    pub fn k3s(&mut self, f: impl FnOnce(K3sBuilder) -> K3sBuilder) -> &mut Self {
        let b = f(K3sBuilder {
            sink: Sink::default(),
            k3s: self.k3s.clone(),
        });
        self.sink.0.extend(b.sink.0);
        self.k3s = b.k3s;
        self
    }

    /// Flatcar channel and version of the base image.
    pub fn image(&mut self, channel: Channel, version: &str) -> &mut Self {
        match FlatcarVersion::new(version) {
            Ok(v) => {
                self.image = OsImage {
                    channel,
                    version: v,
                }
            }
            Err(e) => self.sink.value(Element::Cluster, "image version", e),
        }
        self
    }

    /// Authorizes an SSH public key for the admin user on every VM.
    pub fn ssh_key(&mut self, key: &str) -> &mut Self {
        match SshKey::new(key) {
            Ok(k) => self.admin.ssh_keys.push(k),
            Err(e) => self.sink.value(Element::Admin, "ssh key", e),
        }
        self
    }

    /// Exports `/srv/nfs/<name>` from the storage node to `clients`.
    pub fn share(&mut self, name: &str, clients: impl IntoIterator<Item = Endpoint>) -> &mut Self {
        let n = self.sink.name(Element::Share(name.into()), name);
        self.shares.push(NfsShare {
            name: n,
            clients: clients.into_iter().collect(),
        });
        self
    }

    /// Fetches every pinned artifact through `mirror` (air-gapped installs).
    pub fn mirror(&mut self, mirror: crate::artifact::Mirror) -> &mut Self {
        self.artifacts.mirror = mirror;
        self
    }

    /// Replaces the artifact `name` (`k3s`, `keepalived`, `coredns`, …) with
    /// its own source and check: a local build or a private mirror.
    pub fn override_artifact(&mut self, name: &str, with: crate::artifact::Override) -> &mut Self {
        let n = self.sink.name(Element::Cluster, name);
        self.artifacts.overrides.insert(n, with);
        self
    }

    /// The load balancers' failure-detection timing (VRRP adverts, health
    /// checks, Keepalived's realtime budget), for hosts whose guests are
    /// slower than the defaults assume (CPU emulation).
    pub fn failover(&mut self, failover: crate::failover::Failover) -> &mut Self {
        self.failover = failover;
        self
    }

    /// The LAN router (not managed; in the model for its port forwards):
    /// its WAN interface and what it forwards to which VIP.
    ///
    /// ```
    /// use flatcar_topology::{net4, BackendPort, Cluster, Endpoint, HostBuilder, Proto, Role};
    /// let mut c = Cluster::builder("demo", HostBuilder::new("kvm1"));
    /// let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(40));
    /// let lb = c.vm("lb1", |v| v.role(Role::LoadBalancer).nic(&lan, 11));
    /// c.vm("worker1", |v| v.role(Role::Worker).nic(&lan, 21));
    /// let web = c.vip("web", &lan, 14, |v| v.ingress(80, Role::Worker, BackendPort::IngressWeb).holders([&lb]));
    /// c.allow(Endpoint::Internet, &web, Proto::Tcp, &[80]);
    /// c.router("wan", |r| r.forward(8080, &web, 80));
    /// c.dns("demo.home.arpa", &["198.18.200.53".parse().expect("address")]);
    /// c.ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNBE0yGR9doLSjjPtPCkgpn6fWfiNVJ44xnctKvgyUU admin");
    /// let cluster = c.build().expect("valid");
    /// assert_eq!(cluster.router().expect("router").forwards[0].public.get(), 8080);
    /// ```
    pub fn router(
        &mut self,
        wan: &str,
        f: impl FnOnce(RouterBuilder) -> RouterBuilder,
    ) -> &mut Self {
        let wan = IfName::new(wan.to_string()).unwrap_or_else(|e| {
            self.sink.value(Element::Router, "wan interface", &e);
            IfName::unchecked(e.0)
        });
        let b = f(RouterBuilder {
            builder: self.id,
            sink: Sink::default(),
            forwards: Vec::new(),
        });
        self.sink.0.extend(b.sink.0);
        self.router = Some(crate::LanRouter {
            wan,
            forwards: b.forwards,
        });
        self
    }

    /// Validates everything and returns the cluster or every problem found.
    pub fn build(mut self) -> Result<Cluster, Problems> {
        let (address, lan) = match self.host_address.take() {
            Some(x) => x,
            None => {
                self.sink.value(
                    Element::Host,
                    "address",
                    "no LAN with .host_at(n) was declared, so the host has no address",
                );
                (Ipv4Addr::UNSPECIFIED, Name::unchecked("lan"))
            }
        };
        let first = self.host.clone();
        let host = self.resolve_host(&first, Element::Host, Some(address), &lan);
        let extra = std::mem::take(&mut self.extra_hosts);
        let extra_hosts = extra
            .iter()
            .map(|h| self.resolve_host(h, Element::KvmHost(h.name.clone()), None, &lan))
            .collect();
        let spec = Spec {
            name: self.name,
            host,
            image: self.image,
            admin: self.admin,
            dns: self.dns,
            ntp: self.ntp,
            k3s: self.k3s,
            networks: self.networks,
            vms: self.vms,
            vips: self.vips,
            flows: self.flows,
            vpn: self.vpn,
            shares: self.shares,
            artifacts: self.artifacts,
            failover: self.failover,
            router: self.router,
            extra_hosts,
            placement: self.placement,
            fabric: None,
        };
        let mut problems = self.sink.0;
        match Cluster::try_from(spec) {
            Ok(c) if problems.is_empty() => Ok(c),
            Ok(_) => Err(Problems(problems)),
            Err(Problems(more)) => {
                problems.extend(more);
                Err(Problems(problems))
            }
        }
    }
}
