//! One passing and one failing case per validation rule; every failing case
//! checks the problem names the offending element. Plus: all problems are
//! reported at once.

use flatcar_topology::{
    net4, BackendPort, Cluster, Element, Endpoint, HostBuilder, MacAddr, Name, Problem, Problems,
    Proto, Role, Spec,
};

fn builder() -> flatcar_topology::ClusterBuilder {
    let mut c = Cluster::builder("t", HostBuilder::new("kvm1"));
    let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| {
        n.dhcp(100, 199).host_at(40)
    });
    let k8s = c.nat("k8s", net4!("198.18.4.0/24"), |n| n.dhcp(100, 254));
    let lb1 = c.vm("lb1", |v| {
        v.role(Role::LoadBalancer).nic(&lan, 11).nic(&k8s, 11)
    });
    let lb2 = c.vm("lb2", |v| {
        v.role(Role::LoadBalancer).nic(&lan, 12).nic(&k8s, 12)
    });
    for i in 1..=3u32 {
        c.vm(&format!("master{i}"), |v| {
            v.role(Role::Master).nic(&k8s, 20 + i)
        });
    }
    c.vm("worker1", |v| v.role(Role::Worker).nic(&k8s, 24));
    c.vip("api", &lan, 10, |v| {
        v.tcp(6443, Role::Master, 6443).holders([&lb1, &lb2])
    });
    c.vip("web", &lan, 14, |v| {
        v.ingress(80, Role::Worker, BackendPort::IngressWeb)
            .holders([&lb1, &lb2])
    });
    c.vpn(net4!("198.18.9.0/24"), |v| {
        v.peer("laptop", 2, |p| p.keepalive(25))
    });
    c.allow(Endpoint::Vpn, Endpoint::Lan, Proto::Any, &[]);
    c.allow(&k8s, Endpoint::Internet, Proto::Any, &[]);
    // An upstream resolver the nodes reach through their internet flow
    // (the bring-up graph needs one for K3s at first boot).
    c.dns("t.home.arpa", &["198.18.200.53".parse().expect("address")]);
    c.ssh_key(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNBE0yGR9doLSjjPtPCkgpn6fWfiNVJ44xnctKvgyUU admin",
    );
    c
}

fn spec() -> Spec {
    builder().build().expect("base is valid").into_spec()
}

fn problems(s: Spec) -> Problems {
    Cluster::try_from(s).expect_err("must be invalid")
}

fn n(s: &str) -> Name {
    Name::new(s).expect("name")
}

fn has(p: &Problems, f: impl Fn(&Problem) -> bool) {
    assert!(p.any(f), "unexpected problems:\n{p}");
}

#[test]
fn base_is_valid() {
    assert!(Cluster::try_from(spec()).is_ok());
}

#[test]
fn duplicate_vm_name() {
    let mut s = spec();
    let dup = s.vms[0].clone();
    s.vms.push(dup);
    has(
        &problems(s),
        |p| matches!(p, Problem::DuplicateName { name, .. } if name == "lb1"),
    );
}

#[test]
fn vm_and_vip_names_collide_in_dns() {
    let mut s = spec();
    s.vips[0].name = n("worker1");
    has(
        &problems(s),
        |p| matches!(p, Problem::DuplicateName { second: Element::Vip(v), .. } if v == "worker1"),
    );
}

#[test]
fn duplicate_address() {
    let mut s = spec();
    s.vms[3].nics[0].address = s.vms[2].nics[0].address;
    let p = problems(s);
    has(
        &p,
        |p| matches!(p, Problem::DuplicateAddress { second: Element::Nic { vm, .. }, .. } if vm == "master2"),
    );
    assert!(
        p.to_string().contains(
            "vm \"master2\" nic 0: address 198.18.4.21 is already used by vm \"master1\" nic 0"
        ),
        "{p}"
    );
}

#[test]
fn duplicate_mac() {
    let mut s = spec();
    let m: MacAddr = "52:54:00:aa:bb:cc".parse().expect("mac");
    s.vms[2].nics[0].mac = Some(m);
    s.vms[3].nics[0].mac = Some(m);
    has(
        &problems(s),
        |p| matches!(p, Problem::DuplicateMac { mac, .. } if mac == "52:54:00:aa:bb:cc"),
    );
}

#[test]
fn address_on_gateway_network_broadcast() {
    for (last, what) in [(1u8, "gateway"), (0, "network"), (255, "broadcast")] {
        let mut s = spec();
        s.vms[2].nics[0].address = std::net::Ipv4Addr::new(198, 18, 4, last);
        has(
            &problems(s),
            |p| matches!(p, Problem::ReservedAddress { what: w, .. } if *w == what),
        );
    }
}

