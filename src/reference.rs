//! The reference cloud of the design: one builder chain, parameterised by an
//! address plan so tests can build the *same* cloud on test addresses
//! (198.18.0.0/15) while the generated files for users carry the real ones.

use flatcar_topology::{
    net4, BackendPort, Channel, Cluster, ClusterBuilder, Endpoint, GiB, HostBuilder, Ipv4Net, MiB,
    Problems, Proto, Role,
};
use std::net::Ipv4Addr;

/// The networks and outside addresses a cloud is built on. Host numbers
/// (`.11` for lb1, `.21` for master1, …) are part of the chain, not the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPlan {
    /// The LAN (host bridge).
    pub lan: Ipv4Net,
    /// NAT network "infra".
    pub infra: Ipv4Net,
    /// NAT network "k8s".
    pub k8s: Ipv4Net,
    /// WireGuard tunnel subnet.
    pub vpn: Ipv4Net,
    /// K3s pod CIDR.
    pub cluster_cidr: Ipv4Net,
    /// K3s service CIDR.
    pub service_cidr: Ipv4Net,
    /// Upstream DNS resolvers.
    pub forwarders: Vec<Ipv4Addr>,
    /// Public address of the VPS peer.
    pub vps: Ipv4Addr,
}

impl AddressPlan {
    /// The addresses of the design (192.168.0.0/24 LAN, 10.17.3/4.0/24 NAT).
    pub fn reference() -> Self {
        AddressPlan {
            lan: net4!("192.168.0.0/24"),
            infra: net4!("10.17.3.0/24"),
            k8s: net4!("10.17.4.0/24"),
            vpn: net4!("10.17.9.0/24"),
            cluster_cidr: net4!("10.42.0.0/16"),
            service_cidr: net4!("10.43.0.0/16"),
            forwarders: vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(9, 9, 9, 9)],
            vps: Ipv4Addr::new(203, 0, 113, 7),
        }
    }

    /// The same shape inside 198.18.0.0/15 (RFC 2544 benchmarking space),
    /// the only addresses live tests send packets to.
    pub fn test() -> Self {
        AddressPlan {
            lan: net4!("198.18.0.0/24"),
            infra: net4!("198.18.3.0/24"),
            k8s: net4!("198.18.4.0/24"),
            vpn: net4!("198.18.9.0/24"),
            cluster_cidr: net4!("198.19.0.0/18"),
            service_cidr: net4!("198.19.64.0/18"),
            forwarders: vec![Ipv4Addr::new(198, 18, 250, 53)],
            vps: Ipv4Addr::new(198, 18, 200, 7),
        }
    }
}

/// The admin key of [`cluster`] and [`cluster_with`]: a real ed25519 public
/// key whose private half was discarded when it was made, so the clouds that
/// tests and docs build validate (validation requires an admin key) and
/// nobody can log in with it. Real bundles use [`cluster_for`] with the
/// user's key; the example generates one into `secrets/` when none is given.
pub const PLACEHOLDER_ADMIN_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNBE0yGR9doLSjjPtPCkgpn6fWfiNVJ44xnctKvgyUU placeholder-private-half-discarded";

/// The reference cloud on the design's addresses (with [`PLACEHOLDER_ADMIN_KEY`]).
pub fn cluster() -> Result<Cluster, Problems> {
    cluster_with(&AddressPlan::reference())
}

/// The reference cloud on `plan`'s addresses (with [`PLACEHOLDER_ADMIN_KEY`]).
pub fn cluster_with(plan: &AddressPlan) -> Result<Cluster, Problems> {
    cluster_for(plan, &[PLACEHOLDER_ADMIN_KEY])
}

/// The reference cloud on `plan`'s addresses, with `admin_keys` (public key
/// lines) authorized for the admin user on every VM.
pub fn cluster_for(plan: &AddressPlan, admin_keys: &[&str]) -> Result<Cluster, Problems> {
    builder_for(plan, admin_keys).build()
}

