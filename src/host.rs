//! The KVM host's own part: its nftables ruleset and WireGuard endpoint,
//! applied by the example's `--apply-host` (a plan first, then nftables in
//! one atomic transaction that replaces only the tables this project owns),
//! and the same steps as an Ansible playbook (`host/playbook.yml`).
//!
//! With several KVM hosts, every host has its own part (`hosts/<host>/`:
//! ruleset and systemd-networkd files for the spanning networks and the
//! transit): the playbook then runs on every host of `host/inventory.yml`
//! ([`inventory`]), each with its own directory, and the example applies
//! the part of each host whose libvirt URI is this machine.

use flatcar_net::ruleset::{Family, Ruleset};
use flatcar_topology::{Cluster, KvmHost, VpnEndpoint};
use std::collections::BTreeMap;
use std::fmt;

/// What applying the host part would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPlan {
    /// Our tables (`inet microcloud`, …) and whether each exists already.
    pub tables: Vec<(String, bool)>,
    /// Rules in our tables.
    pub rules: usize,
    /// Tables of others (libvirt, firewalld, …): never touched.
    pub untouched: Vec<String>,
    /// The WireGuard endpoint, when the host is it.
    pub wireguard: Option<WireGuardPlan>,
    /// With several hosts: the host this plan is for and its
    /// systemd-networkd files (`hosts/<host>/network/`); `None` with one.
    pub networkd: Option<NetworkdPlan>,
}

/// One host's systemd-networkd files in a multi-host cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkdPlan {
    /// The KVM host.
    pub host: String,
    /// File name → text, for `/etc/systemd/network/`.
    pub files: BTreeMap<String, String>,
}

/// The WireGuard endpoint on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireGuardPlan {
    /// Interface name.
    pub interface: String,
    /// Address with prefix (`10.17.9.1/24`).
    pub address: String,
    /// UDP listen port.
    pub port: u16,
    /// Peer names.
    pub peers: Vec<String>,
}

fn family(f: Family) -> &'static str {
    match f {
        Family::Inet => "inet",
        Family::Bridge => "bridge",
    }
}

/// The plan for `ruleset` and `cluster`'s VPN, given the tables that exist
/// now (`nft list tables` lines such as `table inet filter`): the first
/// host's ([`plan_for`]).
pub fn plan(cluster: &Cluster, ruleset: &Ruleset, existing: &[String]) -> HostPlan {
    plan_for(cluster, cluster.host(), ruleset, existing)
}

/// The plan for KVM host `host` with its `ruleset`
/// ([`flatcar_net::ruleset::build_for`]): the WireGuard endpoint only on
/// the host the VPN ends on (the first), and with several hosts its
/// networkd files.
pub fn plan_for(
    cluster: &Cluster,
    host: &KvmHost,
    ruleset: &Ruleset,
    existing: &[String],
) -> HostPlan {
    let endpoint = host.name == cluster.host().name;
    let ours: Vec<String> = ruleset
        .tables
        .iter()
        .map(|t| format!("table {} {}", family(t.family), t.name))
        .collect();
    HostPlan {
        tables: ours
            .iter()
            .map(|t| (t.clone(), existing.iter().any(|e| e == t)))
            .collect(),
        rules: ruleset
            .tables
            .iter()
            .flat_map(|t| &t.chains)
            .map(|c| c.rules.len())
            .sum(),
        untouched: existing
            .iter()
            .filter(|e| !ours.contains(e))
            .cloned()
            .collect(),
        wireguard: cluster.vpn().and_then(|v| {
            (endpoint && v.endpoint == VpnEndpoint::Host).then(|| WireGuardPlan {
                interface: v.interface.to_string(),
                address: format!("{}/{}", v.address, v.subnet.prefix_len()),
                port: v.listen_port.get(),
                peers: v.peers.iter().map(|p| p.name.to_string()).collect(),
            })
        }),
        networkd: cluster.is_multi_host().then(|| NetworkdPlan {
            host: host.name.to_string(),
            files: flatcar_net::fabric::networkd(cluster, host),
        }),
    }
}

