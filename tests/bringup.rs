//! The first-boot bring-up graph of the reference cloud: it has an order,
//! every VM resolves and syncs time before the cloud's own DNS/NTP run, and
//! a model whose infra VM resolves only through itself is rejected.

use flatcar_microcloud::ignition::base;
use flatcar_microcloud::reference::{cluster, cluster_with, AddressPlan};
use flatcar_topology::bringup::{Daemon, Need, Resolver, TimeSource};
use flatcar_topology::problem::Problem;

fn position(order: &flatcar_topology::bringup::BringUp, vm: &str, d: Daemon) -> usize {
    order
        .stages
        .iter()
        .position(|s| s.iter().any(|x| x.vm.as_str() == vm && x.daemon == d))
        .unwrap_or_else(|| panic!("{vm}/{d} missing from\n{order}"))
}

#[test]
fn reference_cloud_has_a_bring_up_order() {
    for plan in [AddressPlan::reference(), AddressPlan::test()] {
        let c = cluster_with(&plan).expect("valid");
        let order = c.bring_up();
        let steps: usize = order.stages.iter().map(Vec::len).sum();
        // lb1/lb2 × (keepalived, haproxy), coredns, chrony, postgres, nfs, 3 servers, 4 agents.
        assert_eq!(steps, 4 + 2 + 1 + 1 + 3 + 4, "{order}");
        let m1 = position(&order, "master1", Daemon::K3sServer);
        assert!(
            position(&order, "lb1", Daemon::Keepalived)
                < position(&order, "master2", Daemon::K3sServer)
        );
        assert!(
            m1 < position(&order, "master2", Daemon::K3sServer),
            "{order}"
        );
        assert!(
            m1 < position(&order, "worker1", Daemon::K3sAgent),
            "{order}"
        );
        assert!(
            m1 < position(&order, "storage1", Daemon::K3sAgent),
            "{order}"
        );
        println!("bring-up order:\n{order}");
    }
}

#[test]
fn every_vm_has_a_resolver_and_time_that_work_before_the_cloud_does() {
    let c = cluster().expect("valid");
    for vm in c.vms() {
        let resolvers = c.resolvers(vm);
        assert!(
            resolvers.iter().any(|r| matches!(r, Resolver::Upstream(_))),
            "{}: {resolvers:?}",
            vm.name
        );
        let network = base::network_file(&c, vm, 0).expect("nic 0");
        let dns: Vec<&str> = network
            .lines()
            .filter_map(|l| l.strip_prefix("DNS="))
            .collect();
        assert!(dns.len() >= 2, "{}: {network}", vm.name);
        if vm.name.as_str() == "infra" {
            // infra is the cloud's DNS: its own address is not its only resolver.
            assert!(
                dns.contains(&"192.168.0.30") && dns.contains(&"1.1.1.1"),
                "{network}"
            );
        } else {
            // Everyone else asks the cloud's DNS first, then the upstreams.
            assert_eq!(dns.first(), Some(&"192.168.0.30"), "{}: {network}", vm.name);
            let time = c.time_sources(vm);
            assert!(
                matches!(time.first(), Some(TimeSource::Vm(n, _)) if n.as_str() == "infra"),
                "{}: {time:?}",
                vm.name
            );
            assert!(
                time.iter().any(|t| matches!(t, TimeSource::Pool(_))),
                "{time:?}"
            );
            let conf = base::timesyncd_conf(&c, vm).expect("time sources");
            assert!(
                conf.contains("NTP=192.168.0.30 0.flatcar.pool.ntp.org")
                    && conf.contains("FallbackNTP=0.flatcar.pool.ntp.org"),
                "{conf}"
            );
        }
    }
}

#[test]
fn infra_resolving_only_through_itself_is_rejected() {
    let plan = AddressPlan {
        forwarders: Vec::new(),
        ..AddressPlan::reference()
    };
    let problems = cluster_with(&plan).expect_err("deadlocks at first boot");
    let text = problems.to_string();
    assert!(
        text.contains(
            r#"vm "infra": coredns needs a resolver at first boot, but its only source is infra itself: infra resolves through itself before CoreDNS runs"#
        ),
        "{text}"
    );
    // The VMs that resolve through infra name it as the other end.
    assert!(
        problems.any(
            |p| matches!(p, Problem::BringUp { vm, need: Need::Resolver, why, .. }
            if vm == "master1" && why.contains("infra/coredns"))
        ),
        "{text}"
    );
}

#[test]
fn a_vm_without_egress_cannot_pull_its_image() {
    use flatcar_topology::{net4, Cluster, Endpoint, HostBuilder, Problems, Proto, Role};
    let build = |egress: bool| -> Result<Cluster, Problems> {
        let mut c = Cluster::builder("demo", HostBuilder::new("kvm1"));
        c.dns(
            "demo.home.arpa",
            &[std::net::Ipv4Addr::new(198, 18, 250, 53)],
        );
        let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(40));
        let nat = c.nat("db", net4!("198.18.3.0/24"), |n| n);
        c.vm("infra", |vm| vm.role(Role::Dns).nic(&lan, 30));
        c.vm("pg", |vm| vm.role(Role::Database).nic(&nat, 14));
        c.allow(&nat, Role::Dns, Proto::Udp, &[53]);
        if egress {
            c.allow(&nat, Endpoint::Internet, Proto::Any, &[]);
        }
        c.ssh_key(flatcar_microcloud::reference::PLACEHOLDER_ADMIN_KEY);
        c.build()
    };
    let text = build(false).expect_err("no egress").to_string();
    assert!(
        text.contains(r#"vm "pg": postgres needs egress to the artifact hosts at first boot, but no flow lets pg reach the internet"#),
        "{text}"
    );
    build(true).expect("egress allowed");
}