/// The builder chain of [`cluster_for`], not yet built: callers add what
/// only their environment knows (the boot lab overrides the downloaded
/// artifacts with ones it serves itself) and call `build()`.
pub fn builder_for(plan: &AddressPlan, admin_keys: &[&str]) -> ClusterBuilder {
    let mut c = Cluster::builder("microcloud", HostBuilder::new("kvm1").uplink("eno1"));
    for key in admin_keys {
        c.ssh_key(key);
    }
    c.image(Channel::Stable, "4081.2.0")
        .dns("microcloud.home.arpa", &plan.forwarders)
        .ntp(&["0.flatcar.pool.ntp.org", "1.flatcar.pool.ntp.org"])
        .k3s(|k| {
            k.version("v1.36.5+k3s1")
                .cluster_cidr(plan.cluster_cidr)
                .service_cidr(plan.service_cidr)
                .ingress(30080, 30443)
                .masters_schedulable(false)
                .etcd_snapshots("0 */6 * * *", 10)
        });

    // Networks: the LAN on the host bridge, two libvirt NAT networks.
    let lan = c.lan("lan", plan.lan, |n| {
        n.bridge("br0").gateway(1).dhcp(100, 199).host_at(40)
    });
    let infra = c.nat("infra", plan.infra, |n| {
        n.bridge("virbr-infra").dhcp(100, 254)
    });
    let k8s = c.nat("k8s", plan.k8s, |n| n.bridge("virbr-k8s").dhcp(100, 254));

    // Load balancers: on the LAN for the VIPs, on k8s to reach the masters.
    let lb =
        |vm: flatcar_topology::VmBuilder| vm.role(Role::LoadBalancer).vcpus(1).memory(MiB(512));
    let lb1 = c.vm("lb1", |vm| lb(vm).nic(&lan, 11).nic(&k8s, 11));
    let lb2 = c.vm("lb2", |vm| lb(vm).nic(&lan, 12).nic(&k8s, 12));

    c.vm("infra", |vm| {
        vm.roles([Role::Dns, Role::Ntp])
            .vcpus(1)
            .memory(MiB(512))
            .nic(&lan, 30)
    });
    c.vm("postgresql1", |vm| {
        vm.role(Role::Database)
            .vcpus(2)
            .memory(MiB::gib(1))
            .root_disk(GiB(20))
            .data_disk("pgdata", GiB(40))
            .nic(&infra, 14)
    });
    for (i, name) in ["master1", "master2", "master3"].into_iter().enumerate() {
        c.vm(name, |vm| {
            vm.role(Role::Master)
                .vcpus(2)
                .memory(MiB::gib(2))
                .root_disk(GiB(50))
                .nic(&k8s, 21 + i as u32)
        });
    }
    for (i, name) in ["worker1", "worker2", "worker3"].into_iter().enumerate() {
        c.vm(name, |vm| {
            vm.role(Role::Worker)
                .vcpus(3)
                .memory(MiB::gib(8))
                .root_disk(GiB(20))
                .data_disk("longhorn", GiB(40))
                .nic(&k8s, 24 + i as u32)
        });
    }
    c.vm("storage1", |vm| {
        vm.role(Role::Storage)
            .vcpus(2)
            .memory(MiB::gib(4))
            .root_disk(GiB(10))
            .data_disk("data", GiB(80))
            .nic(&k8s, 27)
    });

    // VIPs float between the load balancers.
    let api = c.vip("api", &lan, 10, |v| {
        v.tcp(6443, Role::Master, 6443).holders([&lb1, &lb2])
    });
    let web = c.vip("web", &lan, 14, |v| {
        v.ingress(80, Role::Worker, BackendPort::IngressWeb)
            .ingress(443, Role::Worker, BackendPort::IngressWebsecure)
            .holders([&lb1, &lb2])
    });
    // The same API on the k8s network, held by the same load balancers on
    // their k8s NICs: the nodes join through it, so request and answer stay
    // on the k8s bridge (a symmetric path the host never routes).
    c.vip("api-internal", &k8s, 10, |v| {
        v.tcp(6443, Role::Master, 6443).holders([&lb1, &lb2])
    });

    // VPN on the physical host.
    c.vpn(plan.vpn, |v| {
        v.listen(51820)
            .address(1)
            .public_endpoint("vpn.microcloud.example.org:51820")
            .peer("vps", 2, |p| {
                p.endpoint(&format!("{}:51820", plan.vps)).keepalive(25)
            })
            .peer("laptop", 3, |p| p.keepalive(25))
    });

    // What may talk to what (VIP → backend flows are implied by the VIPs).
    c.allow(Endpoint::Internet, &web, Proto::Tcp, &[80, 443])
        .allow(Endpoint::Lan, &web, Proto::Tcp, &[80, 443])
        .allow(Endpoint::Lan, &api, Proto::Tcp, &[6443])
        .allow(Endpoint::Vpn, &api, Proto::Tcp, &[6443])
        .allow(Endpoint::Lan, Endpoint::Host, Proto::Tcp, &[22])
        .allow(Endpoint::Vpn, Endpoint::Host, Proto::Tcp, &[22])
        .allow(Endpoint::Vpn, Endpoint::Lan, Proto::Any, &[])
        .allow(Endpoint::Vpn, &infra, Proto::Any, &[])
        .allow(Endpoint::Vpn, &k8s, Proto::Any, &[])
        .allow(Endpoint::Lan, &k8s, Proto::Tcp, &[22])
        .allow(Endpoint::Lan, &infra, Proto::Tcp, &[22])
        .allow(&k8s, Role::Dns, Proto::Udp, &[53])
        .allow(&k8s, Role::Dns, Proto::Tcp, &[53])
        .allow(&infra, Role::Dns, Proto::Udp, &[53])
        .allow(&infra, Role::Dns, Proto::Tcp, &[53])
        .allow(&k8s, Role::Ntp, Proto::Udp, &[123])
        .allow(&infra, Role::Ntp, Proto::Udp, &[123])
        .allow(Role::Worker, Role::Database, Proto::Tcp, &[5432])
        .allow(&k8s, Endpoint::Internet, Proto::Any, &[])
        .allow(&infra, Endpoint::Internet, Proto::Any, &[]);

    // The LAN router (not managed) forwards public ports to the web VIP.
    c.router("wan", |r| {
        r.forward(8080, &web, 80).forward(2052, &web, 443)
    });

    // PostgreSQL keeps its data on its own disk; the share takes its dumps.
    c.share("pgbackup", [Endpoint::Role(Role::Database)])
        .share("shared", [Endpoint::Role(Role::Worker)]);

    c
}
