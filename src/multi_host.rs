//! The reference cloud on three KVM hosts, placed by the library (no
//! explicit `.on()`): the same builder chain as [`crate::reference`], then
//! two further hosts added to the document and every VM placed by the
//! spread rules (etcd members, VIP holders, storage replicas each survive
//! the loss of any one host).

use crate::reference::{cluster_with, AddressPlan};
use flatcar_topology::addr::host_of;
use flatcar_topology::problem::{Element, Problem};
use flatcar_topology::{
    Capacity, Cluster, GiB, KvmHost, LibvirtUri, MiB, Name, Overcommit, Problems,
};

/// What each of the three hosts offers: 8 threads (200 % vCPU overcommit),
/// 32 GiB, 1 TB of pool.
pub fn capacity() -> Capacity {
    Capacity {
        vcpus: 8,
        memory: MiB::gib(32),
        disk: GiB(1000),
        overcommit: Overcommit {
            vcpu_percent: 200,
            memory_percent: 100,
        },
    }
}

/// The reference cloud on `plan`'s addresses over `kvm1` (`.40` on the
/// LAN), `kvm2` (`.41`) and `kvm3` (`.42`), each reached at `uris[i]`
/// (`None`: the defaults, local for kvm1 and `qemu+ssh` for the others).
pub fn three_hosts_with(
    plan: &AddressPlan,
    uris: [Option<LibvirtUri>; 3],
) -> Result<Cluster, Problems> {
    let mut spec = cluster_with(plan)?.into_spec();
    let [u1, u2, u3] = uris;
    spec.host.capacity = Some(capacity());
    spec.host.libvirt = u1;
    for (i, uri) in [(1u32, u2), (2, u3)] {
        let mut h: KvmHost = spec.host.clone();
        let name = format!("kvm{}", i + 1);
        h.name = Name::new(name.clone()).map_err(|reason| {
            Problems(vec![Problem::InvalidName {
                element: Element::KvmHost(name.clone()),
                name,
                reason,
            }])
        })?;
        h.address = host_of(plan.lan, 40 + i).unwrap_or(h.address);
        h.libvirt = uri;
        spec.extra_hosts.push(h);
    }
    Cluster::try_from(spec)
}

/// The reference cloud on the design's addresses over three hosts.
pub fn three_hosts() -> Result<Cluster, Problems> {
    three_hosts_with(&AddressPlan::reference(), [None, None, None])
}