#[test]
fn address_in_dhcp_range() {
    let mut s = spec();
    s.vms[2].nics[0].address = "198.18.4.150".parse().expect("ip");
    has(
        &problems(s),
        |p| matches!(p, Problem::InDhcpRange { element: Element::Nic { vm, .. }, .. } if vm == "master1"),
    );
}

#[test]
fn address_outside_network() {
    let mut s = spec();
    s.vms[2].nics[0].address = "198.18.5.21".parse().expect("ip");
    has(
        &problems(s),
        |p| matches!(p, Problem::OutsideNetwork { network, .. } if network == "k8s"),
    );
}

#[test]
fn vip_outside_network_or_colliding() {
    let mut s = spec();
    s.vips[0].address = "198.18.4.50".parse().expect("ip");
    has(
        &problems(s),
        |p| matches!(p, Problem::OutsideNetwork { element: Element::Vip(v), .. } if v == "api"),
    );
    let mut s = spec();
    s.vips[0].address = "198.18.0.11".parse().expect("ip");
    has(
        &problems(s),
        |p| matches!(p, Problem::DuplicateAddress { second: Element::Vip(v), .. } if v == "api"),
    );
}

#[test]
fn invalid_names_from_builder() {
    for bad in [
        "Master1",
        "web\n1",
        "a\"b",
        "x;y",
        "{}",
        "\u{430}pi",
        &"a".repeat(64),
        "",
    ] {
        let mut c = builder();
        c.vm(bad, |v| v);
        let p = c.build().expect_err("invalid name");
        has(
            &p,
            |p| matches!(p, Problem::InvalidName { element: Element::Vm(v), .. } if v == bad),
        );
        let text = p.to_string();
        assert_eq!(
            text.lines().count(),
            p.0.len() + 1,
            "one problem per line, no raw newline:\n{text}"
        );
    }
}

#[test]
fn etcd_member_count() {
    for keep in [0usize, 3] {
        let mut s = spec();
        if keep == 0 {
            s.vms.retain(|v| !v.has(Role::Master));
            s.vips.retain(|v| v.name.as_str() != "api");
        }
        assert!(Cluster::try_from(s).is_ok(), "{keep} masters is fine");
    }
    for count in [1usize, 2, 4] {
        let mut s = spec();
        let master = s.vms[2].clone();
        s.vms.retain(|v| !v.has(Role::Master));
        for i in 0..count {
            let mut m = master.clone();
            m.name = n(&format!("m{i}"));
            m.nics[0].address = std::net::Ipv4Addr::new(198, 18, 4, 30 + i as u8);
            s.vms.push(m);
        }
        has(
            &problems(s),
            |p| matches!(p, Problem::EtcdCount { count: c } if *c == count),
        );
    }
}

#[test]
fn vip_port_role_without_vm() {
    let mut s = spec();
    s.vms.retain(|v| !v.has(Role::Worker));
    has(&problems(s), |p| {
        matches!(
            p,
            Problem::RoleWithoutVm {
                role: Role::Worker,
                port: 80,
                ..
            }
        )
    });
}

#[test]
fn vm_without_nic() {
    let mut s = spec();
    s.vms[5].nics.clear();
    has(
        &problems(s),
        |p| matches!(p, Problem::NoNic { element: Element::Vm(v) } if v == "worker1"),
    );
}

#[test]
fn overlapping_networks_and_k3s_cidrs() {
    let mut s = spec();
    s.networks[1].cidr = net4!("198.18.0.0/23");
    has(&problems(s), |p| matches!(p, Problem::Overlap { .. }));
    let mut s = spec();
    s.k3s.cluster_cidr = net4!("198.18.4.0/22");
    has(&problems(s), |p| {
        matches!(
            p,
            Problem::Overlap {
                second: Element::K3s("cluster_cidr"),
                ..
            } | Problem::Overlap {
                first: Element::K3s("cluster_cidr"),
                ..
            }
        )
    });
    let mut s = spec();
    s.vpn.as_mut().expect("vpn").subnet = net4!("198.18.0.128/25");
    has(&problems(s), |p| matches!(p, Problem::Overlap { .. }));
}

