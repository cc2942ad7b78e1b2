//! Generated clouds of any size, for benchmarks and scale tests (included
//! by `benches/scale.rs` and `tests/net_live.rs`; not public API): two load
//! balancers and an infra node on the LAN, three masters, and workers,
//! storage and database VMs spread over `/22` NAT networks.

use flatcar_topology::{
    BackendPort, Cluster, Endpoint, GiB, HostBuilder, Ipv4Net, MiB, Problems, Proto, Role,
};
use std::net::Ipv4Addr;

/// VMs per NAT network (a /22 holds 1022 hosts; DHCP keeps the last 100).
pub const PER_NETWORK: usize = 900;

/// A valid cloud with `n` VMs (at least 6).
pub fn cloud(n: usize) -> Result<Cluster, Problems> {
    let n = n.max(6);
    let mut c = Cluster::builder("scale", HostBuilder::new("kvm1"));
    let lan_net =
        Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 24).map_err(|_| Problems(Vec::new()))?;
    let lan = c.lan("lan", lan_net, |n| n.dhcp(100, 199).host_at(40));
    let rest = n - 3;
    let nets: Vec<_> = (0..rest.div_ceil(PER_NETWORK))
        .map(|i| {
            let cidr = Ipv4Net::new(
                Ipv4Addr::new(10, 64 + (i / 64) as u8, ((i % 64) * 4) as u8, 0),
                22,
            )
            .unwrap_or(lan_net);
            c.nat(&format!("nat{i}"), cidr, |b| {
                b.bridge(&format!("vb-nat{i}")).dhcp(923, 1022)
            })
        })
        .collect();
    let lb1 = c.vm("lb1", |v| {
        v.role(Role::LoadBalancer)
            .memory(MiB(512))
            .nic(&lan, 11)
            .nic(&nets[0], 910)
    });
    let lb2 = c.vm("lb2", |v| {
        v.role(Role::LoadBalancer)
            .memory(MiB(512))
            .nic(&lan, 12)
            .nic(&nets[0], 911)
    });
    c.vm("infra", |v| {
        v.roles([Role::Dns, Role::Ntp])
            .memory(MiB(512))
            .nic(&lan, 30)
    });
    for i in 0..rest {
        let net = &nets[i / PER_NETWORK];
        let host = (i % PER_NETWORK) as u32 + 10;
        let (name, role) = match i {
            0..=2 => (format!("master{}", i + 1), Role::Master),
            _ if i % 50 == 3 => (format!("storage{i}"), Role::Storage),
            _ if i % 50 == 4 => (format!("db{i}"), Role::Database),
            _ => (format!("worker{i}"), Role::Worker),
        };
        c.vm(&name, |v| {
            let v = v
                .role(role)
                .vcpus(2)
                .memory(MiB::gib(4))
                .root_disk(GiB(20))
                .nic(net, host);
            if role == Role::Storage {
                v.data_disk("data", GiB(100))
            } else if role == Role::Database {
                v.data_disk("pgdata", GiB(40))
            } else {
                v
            }
        });
    }
    c.vip("api", &lan, 10, |v| {
        v.tcp(6443, Role::Master, 6443).holders([&lb1, &lb2])
    });
    c.vip("web", &lan, 14, |v| {
        v.ingress(80, Role::Worker, BackendPort::IngressWeb)
            .ingress(443, Role::Worker, BackendPort::IngressWebsecure)
            .holders([&lb1, &lb2])
    });
    c.allow(Endpoint::Lan, Endpoint::Host, Proto::Tcp, &[22]);
    // First boot: the DNS VM forwards to an upstream resolver, and the NAT
    // networks have egress (image pulls, downloads).
    c.dns("microcloud.home.arpa", &[Ipv4Addr::new(198, 18, 250, 53)]);
    for net in &nets {
        c.allow(net, Endpoint::Internet, Proto::Any, &[]);
    }
    c.k3s(|k| {
        k.cluster_cidr("10.42.0.0/16".parse().unwrap_or(lan_net))
            .service_cidr("10.43.0.0/16".parse().unwrap_or(lan_net))
    });
    c.ssh_key(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNBE0yGR9doLSjjPtPCkgpn6fWfiNVJ44xnctKvgyUU admin",
    );
    c.build()
}
