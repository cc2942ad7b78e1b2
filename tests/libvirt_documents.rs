//! What the libvirt documents must say for Flatcar (fw_cfg Ignition, disk
//! serials, MACs in NIC order), ownership metadata and hashes, determinism.
//! (`virt-xml-validate` on every document is the live target
//! `libvirt_documents_live.rs`.)

use flatcar_libvirt::{self as libvirt, domain, live, ownership, volume};
use flatcar_microcloud::reference::cluster;
use flatcar_topology::Cluster;

fn doc<'a>(docs: &'a [(String, &'static str, String)], path: &str) -> &'a str {
    &docs
        .iter()
        .find(|(p, _, _)| p == path)
        .unwrap_or_else(|| panic!("{path} missing"))
        .2
}

#[test]
fn reference_documents_say_what_flatcar_needs() {
    let c = cluster().expect("valid");
    let docs = libvirt::documents(&c).expect("renders");
    for vm in c.vms() {
        let xml = doc(&docs, &format!("domains/{}.xml", vm.name));
        let f = live::domain("domain", xml).expect("parses");
        // Ignition through fw_cfg at the path the bundle writes.
        assert_eq!(
            f.fw_cfg,
            vec![(
                "opt/org.flatcar-linux/config".to_string(),
                libvirt::ignition_path(&c, vm)
            )]
        );
        assert_eq!(
            libvirt::ignition_path(&c, vm),
            format!("/var/lib/libvirt/images/microcloud/{}.ign", vm.name)
        );
        assert_eq!((f.virt_type.as_str(), f.machine.as_str()), ("kvm", "q35"));
        assert!(xml.contains("<cpu mode=\"host-model\"/>"), "{xml}");
        assert_eq!(f.vcpus, u32::from(vm.vcpus));
        assert_eq!(f.memory_kib, vm.memory.0 << 10);
        // NICs: the model's MACs, in NIC order, on the right networks.
        let want: Vec<(String, String)> = c
            .nics(vm)
            .into_iter()
            .map(|n| (n.mac.to_string(), n.network.name.to_string()))
            .collect();
        assert_eq!(f.nics, want);
        // Root overlay first, then data disks whose serial is the disk name
        // (the guest finds them at /dev/disk/by-id/virtio-<name>).
        assert_eq!(f.disks[0].1, format!("{}-root.qcow2", vm.name));
        assert_eq!(f.disks[0].2, None);
        for (d, live) in vm.data_disks.iter().zip(&f.disks[1..]) {
            assert_eq!(live.1, format!("{}-{}.qcow2", vm.name, d.name));
            assert_eq!(live.2.as_deref(), Some(d.name.as_str()));
        }
        assert!(xml.contains("<console type=\"pty\">"), "{xml}");
        // Overlay backed by the base image in the pool.
        let root = doc(&docs, &format!("volumes/{}-root.qcow2.xml", vm.name));
        let v = live::volume("volume", root).expect("parses");
        assert_eq!(
            v.backing.as_deref(),
            Some(
                format!(
                    "/var/lib/libvirt/images/microcloud/{}",
                    c.spec().image.volume_name()
                )
                .as_str()
            )
        );
        assert_eq!(v.capacity, vm.root_disk.0 << 30);
    }
    assert!(c.vms().iter().any(|v| !v.data_disks.is_empty()));
    let worker1 = doc(&docs, "domains/worker1.xml");
    assert!(worker1.contains("<serial>longhorn</serial>"), "{worker1}");

    let lan = live::network("lan", doc(&docs, "networks/lan.xml")).expect("parses");
    assert_eq!(
        (lan.forward.as_str(), lan.bridge.as_str()),
        ("bridge", "br0")
    );
    assert_eq!(lan.address, None);
    for net in c.networks().iter().filter(|n| n.name.as_str() != "lan") {
        let xml = doc(&docs, &format!("networks/{}.xml", net.name));
        let f = live::network("net", xml).expect("parses");
        assert_eq!(f.forward, "open", "NAT networks use forward mode open");
        assert_eq!(f.bridge, net.bridge.to_string());
        assert_eq!(
            f.address,
            Some((net.gateway.to_string(), net.cidr.prefix_len()))
        );
        assert_eq!(f.domain.as_deref(), Some(c.domain().to_string().as_str()));
        // One reservation and one DNS entry per VM NIC on this network.
        let mut want: Vec<(String, String, String)> = c
            .vms()
            .iter()
            .flat_map(|vm| {
                c.nics(vm)
                    .into_iter()
                    .filter(|n| n.network.name == net.name)
                    .map(|n| {
                        (
                            n.mac.to_string(),
                            vm.name.to_string(),
                            n.address.to_string(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        want.sort();
        assert!(!want.is_empty());
        assert_eq!(f.dhcp_hosts, want);
        assert_eq!(f.dns_hosts.len(), want.len());
        assert!(f.range.is_some());
    }
    let k8s = doc(&docs, "networks/k8s.xml");
    assert!(
        k8s.contains("<host mac=") && k8s.contains("name=\"master1\" ip=\"10.17.4.21\""),
        "{k8s}"
    );
    let pool = doc(&docs, "pool.xml");
    assert!(pool.contains("<pool type=\"dir\">"), "{pool}");
}

#[test]
fn ownership_metadata_and_hash() {
    let c = cluster().expect("valid");
    let docs = libvirt::documents(&c).expect("renders");
    for (path, kind, xml) in &docs {
        let owned = matches!(*kind, "network" | "domain");
        let o = ownership(xml).expect("reads");
        assert_eq!(o.is_some(), owned, "{path}");
        if let Some(o) = o {
            assert_eq!(o.cluster, "microcloud");
            assert!(o.hash.starts_with("sha256-") && o.hash.len() == 7 + 64);
            assert!(xml.contains(
                "<fmc:owner xmlns:fmc=\"https://flatcar-microcloud.dev/xmlns/1\" cluster=\"microcloud\" hash=\"sha256-"
            ));
        }
    }
    // The uuid of a redefinition does not change the hash.
    let vm = c.vm("master1").expect("master1");
    let a = ownership(&domain::xml(&c, vm).expect("xml")).expect("reads");
    let b = ownership(&domain::xml_with_uuid(&c, vm, "u").expect("xml")).expect("reads");
    assert_eq!(a, b);
    // Hashes are per object and follow the desired state.
    let mut spec = c.clone().into_spec();
    spec.vms
        .iter_mut()
        .find(|v| v.name.as_str() == "master1")
        .expect("m1")
        .vcpus += 1;
    let c2 = Cluster::try_from(spec).expect("valid");
    let m1 = c2.vm("master1").expect("m1");
    let m2 = c2.vm("master2").expect("m2");
    assert_ne!(
        ownership(&domain::xml(&c2, m1).expect("xml")).expect("r"),
        a
    );
    assert_eq!(
        ownership(&domain::xml(&c2, m2).expect("xml")).expect("r"),
        ownership(&domain::xml(&c, c.vm("master2").expect("m2")).expect("xml")).expect("r")
    );
}

#[test]
fn deterministic() {
    let a = libvirt::documents(&cluster().expect("valid")).expect("renders");
    let b = libvirt::documents(&cluster().expect("valid")).expect("renders");
    assert_eq!(a, b);
}

#[test]
fn per_vm_image_backs_its_overlay() {
    let mut spec = cluster().expect("valid").into_spec();
    let mut other = spec.image.clone();
    other.version = flatcar_topology::FlatcarVersion::new("4152.2.1").expect("version");
    spec.vms[0].image = Some(other.clone());
    let c = Cluster::try_from(spec).expect("valid");
    let vm = &c.vms()[0];
    let xml = &volume::vm_xmls(&c, vm).expect("renders")[0].1;
    let v = live::volume("v", xml).expect("parses");
    assert!(
        v.backing
            .as_deref()
            .is_some_and(|b| b.ends_with(&other.volume_name())),
        "{xml}"
    );
    assert_eq!(volume::base_images(&c).len(), 2);
}

/// The domain type is the host model's accelerator: `kvm` by default,
/// `qemu` (TCG) when the model says so; nothing else in the documents
/// changes, and a live `kvm` domain must be recreated to become `qemu`.
#[test]
fn domain_type_is_the_hosts_accelerator() {
    use flatcar_topology::Accelerator;
    let kvm = cluster().expect("valid");
    assert_eq!(kvm.host().accelerator, Accelerator::Kvm);
    let mut spec = kvm.spec().clone();
    spec.host.accelerator = Accelerator::Qemu;
    let tcg = Cluster::try_from(spec).expect("valid with qemu");
    assert!(
        tcg.summary().contains("domain type qemu"),
        "{}",
        tcg.summary()
    );
    assert!(kvm.summary().contains("domain type kvm"));
    let before = libvirt::documents(&kvm).expect("renders");
    let after = libvirt::documents(&tcg).expect("renders");
    assert_eq!(before.len(), after.len());
    for ((path, _, a), (_, _, b)) in before.iter().zip(&after) {
        if path.starts_with("domains/") {
            let (fa, fb) = (
                live::domain("a", a).expect("parses"),
                live::domain("b", b).expect("parses"),
            );
            assert_eq!(
                (fa.virt_type.as_str(), fb.virt_type.as_str()),
                ("kvm", "qemu")
            );
            // Only the type attribute and the CPU model differ (and the
            // ownership hash of the whole definition, which covers them):
            // no host-model under TCG (QEMU's default model).
            let unhashed = |x: &str| -> String {
                let at = x.find(" hash=\"").expect("ownership hash");
                let end = x[at + 7..].find('"').expect("closing quote") + at + 8;
                format!("{}{}", &x[..at], &x[end..])
            };
            assert_ne!(a, b);
            assert_eq!(
                unhashed(
                    &a.replacen("<domain type=\"kvm\"", "<domain type=\"qemu\"", 1)
                        .replacen("  <cpu mode=\"host-model\"/>\n", "", 1)
                ),
                unhashed(b),
                "{path}"
            );
            assert!(matches!(
                libvirt::diff::domain(&fa, &fb),
                libvirt::diff::Change::Recreate(why) if why.iter().any(|w| w == "type kvm -> qemu")
            ));
        } else {
            assert_eq!(a, b, "{path} must not depend on the accelerator");
        }
    }
}

/// A model file carries the accelerator only when it is not the default,
/// and a file naming an unknown one is rejected.
#[test]
fn accelerator_in_model_files() {
    use flatcar_topology::{Accelerator, Format};
    let kvm = cluster().expect("valid");
    let text = kvm.to_string_as(Format::Toml).expect("toml");
    assert!(!text.contains("accelerator"), "default left out");
    let mut spec = kvm.spec().clone();
    spec.host.accelerator = Accelerator::Qemu;
    let tcg = Cluster::try_from(spec).expect("valid");
    let text = tcg.to_string_as(Format::Toml).expect("toml");
    assert!(text.contains("accelerator = \"qemu\""), "{text}");
    let back = Cluster::from_str_as(&text, Format::Toml).expect("loads");
    assert_eq!(back.host().accelerator, Accelerator::Qemu);
    let bad = text.replace("accelerator = \"qemu\"", "accelerator = \"tcg\"");
    let err = Cluster::from_str_as(&bad, Format::Toml).expect_err("tcg is no domain type");
    assert!(format!("{err:?}").contains("tcg"), "{err:?}");
}
