//! What a new model means for the running cloud (fast tier): adding
//! `worker4` to the reference cloud is a live change on the load balancers
//! (HAProxy backends), infra (the DNS zone) and storage1 (NFS exports) and a
//! new VM; random changes to the model are never reported as unchanged when
//! a VM's rendered configuration differs, and their rolling plans keep every
//! rule.

mod support;
use flatcar_microcloud::change::classify;
use flatcar_microcloud::reference;
use flatcar_topology::change::{Reload, ReplaceReason, VmChange};
use flatcar_topology::provision::MemorySecrets;
use flatcar_topology::rollout::{check, Step};
use flatcar_topology::{
    Channel, Cluster, FlatcarVersion, GiB, K3sVersion, MiB, Name, OsImage, Spec,
};
use proptest::prelude::*;
use std::net::Ipv4Addr;
use support::with_worker4;

fn live_reloads(c: &VmChange) -> Vec<Reload> {
    match c {
        VmChange::Live { reloads, .. } => reloads.iter().copied().collect(),
        other => panic!("not live: {other}"),
    }
}

#[test]
fn adding_worker4_is_live_on_lbs_infra_and_storage_and_creates_worker4() {
    let old = reference::cluster().expect("valid");
    let new = with_worker4(&old);
    let changes = classify(&old, &new, &mut MemorySecrets::default()).expect("classifies");
    println!("{changes}");
    assert_eq!(changes.vms["worker4"], VmChange::Create);
    for lb in ["lb1", "lb2"] {
        assert!(
            live_reloads(&changes.vms[lb]).contains(&Reload::Haproxy),
            "{lb}: {}",
            changes.vms[lb]
        );
    }
    assert!(live_reloads(&changes.vms["infra"]).contains(&Reload::CoreDns));
    assert!(live_reloads(&changes.vms["storage1"]).contains(&Reload::NfsExports));
    assert!(live_reloads(&changes.vms["postgresql1"]).contains(&Reload::Postgres));
    for vm in ["master1", "worker1"] {
        assert_eq!(changes.vms[vm], VmChange::None, "{vm}");
    }
    assert!(changes.host, "the host ruleset admits worker4's flows");
    let rollout = changes.rollout(&old, &new);
    println!("{rollout}");
    assert!(check(old.spec(), new.spec(), &changes.vms, &rollout).is_empty());
    assert!(matches!(rollout.steps[0], Step::Host));
    // Removing it again: drained first, pushes, then removed.
    let back = classify(&new, &old, &mut MemorySecrets::default()).expect("classifies");
    assert_eq!(back.vms["worker4"], VmChange::Remove);
    let r = back.rollout(&new, &old);
    println!("{r}");
    assert!(check(new.spec(), old.spec(), &back.vms, &r).is_empty());
    let text = r.to_string();
    let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s}:\n{text}"));
    assert!(
        at("push      lb1") < at("drain     worker4")
            && at("drain     worker4") < at("remove    worker4")
    );
}

#[test]
fn upgrades_are_rolling_replacements() {
    let old = reference::cluster().expect("valid");
    // K3s: every K3s node, servers before agents, each drained.
    let mut spec = old.clone().into_spec();
    spec.k3s.version = K3sVersion::new("v1.36.4+k3s1").expect("version");
    let new = Cluster::try_from(spec).expect("valid");
    let changes = classify(&old, &new, &mut MemorySecrets::default()).expect("classifies");
    for vm in ["master1", "worker1", "storage1"] {
        assert!(
            matches!(&changes.vms[vm], VmChange::Replace { reasons } if reasons.iter().any(|r| matches!(r, ReplaceReason::K3sVersion { .. }))),
            "{vm}: {}",
            changes.vms[vm]
        );
    }
    assert_eq!(changes.vms["lb1"], VmChange::None);
    let r = changes.rollout(&old, &new);
    println!("{r}");
    assert!(check(old.spec(), new.spec(), &changes.vms, &r).is_empty());
    let text = r.to_string();
    assert!(
        text.find("replace   master3").expect("m3") < text.find("replace   storage1").expect("s1")
    );
    // Flatcar: every VM, the load balancers handing the VIPs over.
    let mut spec = old.clone().into_spec();
    spec.image = OsImage {
        channel: Channel::Stable,
        version: FlatcarVersion::new("4152.2.0").expect("version"),
    };
    let new = Cluster::try_from(spec).expect("valid");
    let changes = classify(&old, &new, &mut MemorySecrets::default()).expect("classifies");
    assert!(changes
        .vms
        .values()
        .all(|c| matches!(c, VmChange::Replace { .. })));
    let r = changes.rollout(&old, &new);
    println!("{r}");
    assert!(check(old.spec(), new.spec(), &changes.vms, &r).is_empty());
    let text = r.to_string();
    assert!(
        text.contains("handover  api, api-internal, web from lb2 to lb1"),
        "{text}"
    );
    assert!(
        text.contains("handover  api, api-internal, web from lb1 to lb2"),
        "{text}"
    );
    assert!(text.find("replace   lb2").expect("lb2") < text.find("replace   lb1").expect("lb1"));
    assert!(r
        .outages
        .iter()
        .any(|o| o.group == "dns" && o.vm == "infra"));
}