#[test]
fn holders_must_be_load_balancers_on_the_network() {
    let mut s = spec();
    s.vips[0].holders.push(n("master1"));
    let p = problems(s);
    has(
        &p,
        |p| matches!(p, Problem::BadHolder { vm, why, .. } if vm == "master1" && why.contains("load-balancer")),
    );
    has(
        &p,
        |p| matches!(p, Problem::BadHolder { vm, why, .. } if vm == "master1" && why.contains("NIC")),
    );
    let mut s = spec();
    s.vips[0].holders.push(n("ghost"));
    has(
        &problems(s),
        |p| matches!(p, Problem::UnknownVm { vm, .. } if vm == "ghost"),
    );
}

#[test]
fn unknown_network_reference() {
    let mut s = spec();
    s.vms[2].nics[0].network = n("nowhere");
    has(
        &problems(s),
        |p| matches!(p, Problem::UnknownNetwork { network, .. } if network == "nowhere"),
    );
}

#[test]
fn an_address_endpoint_is_one_machine_outside_the_model() {
    let mut s = spec();
    let vm = s.vms[0].clone();
    let taken = vm.nics[0].address;
    let first = s.flows.len();
    for to in [
        Endpoint::Addr(taken),
        Endpoint::Addr(std::net::Ipv4Addr::UNSPECIFIED),
        Endpoint::Addr(std::net::Ipv4Addr::new(192, 168, 0, 5)),
    ] {
        s.flows.push(flatcar_topology::Flow {
            from: Endpoint::Lan,
            to,
            proto: Proto::Tcp,
            ports: vec!["8080".parse().expect("port")],
            why: None,
        });
    }
    let p = problems(s);
    let about = |i: usize| -> Vec<String> {
        p.0.iter()
            .filter(
                |x| matches!(x, Problem::Rule { element: Element::Flow(j), .. } if *j == first + i),
            )
            .map(|x| x.to_string())
            .collect()
    };
    let own = about(0);
    assert!(
        own.iter().any(|m| m.contains(&format!(
            "addr:{taken} is vm:{}'s address: write vm:{}",
            vm.name, vm.name
        ))),
        "{own:?}"
    );
    assert!(
        about(1)
            .iter()
            .any(|m| m.contains("addr:0.0.0.0 is not the address of one machine")),
        "{:?}",
        about(1)
    );
    assert!(about(2).is_empty(), "{:?}", about(2));
}

#[test]
fn flows_refer_to_existing_things() {
    let mut s = spec();
    let i = s.flows.len();
    s.flows.push(flatcar_topology::Flow {
        from: Endpoint::Vm(n("ghost")),
        to: Endpoint::Vip(n("nope")),
        proto: Proto::Icmp,
        ports: vec!["22".parse().expect("port")],
        why: None,
    });
    let p = problems(s);
    has(&p, |p| {
        matches!(
            p,
            Problem::UnknownVm {
                element: Element::Flow(j),
                ..
            } if *j == i
        )
    });
    has(&p, |p| {
        matches!(
            p,
            Problem::UnknownVip {
                element: Element::Flow(j),
                ..
            } if *j == i
        )
    });
    has(&p, |p| {
        matches!(
            p,
            Problem::Rule {
                element: Element::Flow(j),
                ..
            } if *j == i
        )
    });
}

#[test]
fn reports_everything_at_once() {
    let mut c = builder();
    let ghost = {
        let mut other = Cluster::builder("o", HostBuilder::new("h"));
        other.lan("x", net4!("198.18.50.0/24"), |n| n.host_at(1))
    };
    c.vm("bad name", |v| v.nic(&ghost, 5));
    c.vm("dup", |v| v.role(Role::Worker).vcpus(0));
    c.vm("dup", |v| v.role(Role::Worker));
    c.k3s(|k| k.version("1.31").etcd_snapshots("every hour", 0));
    let p = c.build().expect_err("invalid");
    let text = p.to_string();
    for needle in [
        "name \"bad name\"",
        "another builder",
        "vcpus 0",
        "has no NIC",
        "is already used",
        "not a K3s version",
        "cron",
        "retention 0",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(p.0.len() >= 8, "{text}");
}

/// An API VIP on the NAT network (the nodes' join path) must be held by load
/// balancers with a NIC there.
#[test]
fn vip_on_a_nat_network_needs_holders_with_a_nic_there() {
    let mut c = Cluster::builder("t", HostBuilder::new("kvm1"));
    let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(40));
    let k8s = c.nat("k8s", net4!("198.18.4.0/24"), |n| n);
    let lb1 = c.vm("lb1", |v| {
        v.role(Role::LoadBalancer).nic(&lan, 11).nic(&k8s, 11)
    });
    let lb2 = c.vm("lb2", |v| v.role(Role::LoadBalancer).nic(&lan, 12));
    for i in 1..=3u32 {
        c.vm(&format!("master{i}"), |v| {
            v.role(Role::Master).nic(&k8s, 20 + i)
        });
    }
    c.vip("api-internal", &k8s, 10, |v| {
        v.tcp(6443, Role::Master, 6443).holders([&lb1, &lb2])
    });
    let p = c.build().expect_err("lb2 has no k8s NIC");
    has(&p, |p| {
        matches!(p, Problem::BadHolder { element: Element::Vip(v), vm, why }
            if v == "api-internal" && vm == "lb2" && why.contains("NIC"))
    });
    assert!(!p.any(|p| matches!(p, Problem::BadHolder { vm, .. } if vm == "lb1")));
}

