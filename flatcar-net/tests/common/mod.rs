//! The small model both test targets use.
#![allow(dead_code)]

use flatcar_topology::{net4, Cluster, Endpoint, HostBuilder, Proto, Role};

/// A small cloud: infra, one load balancer, three masters, a VPN.
pub fn small() -> Cluster {
    let mut c = Cluster::builder("small", HostBuilder::new("kvm1").uplink("eno1"));
    c.dns("small.home.arpa", &["198.18.250.53".parse().expect("ip")]);
    let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| {
        n.bridge("br0").gateway(1).host_at(40)
    });
    let k8s = c.nat("k8s", net4!("198.18.4.0/24"), |n| n.bridge("virbr-k8s"));
    c.vm("infra", |v| v.roles([Role::Dns, Role::Ntp]).nic(&lan, 30));
    let lb1 = c.vm("lb1", |v| {
        v.role(Role::LoadBalancer).nic(&lan, 11).nic(&k8s, 11)
    });
    for (i, m) in ["master1", "master2", "master3"].into_iter().enumerate() {
        c.vm(m, |v| v.role(Role::Master).nic(&k8s, 21 + i as u32));
    }
    let api = c.vip("api", &lan, 10, |v| {
        v.tcp(6443, Role::Master, 6443).holders([&lb1])
    });
    c.vpn(net4!("198.18.9.0/24"), |v| {
        v.listen(51820)
            .address(1)
            .public_endpoint("198.18.0.40:51820")
            .peer("laptop", 3, |p| p.keepalive(25))
    });
    c.allow(Endpoint::Lan, Endpoint::Host, Proto::Tcp, &[22])
        .allow(Endpoint::Vpn, &api, Proto::Tcp, &[6443])
        .allow(&k8s, Endpoint::Internet, Proto::Any, &[]);
    c.build().expect("valid small cloud")
}