impl fmt::Display for HostPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.networkd {
            Some(n) => writeln!(f, "host plan ({}, from hosts/{}/):", n.host, n.host)?,
            None => writeln!(f, "host plan:")?,
        }
        for (t, exists) in &self.tables {
            let what = if *exists { "replace" } else { "create" };
            writeln!(f, "  nftables: {what} {t}")?;
        }
        writeln!(
            f,
            "  nftables: {} rule(s), one atomic transaction (nft -j -f -: add, delete, define our tables)",
            self.rules
        )?;
        for t in &self.untouched {
            writeln!(f, "  nftables: keep {t} (not ours)")?;
        }
        match &self.wireguard {
            Some(w) => writeln!(
                f,
                "  wireguard: {} {} listen {} peers {}",
                w.interface,
                w.address,
                w.port,
                w.peers.join(", ")
            )?,
            None => writeln!(f, "  wireguard: the host is not the VPN endpoint")?,
        }
        if let Some(n) = &self.networkd {
            writeln!(
                f,
                "  networkd: install {} file(s) (spanning networks' bridges and VXLAN ports, the transit), then networkctl reload",
                n.files.len()
            )?;
            writeln!(f, "  sysctl: net.ipv4.ip_forward=1")?;
        }
        Ok(())
    }
}

