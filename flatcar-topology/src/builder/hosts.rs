//! Several KVM hosts in the builder: capacity, libvirt URI, LAN address,
//! and explicit placement with [`VmBuilder::on`].

use super::{ClusterBuilder, HostBuilder, VmBuilder};
use crate::problem::Element;
use crate::StoragePool;
use crate::{
    Accelerator, Capacity, GiB, IfName, KvmHost, LibvirtUri, MiB, Name, Overcommit, PoolPath,
};
use std::net::Ipv4Addr;

/// Handle to a KVM host of a builder, for [`VmBuilder::on`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRef {
    builder: u64,
    name: Name,
}

impl HostRef {
    /// The host's name.
    pub fn name(&self) -> &Name {
        &self.name
    }
}

impl HostBuilder {
    /// The host's address on the LAN, as a host number (further hosts only;
    /// the first host takes it from the LAN's `.host_at(n)`).
    pub fn at(mut self, host: u32) -> Self {
        self.at = Some(host);
        self
    }

    /// The libvirt URI that reaches this host (`qemu+ssh://root@kvm2/system`).
    pub fn libvirt(mut self, uri: &str) -> Self {
        self.libvirt = Some(uri.into());
        self
    }

    /// How QEMU runs this host's guests (default [`Accelerator::Kvm`];
    /// [`Accelerator::Qemu`] for hosts without usable KVM).
    pub fn accelerator(mut self, accelerator: Accelerator) -> Self {
        self.accelerator = accelerator;
        self
    }

    /// What the host can give to VMs: CPU threads, memory, pool disk.
    pub fn capacity(mut self, vcpus: u16, memory: MiB, disk: GiB) -> Self {
        let overcommit = self.capacity.map(|c| c.overcommit).unwrap_or_default();
        self.capacity = Some(Capacity {
            vcpus,
            memory,
            disk,
            overcommit,
        });
        self
    }

    /// The declared overcommit ratio in percent (after `.capacity()`).
    pub fn overcommit(mut self, vcpu_percent: u16, memory_percent: u16) -> Self {
        if let Some(c) = self.capacity.as_mut() {
            c.overcommit = Overcommit {
                vcpu_percent,
                memory_percent,
            };
        }
        self
    }
}

impl VmBuilder {
    /// Runs this VM on `host` (otherwise the library places it).
    pub fn on(mut self, host: &HostRef) -> Self {
        if host.builder != self.builder {
            self.sink.value(
                self.element.clone(),
                "host",
                "host handle is from another builder",
            );
        } else {
            self.on = Some(host.name.clone());
        }
        self
    }
}

impl ClusterBuilder {
    /// The first KVM host (the one given to [`Cluster::builder`](crate::Cluster::builder)).
    pub fn first_host(&self) -> HostRef {
        HostRef {
            builder: self.id,
            name: Name::unchecked(self.host.name.clone()),
        }
    }

    /// How QEMU runs the first host's guests (see [`HostBuilder::accelerator`]).
    pub fn accelerator(&mut self, accelerator: Accelerator) -> &mut Self {
        self.host.accelerator = accelerator;
        self
    }

    /// Adds a further KVM host on the same LAN (give its address with `.at(n)`).
    pub fn host(&mut self, host: HostBuilder) -> HostRef {
        let name = self
            .sink
            .name(Element::KvmHost(host.name.clone()), &host.name);
        self.extra_hosts.push(host);
        HostRef {
            builder: self.id,
            name,
        }
    }

    /// Resolves one host's settings; problems go to the sink.
    pub(super) fn resolve_host(
        &mut self,
        h: &HostBuilder,
        el: Element,
        address: Option<Ipv4Addr>,
        lan: &Name,
    ) -> KvmHost {
        let first = address.is_some();
        let name = if first {
            self.sink.name(el.clone(), &h.name)
        } else {
            Name::unchecked(h.name.clone())
        };
        let address = match (address, h.at) {
            (Some(a), None) => a,
            (Some(a), Some(_)) => {
                self.sink.value(
                    el.clone(),
                    "address",
                    "the first host's address comes from the LAN's .host_at(n), not .at(n)",
                );
                a
            }
            (None, Some(n)) => {
                let cidr = self
                    .networks
                    .iter()
                    .find(|x| &x.name == lan)
                    .map(|x| x.cidr);
                match cidr {
                    Some(cidr) => self.sink.host(&el, "address", cidr, n),
                    None => Ipv4Addr::UNSPECIFIED,
                }
            }
            (None, None) => {
                self.sink.value(
                    el.clone(),
                    "address",
                    "give the host's LAN address with .at(n)",
                );
                Ipv4Addr::UNSPECIFIED
            }
        };
        let uplink = IfName::new(h.uplink.clone()).unwrap_or_else(|e| {
            self.sink.value(el.clone(), "uplink", &e);
            IfName::unchecked(e.0)
        });
        let pool_name = self.sink.name(el.clone(), &h.pool_name);
        let pool_path = PoolPath::new(h.pool_path.clone()).unwrap_or_else(|e| {
            self.sink.value(el.clone(), "pool path", &e);
            PoolPath::unchecked(h.pool_path.clone())
        });
        let libvirt = h.libvirt.as_ref().map(|u| {
            LibvirtUri::new(u.clone()).unwrap_or_else(|e| {
                self.sink.value(el.clone(), "libvirt uri", &e);
                LibvirtUri::unchecked(e.0)
            })
        });
        KvmHost {
            name,
            uplink,
            lan: lan.clone(),
            address,
            pool: StoragePool {
                name: pool_name,
                path: pool_path,
            },
            libvirt,
            capacity: h.capacity,
            accelerator: h.accelerator,
        }
    }
}