fn with_router(
    f: impl FnOnce(
        &mut flatcar_topology::ClusterBuilder,
        &flatcar_topology::VipRef,
        &flatcar_topology::VipRef,
    ),
) -> Result<Cluster, Problems> {
    let mut c = Cluster::builder("t", HostBuilder::new("kvm1"));
    let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(40));
    let k8s = c.nat("k8s", net4!("198.18.4.0/24"), |n| n);
    let lb = c.vm("lb1", |v| {
        v.role(Role::LoadBalancer).nic(&lan, 11).nic(&k8s, 11)
    });
    c.vm("worker1", |v| v.role(Role::Worker).nic(&k8s, 24));
    let web = c.vip("web", &lan, 14, |v| {
        v.ingress(80, Role::Worker, BackendPort::IngressWeb)
            .ingress(443, Role::Worker, BackendPort::IngressWebsecure)
            .holders([&lb])
    });
    let inner = c.vip("web-k8s", &k8s, 14, |v| {
        v.ingress(80, Role::Worker, BackendPort::IngressWeb)
            .holders([&lb])
    });
    c.allow(Endpoint::Internet, &web, Proto::Tcp, &[80, 443]);
    c.allow(&k8s, Endpoint::Internet, Proto::Any, &[]);
    c.dns("t.home.arpa", &["198.18.200.53".parse().expect("address")]);
    c.ssh_key(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNBE0yGR9doLSjjPtPCkgpn6fWfiNVJ44xnctKvgyUU admin",
    );
    f(&mut c, &web, &inner);
    c.build()
}

#[test]
fn router_port_forwards_are_checked() {
    let ok = with_router(|c, web, _| {
        c.router("wan", |r| r.forward(8080, web, 80).forward(2052, web, 443));
    })
    .expect("valid");
    assert_eq!(ok.router().expect("router").forwards.len(), 2);
    // The document form keeps them.
    let json = ok
        .to_string_as(flatcar_topology::Format::Json)
        .expect("json");
    assert_eq!(
        Cluster::from_str_as(&json, flatcar_topology::Format::Json).expect("loads"),
        ok
    );

    let router_problem = |p: &Problems, needle: &str| {
        has(
            p,
            |p| matches!(p, Problem::Rule { element: Element::Router, rule } if rule.contains(needle)),
        )
    };
    let p = with_router(|c, web, _| {
        c.router("wan", |r| r.forward(8080, web, 80).forward(8080, web, 443));
    })
    .expect_err("public port twice");
    router_problem(&p, "8080 is forwarded twice");
    let p = with_router(|c, web, _| {
        c.router("wan", |r| r.forward(8080, web, 8443));
    })
    .expect_err("port the VIP does not serve");
    router_problem(&p, "does not serve");
    let p = with_router(|c, _, inner| {
        c.router("wan", |r| r.forward(8080, inner, 80));
    })
    .expect_err("VIP not on the LAN");
    router_problem(&p, "not on a LAN");
    router_problem(&p, "no flow opens it");
    let p = with_router(|c, web, _| {
        c.router("bad name!", |r| r.forward(8080, web, 80));
    })
    .expect_err("bad interface name");
    has(&p, |p| {
        matches!(
            p,
            Problem::InvalidValue {
                element: Element::Router,
                ..
            }
        )
    });
    let mut spec = ok.into_spec();
    if let Some(r) = spec.router.as_mut() {
        r.forwards[0].vip = n("ghost");
    }
    has(
        &problems(spec),
        |p| matches!(p, Problem::UnknownVip { element: Element::Router, vip } if vip == "ghost"),
    );
}
