//! Load balancing for a flatcar-microcloud: HAProxy and Keepalived for every
//! VIP, derived from the model, correct by construction.
//!
//! - HAProxy: a TCP frontend per VIP port bound to exactly the VIP address
//!   (never `0.0.0.0`); backends are the VMs with the port's serving role, on
//!   the port the model declares (ingress ports come from the K3s settings,
//!   the single source of truth); fast health checks (`inter 100ms
//!   fastinter 20ms fall 2`, `timeout check 250ms`, `on-marked-down shutdown-sessions`, `observe
//!   layer4`, `option redispatch`); an admin stats socket.
//! - Keepalived: one VRRPv3 instance per VIP with 20 ms adverts, the VRRP
//!   process at realtime priority (`vrrp_rt_priority`), unicast
//!   peers from the model, distinct priorities from the holder order
//!   (200, 150, 100, 50: at most [`flatcar_topology::MAX_VIP_HOLDERS`]),
//!   `virtual_router_id` derived from the cluster and VIP name and unique,
//!   preemption as the model says, HAProxy liveness tracked (a watcher that
//!   notices HAProxy's exit within one advert, plus a 1 s script), the VIP
//!   configured by Keepalived itself (no `ip addr` in notify scripts), no
//!   plaintext password (VRRPv3 has no authentication; the VRRP segment is
//!   the LAN bridge).
//! - On Flatcar: both run as host-network containers pinned by digest, with
//!   `net.ipv4.ip_nonlocal_bind=1` — see [`LoadBalancers`].
//!
//! ```
//! use flatcar_topology::{net4, Cluster, HostBuilder, Role};
//! let mut c = Cluster::builder("demo", HostBuilder::new("kvm1"));
//! let lan = c.lan("lan", net4!("198.18.0.0/24"), |n| n.host_at(40));
//! let lb1 = c.vm("lb1", |v| v.role(Role::LoadBalancer).nic(&lan, 11));
//! let lb2 = c.vm("lb2", |v| v.role(Role::LoadBalancer).nic(&lan, 12));
//! for i in 1..=3u32 {
//!     c.vm(&format!("master{i}"), |v| v.role(Role::Master).nic(&lan, 20 + i));
//! }
//! c.vip("api", &lan, 10, |v| v.tcp(6443, Role::Master, 6443).holders([&lb1, &lb2]));
//! c.dns("demo.home.arpa", &[std::net::Ipv4Addr::new(198, 18, 250, 53)]); // an upstream resolver for first boot
//! c.ssh_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJNBE0yGR9doLSjjPtPCkgpn6fWfiNVJ44xnctKvgyUU admin");
//! let cluster = c.build().expect("valid");
//! let lb1 = cluster.vm("lb1").expect("lb1");
//! let cfg = flatcar_lb::haproxy::render(&cluster, lb1, &Default::default()).expect("renders");
//! assert!(cfg.contains("bind 198.18.0.10:6443"));
//! assert!(cfg.contains("server master1 198.18.0.21:6443 check"));
//! let ka = flatcar_lb::keepalived::render(&cluster, lb1, &Default::default()).expect("renders");
//! assert!(ka.contains("priority 200") && ka.contains("advert_int 0.02"));
//!
//! // On Flatcar: files, units and sysctls reach both holders through the
//! // provisioning model.
//! use flatcar_topology::provision::{Composed, MemorySecrets};
//! let nodes = Composed::from_services(&cluster, &[&flatcar_lb::LoadBalancers::default()], &mut MemorySecrets::default())
//!     .expect("no collisions")
//!     .nodes;
//! assert!(nodes["lb2"].files.contains_key("/etc/keepalived/keepalived.conf"));
//! assert!(nodes["lb2"].units.contains_key("haproxy.service"));
//! assert!(!nodes["master1"].units.contains_key("haproxy.service"));
//! ```
//!
//! # Failover: the formulas, the chosen intervals, the measurements
//!
//! Everything is derived from two intervals in [`Settings`]
//! ([`Settings::fast`]): the VRRP advert interval `A` = 20 ms and the
//! HAProxy check interval `I` = 100 ms.
//!
//! - **VIP holder crashes** (no goodbye advert): a backup takes over after
//!   the master-down interval `3 × A + skew`, `skew = (256 − priority)/256 ×
//!   A` ([`Settings::takeover`]): with `A` = 20 ms and the backup's priority
//!   150, 68 ms; then a gratuitous ARP moves the clients. 10 ms (VRRPv3's
//!   minimum; 31–38 ms takeover measured here) was tried first and
//!   **flapped**: in a 20 s soak with both cores saturated and the machine's
//!   load average at ~15, the backup missed three adverts in a row once and
//!   both VIPs moved to it and back (4 state changes), although Keepalived's
//!   VRRP process already ran at realtime priority (`vrrp_rt_priority 40`:
//!   without it, 10 ms adverts logged 136 state changes in 20 s). 20 ms adverts,
//!   the next step, held clean for 60 s and for the 600 s soak below, so
//!   they are the default.
//! - **A backend's process dies** (connections refused): the next check,
//!   at most `I` later, fails; HAProxy re-checks a server in transition every
//!   `fastinter` = `I / 5` = 20 ms and marks it DOWN after `fall` = 2
//!   failures: at most `I + (fall − 1) × fastinter` = 120 ms
//!   ([`Settings::down_after_refusal`]), `I / 2 + fastinter` ≈ 70 ms in the
//!   median. A backend whose link is gone (no RST) fails each check at its
//!   connect timeout, which HAProxy bounds by `min(timeout connect, inter)`
//!   = `I`. That bound also covers the TLS handshake of the API's HTTPS
//!   check (HAProxy counts it as part of connecting), so `I` is also the
//!   budget a loaded API server has to complete a handshake: **50 ms
//!   flapped** — in the 20 s soak with both cores saturated, 9–12 healthy
//!   API servers were marked DOWN per run ("Layer7 timeout, check duration:
//!   50ms") although a typical check took 5–14 ms. 100 ms held: 0 servers
//!   DOWN (0 and 2 single failed checks in two 20 s soaks, and the 600 s soak
//!   below), so `I` = 100 ms is the default. `timeout check`
//!   ([`Settings::check_timeout`], [`CHECK_TIMEOUT`] = 250 ms) bounds the
//!   rest of a check (the `GET /readyz` answer); a longer value does not
//!   delay detecting a dead server, whose connection fails within `I`.
//!   With other load on the machine (load average 8–13 from parallel
//!   builds and TCG guests) even 100 ms marked servers DOWN (5–55 per 20 s
//!   soak, "Layer6 timeout" after 100–219 ms: HAProxy itself waited for a
//!   core). Two changes restored a clean soak at load 8–9 (0 DOWN, 1 failed
//!   check per run): a server behind two backends is checked once (the
//!   `api-internal` servers `track` the `api` ones: half the handshakes),
//!   and HAProxy runs at `Nice=-10` ([`Settings::haproxy_nice`],
//!   [`HAPROXY_NICE`]) — as Keepalived's VRRP process runs realtime, the
//!   process that must answer on time gets the cores first.
//! - **HAProxy dies**: a watcher ([`haproxy::watch_script`], `tail --pid`
//!   polling `kill(pid, 0)` every `A`, no fork) writes `1` to
//!   [`haproxy::DOWN_FILE`] within `A`; Keepalived reads it through inotify
//!   (`track_file`, `weight 0`), enters FAULT, sends a priority-0 advert and
//!   the backup takes over after its skew time (~8 ms). The 1 s track script
//!   stays as the backstop should the watcher itself be gone. Faster
//!   mechanisms were checked on this Debian 12 machine and rejected:
//!   `vrrp_track_process` needs the kernel's process-events connector, which
//!   only answers in the initial network namespace ("Failed to set/clear
//!   process event listen — Connection refused" inside a namespace, and
//!   Debian's Keepalived lacks `net_namespace`), so the lab could not
//!   exercise it; a track script's `interval` and `timeout` take whole
//!   seconds only ("invalid number '0.02'").
//!
//! Measured with `cargo bench --features live --bench failover` (root; network
//! namespaces, real `haproxy` 2.6 and `keepalived` 2.2.7 from the generated
//! configs on the test address plan, the generated watcher script; a fresh
//! lab per run; medians of 7; 2-core machine shared with other builds,
//! 2026-11-26). The probing client connects with a 20 ms connect timeout
//! and retries (lab round trip ~0.1 ms), so a SYN lost during a move costs
//! at most 20 ms rather than the kernel's 1 s SYN retransmit. "Hand-written"
//! is the same generator with [`Settings::hand_written`] (VRRPv2 `advert_int
//! 1`, `check inter 3s fall 3 rise 2`, no watcher).
//!
//! | event → outcome | generated | hand-written | ratio |
//! |---|---|---|---|
//! | (a) VIP holder crashes (links down, then SIGKILL: no goodbye advert) → first client connection to the VIP | **64 ms** (56–170; predicted takeover 68 ms) | 3,275 ms | 51.1× |
//! | (b) a master's listener dies → HAProxy marks it DOWN (stats socket, polled every 10 ms) | **74 ms** (37–126; bound 120 ms + polling) | 8,605 ms | 116× |
//! | (c) LB1's HAProxy dies → first client connection through LB2 | **49 ms** (36–125) | 1,409 ms (572–2,037) | 28.9× |
//!
//! Load average during the run: 7–9 on 2 cores (other builds on the
//! machine, 2026-11-26), so these include scheduling delays; the bench
//! prints every run, the predictions and the load average. With 50 ms
//! checks (before the back-off above) (b) measured 59 ms (47–74). Before the
//! back-off from 10 ms adverts, (a) measured 42–45 ms in the median (load
//! ~13). In (c) the probe's 100 ms read timeout matters: a connection LB1
//! accepted in the few ms while HAProxy was dying is neither answered nor
//! reset (with a 1 s read timeout 2–3 of 7 runs took ~1 s).
//!
//! **No false alarms**: `cargo bench --features live --bench failover --
//! --soak 600` (also the second half of a plain run) keeps
//! both cores busy (one CPU burner per core, bulk TCP through the LAN bridge
//! that carries VRRP) while two clients hammer both VIPs, and counts VIP
//! address events (`ip monitor address` on both LBs), Keepalived state
//! transitions, servers marked DOWN (`chkdown` on both stats sockets) and
//! client errors:
//!
//! ```text
//! soak 600 s: cpu 99.9% busy (2 cores, loadavg 10.86 9.86 8.41); 82272 requests, 0 client errors (slowest 197 ms); 0 VIP moves, 0 VRRP state changes, 0 backends marked DOWN (7 failed checks); 398.0 GB bulk on the LAN
//! ```
//!
//! (2026-11-26, final settings: 100 ms checks, `api-internal` tracking
//! `api`, HAProxy at `Nice=-10`, track script `fall 3`; load average 3.4
//! before, ~10 at the end with other jobs on the machine. The medians above
//! were measured before the last three changes, at 1f710ab.)
#![deny(missing_docs)]

mod error;
mod flatcar;
pub mod haproxy;
pub mod keepalived;
mod settings;

pub use error::Error;
pub use flatcar::{
    haproxy_sysext, keepalived_sysext, LoadBalancers, HAPROXY_VERSION, KEEPALIVED_BIN,
    KEEPALIVED_ENV, KEEPALIVED_VERSION,
};
pub use settings::{Settings, CHECK_TIMEOUT, HAPROXY_NICE, VRRP_RT_PRIORITY};