/// A random edit of the reference model.
#[derive(Debug, Clone)]
enum Edit {
    AddWorker(u8),
    RemoveWorker(usize),
    Memory(usize, u32),
    RootDisk(usize, u16),
    Image(u16),
    K3s(u8),
    Vcpus(usize, u16),
    DataDisk(usize, u16),
    SwapHolders(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (28u8..60).prop_map(Edit::AddWorker),
        (0usize..3).prop_map(Edit::RemoveWorker),
        (0usize..11, 1u32..8).prop_map(|(v, g)| Edit::Memory(v, g)),
        (0usize..11, 10u16..90).prop_map(|(v, g)| Edit::RootDisk(v, g)),
        (4000u16..4200).prop_map(Edit::Image),
        (4u8..6).prop_map(Edit::K3s),
        (0usize..11, 1u16..5).prop_map(|(v, n)| Edit::Vcpus(v, n)),
        (0usize..11, 20u16..90).prop_map(|(v, g)| Edit::DataDisk(v, g)),
        (0usize..3).prop_map(Edit::SwapHolders),
    ]
}

fn apply(spec: &mut Spec, e: &Edit) {
    match e {
        Edit::AddWorker(n) => {
            let name = format!("worker{n}");
            if spec.vms.iter().any(|v| v.name.as_str() == name)
                || spec
                    .vms
                    .iter()
                    .any(|v| v.nics[0].address == Ipv4Addr::new(10, 17, 4, *n))
            {
                return;
            }
            let mut w = spec
                .vms
                .iter()
                .find(|v| v.name.as_str().starts_with("worker"))
                .cloned()
                .unwrap_or_else(|| spec.vms[spec.vms.len() - 1].clone());
            w.name = Name::new(name.as_str()).expect("name");
            w.nics = vec![flatcar_topology::Nic {
                network: Name::new("k8s").expect("name"),
                address: Ipv4Addr::new(10, 17, 4, *n),
                mac: None,
            }];
            w.roles = [flatcar_topology::Role::Worker].into();
            spec.vms.push(w);
        }
        Edit::RemoveWorker(i) => {
            let workers: Vec<usize> = spec
                .vms
                .iter()
                .enumerate()
                .filter(|(_, v)| v.has(flatcar_topology::Role::Worker))
                .map(|(i, _)| i)
                .collect();
            if workers.len() > 1 {
                spec.vms.remove(workers[i % workers.len()]);
            }
        }
        Edit::Memory(v, g) => {
            let i = v % spec.vms.len();
            spec.vms[i].memory = MiB::gib(u64::from(*g));
        }
        Edit::RootDisk(v, g) => {
            let i = v % spec.vms.len();
            spec.vms[i].root_disk = GiB(u64::from(*g));
        }
        Edit::Image(n) => {
            spec.image.version = FlatcarVersion::new(format!("{n}.2.0").as_str()).expect("version");
        }
        Edit::K3s(p) => {
            spec.k3s.version =
                K3sVersion::new(format!("v1.36.{p}+k3s1").as_str()).expect("version");
        }
        Edit::Vcpus(v, n) => {
            let i = v % spec.vms.len();
            spec.vms[i].vcpus = *n;
        }
        Edit::DataDisk(v, g) => {
            let i = v % spec.vms.len();
            if let Some(d) = spec.vms[i].data_disks.first_mut() {
                d.size = GiB(u64::from(*g));
            }
        }
        Edit::SwapHolders(v) => {
            let i = v % spec.vips.len();
            spec.vips[i].holders.reverse();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    #[test]
    fn a_changed_vm_is_never_unchanged_and_rollouts_keep_the_rules(edits in proptest::collection::vec(edit(), 1..4)) {
        let old = reference::cluster().expect("valid");
        let mut spec = old.clone().into_spec();
        for e in &edits {
            apply(&mut spec, e);
        }
        let Ok(new) = Cluster::try_from(spec) else {
            // An edit the model rejects (e.g. capacity): nothing to plan.
            return Ok(());
        };
        let mut secrets = MemorySecrets::default();
        let changes = classify(&old, &new, &mut secrets).expect("classifies");
        let a = flatcar_microcloud::services::compose(&old, &mut secrets).expect("old");
        let b = flatcar_microcloud::services::compose(&new, &mut secrets).expect("new");
        use flatcar_ignition::IgnitionJson;
        for vm in new.vms() {
            let name = vm.name.as_str();
            let Some(before) = old.vm(name) else {
                prop_assert_eq!(&changes.vms[name], &VmChange::Create);
                continue;
            };
            let ign = a.nodes[name].ignition_json().expect("json") != b.nodes[name].ignition_json().expect("json");
            let dom = flatcar_libvirt::domain::xml(&old, before).expect("xml") != flatcar_libvirt::domain::xml(&new, vm).expect("xml")
                || flatcar_libvirt::volume::vm_xmls(&old, before).expect("xml") != flatcar_libvirt::volume::vm_xmls(&new, vm).expect("xml");
            if ign || dom || before != vm {
                prop_assert_ne!(&changes.vms[name], &VmChange::None, "{} changed: {:?}", name, edits);
            } else {
                prop_assert_eq!(&changes.vms[name], &VmChange::None, "{} did not change: {:?}", name, edits);
            }
        }
        let r = changes.rollout(&old, &new);
        let v = check(old.spec(), new.spec(), &changes.vms, &r);
        prop_assert!(v.is_empty(), "{:?}\n{}", v, r);
    }
}

#[test]
fn swapping_vip_holders_is_a_live_keepalived_reload() {
    let old = reference::cluster().expect("valid");
    let mut spec = old.clone().into_spec();
    for v in &mut spec.vips {
        v.holders.reverse();
    }
    let new = Cluster::try_from(spec).expect("valid");
    let changes = classify(&old, &new, &mut MemorySecrets::default()).expect("classifies");
    println!("{changes}");
    for lb in ["lb1", "lb2"] {
        assert!(
            live_reloads(&changes.vms[lb]).contains(&Reload::Keepalived),
            "{lb}: {}",
            changes.vms[lb]
        );
    }
}