#[cfg(feature = "live")]
/// The tables that exist now, from `nft list tables` (run by `nft`, e.g.
/// `["ip", "netns", "exec", "NS", "nft"]` inside a namespace).
pub fn existing_tables(nft: &[&str]) -> Result<Vec<String>, crate::Error> {
    use crate::Error;
    let (program, args) = nft.split_first().ok_or_else(|| Error::Host {
        step: "nft list tables",
        source: "no nft command".into(),
    })?;
    let out = std::process::Command::new(program)
        .args(args)
        .args(["list", "tables"])
        .output()
        .map_err(|source| Error::Io {
            path: program.into(),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Host {
            step: "nft list tables",
            source: String::from_utf8_lossy(&out.stderr)
                .trim()
                .to_string()
                .into(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect())
}

#[cfg(feature = "live")]
/// Applies `ruleset` in one transaction with `nft` (see [`existing_tables`]
/// for `nft`): only our tables are added, deleted and defined; if `nft`
/// rejects anything, nothing changes.
pub fn apply_ruleset(ruleset: &Ruleset, nft: &[&str]) -> Result<(), crate::Error> {
    use crate::Error;
    let (program, args) = nft.split_first().ok_or_else(|| Error::Host {
        step: "nftables",
        source: "no nft command".into(),
    })?;
    flatcar_net::ruleset::apply_with(ruleset, program, args).map_err(|e| Error::Host {
        step: "nftables",
        source: Box::new(e),
    })
}

/// An Ansible playbook (next to `nftables.nft` and the WireGuard config in
/// `host/`) that does what `--apply-host` does: check the ruleset with
/// `nft -c`, apply it with `nft -f` (one transaction, only our tables), and
/// bring the WireGuard endpoint up with `wg-quick`. With several hosts it
/// does that on every host of [`inventory`], each from its own
/// `hosts/<host>/`, after installing that host's networkd files
/// ([`playbook_hosts`]).
pub fn playbook(cluster: &Cluster) -> String {
    if cluster.is_multi_host() {
        return playbook_hosts(cluster);
    }
    let mut s = String::from(
        "# Generated by flatcar-microcloud: the KVM host's own part.
# ansible-playbook -i kvm-host, host/playbook.yml   (run from the bundle directory)
- name: flatcar-microcloud host (nftables and WireGuard)
  hosts: all
  become: true
  gather_facts: false
  tasks:
    - name: Directory for the ruleset
      ansible.builtin.file:
        path: /etc/nftables.d
        state: directory
        mode: \"0700\"
    - name: Install the ruleset (only the microcloud tables; others stay)
      ansible.builtin.copy:
        src: nftables.nft
        dest: /etc/nftables.d/microcloud.nft
        owner: root
        group: root
        mode: \"0600\"
        validate: nft -c -f %s
      register: ruleset
    - name: Apply the ruleset in one transaction
      ansible.builtin.command: nft -f /etc/nftables.d/microcloud.nft
      when: ruleset.changed
      changed_when: true
    - name: Forward between the LAN, the VM networks and the VPN (persistent)
      ansible.builtin.copy:
        content: \"net.ipv4.ip_forward = 1\\n\"
        dest: /etc/sysctl.d/90-microcloud.conf
        mode: \"0644\"
    - name: Forward between the LAN, the VM networks and the VPN (now)
      ansible.builtin.command: sysctl -w net.ipv4.ip_forward=1
      changed_when: false
",
    );
    if let Some(v) = cluster.vpn().filter(|v| v.endpoint == VpnEndpoint::Host) {
        s.push_str(&format!(
            "    - name: WireGuard endpoint config (secret)
      ansible.builtin.copy:
        src: {i}.conf
        dest: /etc/wireguard/{i}.conf
        owner: root
        group: root
        mode: \"0600\"
      register: wg
    - name: WireGuard endpoint up
      ansible.builtin.systemd:
        name: wg-quick@{i}.service
        enabled: true
        state: \"{{{{ 'restarted' if wg.changed else 'started' }}}}\"
",
            i = v.interface
        ));
    }
    s
}

/// The Ansible inventory of the KVM hosts (`host/inventory.yml`, several
/// hosts only): group `kvm_hosts`, each host at its LAN address with its
/// libvirt URI.
pub fn inventory(cluster: &Cluster) -> String {
    let mut s = String::from(
        "# Generated by flatcar-microcloud: the KVM hosts, for host/playbook.yml.\n\
         # Each runs its own part from hosts/<host>/ (networkd, nftables).\n\
         all:\n  children:\n    kvm_hosts:\n      hosts:\n",
    );
    for (i, h) in cluster.kvm_hosts().iter().enumerate() {
        // A JSON string is a YAML string: the URI needs no escaping rules of its own.
        let uri =
            serde_json::to_string(h.libvirt_uri(i == 0).as_str()).unwrap_or_else(|_| "\"\"".into());
        s.push_str(&format!(
            "        {name}:\n          ansible_host: {addr}\n          microcloud_libvirt: {uri}\n",
            name = h.name,
            addr = h.address,
        ));
    }
    s
}

/// The playbook for several hosts: on every host of [`inventory`], the
/// sysctls, its networkd files (`hosts/<host>/network/`, then
/// `networkctl reload`), its ruleset (`hosts/<host>/nftables.nft`, checked
/// with `nft -c`, one transaction) and, on the VPN endpoint host, WireGuard.
pub fn playbook_hosts(cluster: &Cluster) -> String {
    let first = cluster.host().name.to_string();
    let mut s = String::from(
        "# Generated by flatcar-microcloud: every KVM host's own part.
# ansible-playbook -i host/inventory.yml host/playbook.yml   (run from the bundle directory)
- name: flatcar-microcloud hosts (networkd, nftables, sysctl, WireGuard)
  hosts: kvm_hosts
  become: true
  gather_facts: false
  vars:
    host_dir: \"{{ playbook_dir }}/../hosts/{{ inventory_hostname }}\"
  tasks:
    - name: Forward between the LAN, the VM networks, the transit and the VPN (persistent)
      ansible.builtin.copy:
        content: \"net.ipv4.ip_forward = 1\\n\"
        dest: /etc/sysctl.d/90-microcloud.conf
        mode: \"0644\"
    - name: Forward between the LAN, the VM networks, the transit and the VPN (now)
      ansible.builtin.command: sysctl -w net.ipv4.ip_forward=1
      changed_when: false
    - name: Spanning networks (bridge, VXLAN port) and the transit, for systemd-networkd
      ansible.builtin.copy:
        src: \"{{ host_dir }}/network/\"
        dest: /etc/systemd/network/
        owner: root
        group: root
        mode: \"0644\"
      register: network
    - name: networkd creates them (before libvirt defines its networks on the bridges)
      ansible.builtin.command: networkctl reload
      when: network.changed
      changed_when: true
    - name: Directory for the ruleset
      ansible.builtin.file:
        path: /etc/nftables.d
        state: directory
        mode: \"0700\"
    - name: Install this host's ruleset (only the microcloud tables; others stay)
      ansible.builtin.copy:
        src: \"{{ host_dir }}/nftables.nft\"
        dest: /etc/nftables.d/microcloud.nft
        owner: root
        group: root
        mode: \"0600\"
        validate: nft -c -f %s
      register: ruleset
    - name: Apply the ruleset in one transaction
      ansible.builtin.command: nft -f /etc/nftables.d/microcloud.nft
      when: ruleset.changed
      changed_when: true
",
    );
    if let Some(v) = cluster.vpn().filter(|v| v.endpoint == VpnEndpoint::Host) {
        s.push_str(&format!(
            "    - name: WireGuard endpoint config (secret; the VPN ends on {first})
      ansible.builtin.copy:
        src: {i}.conf
        dest: /etc/wireguard/{i}.conf
        owner: root
        group: root
        mode: \"0600\"
      when: inventory_hostname == \"{first}\"
      register: wg
    - name: WireGuard endpoint up
      ansible.builtin.systemd:
        name: wg-quick@{i}.service
        enabled: true
        state: \"{{{{ 'restarted' if wg.changed else 'started' }}}}\"
      when: inventory_hostname == \"{first}\"
",
            i = v.interface
        ));
    }
    s
}
