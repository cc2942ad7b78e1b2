//! Random *valid* topologies on 198.18.0.0/15, for property tests.
#![allow(dead_code)]

use flatcar_topology::{
    BackendPort, Cluster, Endpoint, GiB, HostBuilder, Ipv4Net, MiB, Proto, Role,
};
use proptest::prelude::*;

/// Parameters of a random cloud.
#[derive(Debug, Clone)]
pub struct Shape {
    pub nats: u8,
    pub masters: usize,
    pub workers: usize,
    pub extra: Vec<(u8, u8)>,
    pub lbs: usize,
    pub with_vpn: bool,
}

pub fn shape() -> impl Strategy<Value = Shape> {
    (
        1u8..4,
        prop_oneof![Just(0usize), Just(3), Just(5)],
        0usize..6,
        proptest::collection::vec((0u8..7, 0u8..4), 0..12),
        0usize..3,
        any::<bool>(),
    )
        .prop_map(|(nats, masters, workers, extra, lbs, with_vpn)| Shape {
            nats,
            masters,
            workers,
            extra,
            lbs,
            with_vpn,
        })
}

fn net(i: u8) -> Ipv4Net {
    Ipv4Net::new(std::net::Ipv4Addr::new(198, 18, i, 0), 24).expect("valid")
}

/// Builds the cluster for a shape; always valid by construction.
pub fn build(s: &Shape) -> Cluster {
    let mut c = Cluster::builder("prop", HostBuilder::new("kvm1"));
    let lan = c.lan("lan", net(0), |n| n.dhcp(200, 250).host_at(1).gateway(254));
    let nats: Vec<_> = (0..s.nats)
        .map(|i| c.nat(&format!("nat{i}"), net(10 + i), |n| n.dhcp(200, 250)))
        .collect();
    // An upstream resolver and egress for every NAT network, so first boot
    // never depends on the cloud's own DNS alone (the bring-up graph).
    c.dns(
        "microcloud.home.arpa",
        &[std::net::Ipv4Addr::new(198, 18, 250, 53)],
    );
    for n in &nats {
        c.allow(n, Endpoint::Internet, Proto::Any, &[]);
    }
    let mut next = vec![10u32; nats.len()];
    let mut take = |i: usize| {
        next[i] += 1;
        next[i]
    };
    let mut lbs = Vec::new();
    for i in 0..s.lbs {
        let h = 2 + i as u32;
        let k = take(0);
        lbs.push(c.vm(&format!("lb{i}"), |v| {
            v.role(Role::LoadBalancer)
                .memory(MiB(512))
                .nic(&lan, h)
                .nic(&nats[0], k)
        }));
    }
    for i in 0..s.masters {
        let h = take(0);
        c.vm(&format!("master{i}"), |v| {
            v.role(Role::Master)
                .vcpus(2)
                .memory(MiB::gib(2))
                .root_disk(GiB(30))
                .nic(&nats[0], h)
        });
    }
    for i in 0..s.workers {
        let h = take(0);
        c.vm(&format!("worker{i}"), |v| {
            v.role(Role::Worker)
                .data_disk("longhorn", GiB(5))
                .nic(&nats[0], h)
        });
    }
    for (i, (role, netno)) in s.extra.iter().enumerate() {
        let role = [
            Role::Dns,
            Role::Ntp,
            Role::Database,
            Role::Storage,
            Role::Worker,
            Role::Dns,
            Role::Database,
        ][*role as usize];
        let idx = (*netno as usize) % nats.len();
        let h = take(idx);
        c.vm(&format!("extra{i}"), |v| {
            let v = v.role(role).nic(&nats[idx], h);
            if role == Role::Database {
                v.data_disk("pgdata", GiB(5))
            } else {
                v
            }
        });
    }
    if !lbs.is_empty() {
        if s.masters > 0 {
            c.vip("api", &lan, 10, |v| {
                v.tcp(6443, Role::Master, 6443).holders(lbs.iter())
            });
        }
        if s.workers > 0 {
            c.vip("web", &lan, 14, |v| {
                v.ingress(80, Role::Worker, BackendPort::IngressWeb)
                    .ingress(443, Role::Worker, BackendPort::IngressWebsecure)
                    .holders(lbs.iter())
            });
        }
    }
    if s.with_vpn {
        c.vpn(net(9), |v| {
            v.peer("laptop", 2, |p| p.keepalive(25))
                .peer("vps", 3, |p| p.endpoint("198.18.200.7:51820"))
        });
        c.allow(Endpoint::Vpn, Endpoint::Lan, Proto::Any, &[]);
    }
    c.allow(Endpoint::Lan, Endpoint::Host, Proto::Tcp, &[22]);
    c.k3s(|k| {
        k.cluster_cidr("198.19.0.0/18".parse().expect("net"))
            .service_cidr("198.19.64.0/18".parse().expect("net"))
    });
    c.ssh_key(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNBE0yGR9doLSjjPtPCkgpn6fWfiNVJ44xnctKvgyUU admin",
    );
    c.build()
        .unwrap_or_else(|p| panic!("generator made an invalid cluster for {s:?}:\n{p}"))
}
