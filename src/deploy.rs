//! Carrying out a rolling plan ([`flatcar_topology::rollout::Rollout`]) on
//! the running cloud, one step at a time, stopping at the first failure
//! with the VM and the step that failed.
//!
//! The executor does no I/O of its own: it talks to the VMs through three
//! small traits, so tests substitute any of them.
//! - [`Remote`] runs a shell script as root on a VM. [`OpenSsh`] is the
//!   real one: the OpenSSH client (`ssh`) with the cluster's admin key, in
//!   batch mode (never a prompt), `StrictHostKeyChecking=accept-new` against
//!   a `known_hosts` file of its own (see [`OpenSsh`]).
//! - [`Machines`] creates, replaces, removes and waits for VMs and applies
//!   the KVM host's part: libvirt in the example (`full_cluster --apply`).
//! - [`Nodes`] cordons, drains and uncordons K3s nodes: [`K3sOverSsh`] runs
//!   `k3s kubectl` on a master over [`Remote`].
//!
//! What each step does:
//! - **push**: every changed file is staged next to its target
//!   (`<path>.new`, same filesystem, the mode and owner of the file's
//!   Ignition entry, synced), checked where the daemon has a checker
//!   (`haproxy -c`, `keepalived -t`, [`Reload::check`]), and only when every
//!   staged file of the VM passed are they renamed over their targets (one
//!   script: all or none); then each reload runs once ([`Reload::command`])
//!   and its service is checked to run ([`Reload::verify`]). A check that
//!   fails removes the staged files and reloads nothing.
//! - **handover**: Keepalived stops on the holder that goes (a graceful stop
//!   sends priority 0, the other holder takes over at once), and the step
//!   waits until the other holder has every VIP address.
//! - **replace / create / remove / host**: [`Machines`]; after a replace
//!   or remove the VM's old host key is forgotten ([`Remote::forget`]): a
//!   new VM generates new host keys at first boot.
//! - **wait ready**: [`Machines::wait_ready`], then SSH must answer with
//!   the admin key.
//! - **cordon / drain / uncordon**: [`Nodes`].
//!
//! ```
//! use flatcar_microcloud::deploy::{execute, Machines, Nodes, Options, Remote, Target};
//! use flatcar_microcloud::Error;
//! use flatcar_topology::rollout::Rollout;
//! struct Nothing;
//! impl Remote for Nothing {
//!     fn run(&mut self, _: &Target, _: &str, _: &[u8]) -> Result<String, Error> { Ok(String::new()) }
//! }
//! let c = flatcar_microcloud::reference::cluster().expect("valid");
//! let composed = flatcar_microcloud::services::compose(&c, &mut flatcar_microcloud::BundleSecrets::default()).expect("composes");
//! let mut ssh = Nothing;
//! let report = execute(&Rollout::default(), &c, &c, &composed, &mut ssh, &mut (), &mut (), &Options::default(), &mut |_| {})
//!     .expect("an empty plan does nothing");
//! assert!(report.steps.is_empty());
//! # let _: Option<&dyn Machines> = None; let _: Option<&dyn Nodes> = None;
//! ```

use crate::change::live_reload;
use crate::Error;
use flatcar_topology::change::Reload;
use flatcar_topology::provision::{Composed, Contents};
use flatcar_topology::rollout::{Rollout, Step};
use flatcar_topology::Cluster;
use std::collections::BTreeSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A boxed error from a [`Machines`] or [`Nodes`] implementation.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A VM the executor logs in to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// VM name.
    pub vm: String,
    /// The address it is reached at (its first NIC's).
    pub address: Ipv4Addr,
    /// The admin user (`core` on Flatcar; commands run through `sudo`
    /// unless it is `root`).
    pub user: String,
}

impl Target {
    /// The target for `vm` of `cluster` (its first NIC's address, the
    /// cluster's admin user), or `None` when the VM has no NIC.
    pub fn of(cluster: &Cluster, vm: &str) -> Option<Target> {
        let v = cluster.vm(vm)?;
        let nic = cluster.nics(v).into_iter().next()?;
        Some(Target {
            vm: vm.to_string(),
            address: nic.address,
            user: cluster.spec().admin.user.to_string(),
        })
    }
}

/// Runs commands on VMs.
pub trait Remote {
    /// Runs `script` (POSIX `sh`) as root on `target` with `stdin` as its
    /// standard input; its standard output, or [`Error::Command`] when it
    /// exits non-zero.
    fn run(&mut self, target: &Target, script: &str, stdin: &[u8]) -> Result<String, Error>;

    /// Forgets `target`'s host key: it was replaced or removed, and a new VM
    /// at that address has new keys.
    fn forget(&mut self, target: &Target) -> Result<(), Error> {
        let _ = target;
        Ok(())
    }
}

/// The VM lifecycle and the KVM host (libvirt in the example).
pub trait Machines {
    /// Applies the KVM host's part (nftables, WireGuard).
    fn host(&mut self) -> Result<(), BoxError>;
    /// Starts a new VM (its definition and Ignition config are in place).
    fn create(&mut self, vm: &str) -> Result<(), BoxError>;
    /// Waits until the VM reports up (its serial console's ready line).
    fn wait_ready(&mut self, vm: &str) -> Result<(), BoxError>;
    /// Stops the VM, gives it a fresh root disk, its new definition and
    /// Ignition config, and starts it.
    fn replace(&mut self, vm: &str) -> Result<(), BoxError>;
    /// Stops the VM and deletes it with its volumes.
    fn remove(&mut self, vm: &str) -> Result<(), BoxError>;
}

/// K3s node operations.
pub trait Nodes {
    /// No new pods on `node`.
    fn cordon(&mut self, node: &str) -> Result<(), BoxError>;
    /// Evicts `node`'s pods and waits until they run elsewhere.
    fn drain(&mut self, node: &str) -> Result<(), BoxError>;
    /// Lets pods onto `node` again.
    fn uncordon(&mut self, node: &str) -> Result<(), BoxError>;
}

/// No machines: every lifecycle step fails (for plans with live pushes
/// only, and the doc example).
impl Machines for () {
    fn host(&mut self) -> Result<(), BoxError> {
        Err("no machine control configured".into())
    }
    fn create(&mut self, _: &str) -> Result<(), BoxError> {
        Err("no machine control configured".into())
    }
    fn wait_ready(&mut self, _: &str) -> Result<(), BoxError> {
        Err("no machine control configured".into())
    }
    fn replace(&mut self, _: &str) -> Result<(), BoxError> {
        Err("no machine control configured".into())
    }
    fn remove(&mut self, _: &str) -> Result<(), BoxError> {
        Err("no machine control configured".into())
    }
}

/// No K3s: every node step fails.
impl Nodes for () {
    fn cordon(&mut self, _: &str) -> Result<(), BoxError> {
        Err("no K3s access configured".into())
    }
    fn drain(&mut self, _: &str) -> Result<(), BoxError> {
        Err("no K3s access configured".into())
    }
    fn uncordon(&mut self, _: &str) -> Result<(), BoxError> {
        Err("no K3s access configured".into())
    }
}

/// Timeouts of the waiting steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How long a handover may take until the other holder has every VIP.
    pub handover: Duration,
    /// How long SSH may take to answer after a VM reported ready.
    pub ssh_ready: Duration,
    /// Poll interval of both waits.
    pub poll: Duration,
}

impl Default for Options {
    /// 30 s handover, 120 s for SSH, polled every 50 ms.
    fn default() -> Self {
        Options {
            handover: Duration::from_secs(30),
            ssh_ready: Duration::from_secs(120),
            poll: Duration::from_millis(50),
        }
    }
}

/// Progress of [`execute`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Step `index` (from 0) begins.
    Started(usize, Step),
    /// Step `index` is done after this long.
    Done(usize, Step, Duration),
}

/// What [`execute`] did: every step with its time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// The steps, in order, each with how long it took.
    pub steps: Vec<(Step, Duration)>,
}

/// Quotes `s` for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn failed(vm: &str, step: impl Into<String>, source: impl Into<BoxError>) -> Error {
    Error::Rollout {
        vm: vm.to_string(),
        step: step.into(),
        source: source.into(),
    }
}

/// The target for `vm`: the new model's, else the old one's (a VM that
/// leaves).
fn target(new: &Cluster, old: &Cluster, vm: &str) -> Result<Target, Error> {
    Target::of(new, vm)
        .or_else(|| Target::of(old, vm))
        .ok_or_else(|| failed(vm, "find", "not in either model or without a NIC"))
}

/// Carries `rollout` (planned from `old` to `new`) out, step by step;
/// `composed` is the new model's composition (the files a push copies).
/// Stops at the first failing step with [`Error::Rollout`] naming the VM
/// and the step; the steps before it stay done.
#[allow(clippy::too_many_arguments)]
pub fn execute(
    rollout: &Rollout,
    old: &Cluster,
    new: &Cluster,
    composed: &Composed,
    remote: &mut dyn Remote,
    machines: &mut dyn Machines,
    nodes: &mut dyn Nodes,
    options: &Options,
    progress: &mut dyn FnMut(Event),
) -> Result<Report, Error> {
    let mut report = Report::default();
    for (i, step) in rollout.steps.iter().enumerate() {
        progress(Event::Started(i, step.clone()));
        let t0 = Instant::now();
        match step {
            Step::Host => machines
                .host()
                .map_err(|e| failed("host", "host part", e))?,
            Step::Create { vm } => machines.create(vm).map_err(|e| failed(vm, "create", e))?,
            Step::WaitReady { vm } => {
                machines
                    .wait_ready(vm)
                    .map_err(|e| failed(vm, "wait ready", e))?;
                let t = target(new, old, vm)?;
                wait_ssh(remote, &t, options)?;
            }
            Step::Cordon { vm } => nodes.cordon(vm).map_err(|e| failed(vm, "cordon", e))?,
            Step::Drain { vm } => nodes.drain(vm).map_err(|e| failed(vm, "drain", e))?,
            Step::Uncordon { vm } => nodes.uncordon(vm).map_err(|e| failed(vm, "uncordon", e))?,
            Step::Push { vm, files, .. } => {
                let t = target(new, old, vm)?;
                push(remote, &t, composed, files)?;
            }
            Step::HandOver { from, to, vips } => {
                handover(remote, new, old, from, to, vips, options)?;
            }
            Step::Replace { vm, .. } => {
                machines.replace(vm).map_err(|e| failed(vm, "replace", e))?;
                let t = target(new, old, vm)?;
                remote
                    .forget(&t)
                    .map_err(|e| failed(vm, "forget old host key", e))?;
            }
            Step::Remove { vm } => {
                machines.remove(vm).map_err(|e| failed(vm, "remove", e))?;
                let t = target(new, old, vm)?;
                remote
                    .forget(&t)
                    .map_err(|e| failed(vm, "forget old host key", e))?;
            }
            other => {
                return Err(failed(
                    "-",
                    other.to_string(),
                    "a step this executor does not know",
                ))
            }
        }
        let took = t0.elapsed();
        progress(Event::Done(i, step.clone(), took));
        report.steps.push((step.clone(), took));
    }
    Ok(report)
}

/// Polls until SSH answers on `t`.
fn wait_ssh(remote: &mut dyn Remote, t: &Target, options: &Options) -> Result<(), Error> {
    let start = Instant::now();
    loop {
        match remote.run(t, "true", b"") {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() >= options.ssh_ready => {
                return Err(failed(&t.vm, "wait for SSH", e));
            }
            Err(_) => std::thread::sleep(options.poll),
        }
    }
}

/// One file's staging script: `<path>.new` with the Ignition entry's mode
/// and owner, synced to disk.
fn stage_script(path: &str, mode: u32, owner: &str) -> String {
    let new = sh_quote(&format!("{path}.new"));
    format!(
        "set -eu; umask 077; cat > {new}; chown {owner}:0 {new}; chmod {mode:o} {new}; sync {new}",
        owner = sh_quote(owner)
    )
}

/// Copies `files` (paths on the VM) from the new composition to `t`,
/// checks, installs, reloads, verifies.
fn push(
    remote: &mut dyn Remote,
    t: &Target,
    composed: &Composed,
    files: &[String],
) -> Result<(), Error> {
    let vm = t.vm.as_str();
    let node = composed
        .nodes
        .get(vm)
        .ok_or_else(|| failed(vm, "push", "not in the new model's composition"))?;
    let mut staged: Vec<(&str, Reload)> = Vec::new();
    let unstage = |remote: &mut dyn Remote, staged: &[(&str, Reload)]| {
        if staged.is_empty() {
            return;
        }
        let paths: Vec<String> = staged
            .iter()
            .map(|(p, _)| sh_quote(&format!("{p}.new")))
            .collect();
        let _ = remote.run(t, &format!("rm -f {}", paths.join(" ")), b"");
    };
    for path in files {
        let Some(reload) = live_reload(path) else {
            unstage(remote, &staged);
            return Err(failed(
                vm,
                format!("push {path}"),
                "not a file that may change on a running VM",
            ));
        };
        let file = node.files.get(path).ok_or_else(|| {
            failed(
                vm,
                format!("push {path}"),
                "not in the VM's new configuration",
            )
        })?;
        let Contents::Inline(bytes) = &file.contents else {
            unstage(remote, &staged);
            return Err(failed(
                vm,
                format!("push {path}"),
                "only inline, non-secret files are pushed",
            ));
        };
        let owner = file.owner.as_deref().unwrap_or("root");
        if let Err(e) = remote.run(t, &stage_script(path, file.mode, owner), bytes) {
            unstage(remote, &staged);
            return Err(failed(vm, format!("copy {path}"), e));
        }
        staged.push((path.as_str(), reload));
        if let Some(check) = reload.check() {
            let cmd = format!("{check} {}", sh_quote(&format!("{path}.new")));
            if let Err(e) = remote.run(t, &cmd, b"") {
                unstage(remote, &staged);
                return Err(failed(vm, format!("check {path} ({check})"), e));
            }
        }
    }
    // Every staged file passed: all of them replace their targets in one go.
    let mut install = String::from("set -eu");
    for (p, reload) in &staged {
        let (new, target) = (sh_quote(&format!("{p}.new")), sh_quote(p));
        if reload.in_place() {
            install.push_str(&format!("; cat {new} > {target}; rm -f {new}"));
        } else {
            install.push_str(&format!("; mv -f {new} {target}"));
        }
    }
    if !staged.is_empty() {
        if let Err(e) = remote.run(t, &install, b"") {
            unstage(remote, &staged);
            return Err(failed(vm, "install the staged files", e));
        }
    }
    let reloads: BTreeSet<Reload> = staged.iter().map(|(_, r)| *r).collect();
    for r in reloads {
        remote
            .run(t, r.command(), b"")
            .map_err(|e| failed(vm, format!("reload ({})", r.command()), e))?;
        if let Some(v) = r.verify() {
            remote
                .run(t, v, b"")
                .map_err(|e| failed(vm, format!("verify ({v})"), e))?;
        }
    }
    Ok(())
}

/// Stops Keepalived on `from` and waits until `to` holds every one of `vips`.
fn handover(
    remote: &mut dyn Remote,
    new: &Cluster,
    old: &Cluster,
    from: &str,
    to: &str,
    vips: &[String],
    options: &Options,
) -> Result<(), Error> {
    let step = format!("hand {} over to {to}", vips.join(", "));
    let addrs: Vec<Ipv4Addr> = vips
        .iter()
        .map(|v| {
            new.vip(v)
                .or_else(|| old.vip(v))
                .map(|v| v.address)
                .ok_or_else(|| failed(from, step.clone(), format!("no VIP {v}")))
        })
        .collect::<Result<_, _>>()?;
    let (tf, tt) = (target(new, old, from)?, target(new, old, to)?);
    remote
        .run(&tf, "systemctl stop keepalived.service", b"")
        .map_err(|e| failed(from, format!("{step}: stop keepalived"), e))?;
    let start = Instant::now();
    loop {
        let held = remote
            .run(&tt, "ip -4 -o addr show", b"")
            .map_err(|e| failed(to, format!("{step}: list addresses"), e))?;
        let missing: Vec<String> = addrs
            .iter()
            .filter(|a| !held.contains(&format!(" {a}/")))
            .map(ToString::to_string)
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if start.elapsed() >= options.handover {
            return Err(failed(
                to,
                step,
                format!(
                    "does not hold {} after {:.1} s",
                    missing.join(", "),
                    options.handover.as_secs_f64()
                ),
            ));
        }
        std::thread::sleep(options.poll);
    }
}

/// The OpenSSH client: `ssh -i KEY` in batch mode (no password or host-key
/// prompt can hang the rollout), the admin user, `sudo -n` unless root.
///
/// Host keys: a VM generates its SSH host keys at first boot, so nobody
/// knows them in advance. The transport keeps its own `known_hosts` (the
/// example: `<out>.known_hosts` beside the bundle) with
/// `StrictHostKeyChecking=accept-new`: the first contact records the VM's
/// key, every later one must match it (a changed key fails the step), and
/// [`Remote::forget`] drops it when the executor itself replaced the VM.
///
/// Connections: with a [`OpenSsh::control_dir`], every VM gets one SSH
/// connection that later commands reuse (`ControlMaster=auto`,
/// `ControlPersist`): a push is five commands, and a new SSH handshake costs
/// ~0.3-1 s on a loaded machine, a reused connection a few ms.
/// [`Remote::forget`] closes a replaced VM's connection, [`OpenSsh::close`]
/// every one (call it when done), and `ServerAliveInterval` ends one whose
/// VM vanished within seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSsh {
    /// The private key file (0600).
    pub key: PathBuf,
    /// The `known_hosts` file this transport reads and writes.
    pub known_hosts: PathBuf,
    /// `ConnectTimeout`.
    pub connect_timeout: Duration,
    /// The SSH port.
    pub port: u16,
    /// A private directory (0700) for the reused connections' sockets;
    /// `None`: a new connection per command.
    pub control_dir: Option<PathBuf>,
    /// The VMs a connection may be open to.
    opened: BTreeSet<(String, Ipv4Addr, String)>,
}

impl OpenSsh {
    /// Port 22, 5 s connect timeout.
    pub fn new(key: PathBuf, known_hosts: PathBuf) -> Self {
        OpenSsh {
            key,
            known_hosts,
            connect_timeout: Duration::from_secs(5),
            port: 22,
            control_dir: None,
            opened: BTreeSet::new(),
        }
    }

    /// Reuses one connection per VM, its socket in `dir` (created 0700).
    pub fn reuse_connections(mut self, dir: PathBuf) -> Result<Self, Error> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(crate::error::io(&dir))?;
        self.control_dir = Some(dir);
        Ok(self)
    }

    /// Closes every reused connection (`ssh -O exit`).
    pub fn close(&mut self) {
        for (vm, address, user) in std::mem::take(&mut self.opened) {
            self.exit(&Target { vm, address, user });
        }
    }

    fn exit(&self, target: &Target) {
        if self.control_dir.is_none() {
            return;
        }
        let mut args = self.args(target, "");
        args.pop();
        let _ = Command::new("ssh")
            .args(["-O", "exit"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// The `ssh` arguments for `target` running `remote_command`.
    pub fn args(&self, target: &Target, remote_command: &str) -> Vec<String> {
        let o = |s: String| ["-o".to_string(), s];
        let mut v = vec!["-i".to_string(), self.key.display().to_string()];
        for opt in [
            "BatchMode=yes".to_string(),
            "IdentitiesOnly=yes".to_string(),
            "StrictHostKeyChecking=accept-new".to_string(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "GlobalKnownHostsFile=/dev/null".to_string(),
            format!("ConnectTimeout={}", self.connect_timeout.as_secs().max(1)),
            "LogLevel=ERROR".to_string(),
            "ServerAliveInterval=2".to_string(),
            "ServerAliveCountMax=3".to_string(),
        ] {
            v.extend(o(opt));
        }
        if let Some(dir) = &self.control_dir {
            for opt in [
                "ControlMaster=auto".to_string(),
                format!("ControlPath={}/%C", dir.display()),
                "ControlPersist=60".to_string(),
            ] {
                v.extend(o(opt));
            }
        }
        v.extend([
            "-p".to_string(),
            self.port.to_string(),
            "-l".to_string(),
            target.user.clone(),
            "--".to_string(),
            target.address.to_string(),
            remote_command.to_string(),
        ]);
        v
    }
}

impl Remote for OpenSsh {
    fn run(&mut self, target: &Target, script: &str, stdin: &[u8]) -> Result<String, Error> {
        let remote = if target.user == "root" {
            format!("sh -c {}", sh_quote(script))
        } else {
            format!("sudo -n sh -c {}", sh_quote(script))
        };
        if self.control_dir.is_some() {
            self.opened
                .insert((target.vm.clone(), target.address, target.user.clone()));
        }
        let mut child = Command::new("ssh")
            .args(self.args(target, &remote))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Io {
                path: PathBuf::from("ssh"),
                source,
            })?;
        if let Some(mut input) = child.stdin.take() {
            // A command that does not read its input closes the pipe early:
            // not an error of ours, its exit status tells.
            let _ = input.write_all(stdin);
        }
        let out = child.wait_with_output().map_err(|source| Error::Io {
            path: PathBuf::from("ssh"),
            source,
        })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(Error::Command {
                command: script.to_string(),
                status: out
                    .status
                    .code()
                    .map_or_else(|| "a signal".to_string(), |c| format!("status {c}")),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    fn forget(&mut self, target: &Target) -> Result<(), Error> {
        // The connection to the VM that was there goes first.
        self.exit(target);
        self.opened
            .retain(|(_, a, u)| (*a, u.as_str()) != (target.address, target.user.as_str()));
        if !self.known_hosts.exists() {
            return Ok(());
        }
        let host = if self.port == 22 {
            target.address.to_string()
        } else {
            format!("[{}]:{}", target.address, self.port)
        };
        let out = Command::new("ssh-keygen")
            .arg("-R")
            .arg(&host)
            .arg("-f")
            .arg(&self.known_hosts)
            .output()
            .map_err(|source| Error::Io {
                path: PathBuf::from("ssh-keygen"),
                source,
            })?;
        if out.status.success() {
            // ssh-keygen keeps the previous file as `<file>.old`.
            let mut old = self.known_hosts.clone().into_os_string();
            old.push(".old");
            let _ = std::fs::remove_file(old);
            Ok(())
        } else {
            Err(Error::Command {
                command: format!("ssh-keygen -R {host}"),
                status: format!("{}", out.status),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }
}

/// K3s node operations run with `k3s kubectl` on a master over [`Remote`].
pub struct K3sOverSsh<R: Remote> {
    /// The transport.
    pub remote: R,
    /// The master `kubectl` runs on.
    pub master: Target,
    /// `kubectl drain --timeout`.
    pub drain_timeout: Duration,
}

impl<R: Remote> K3sOverSsh<R> {
    fn kubectl(&mut self, args: &str) -> Result<(), BoxError> {
        self.remote
            .run(&self.master, &format!("k3s kubectl {args}"), b"")
            .map(|_| ())
            .map_err(Into::into)
    }
}

impl<R: Remote> Nodes for K3sOverSsh<R> {
    fn cordon(&mut self, node: &str) -> Result<(), BoxError> {
        self.kubectl(&format!("cordon {}", sh_quote(node)))
    }
    fn drain(&mut self, node: &str) -> Result<(), BoxError> {
        let t = self.drain_timeout.as_secs();
        self.kubectl(&format!(
            "drain --ignore-daemonsets --delete-emptydir-data --timeout={t}s {}",
            sh_quote(node)
        ))
    }
    fn uncordon(&mut self, node: &str) -> Result<(), BoxError> {
        self.kubectl(&format!("uncordon {}", sh_quote(node)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
    }

    #[test]
    fn ssh_is_batch_mode_with_its_own_known_hosts() {
        let ssh = OpenSsh::new("/k".into(), "/kh".into());
        let t = Target {
            vm: "lb1".into(),
            address: Ipv4Addr::new(198, 18, 0, 11),
            user: "core".into(),
        };
        let a = ssh.args(&t, "true").join(" ");
        assert!(a.contains("BatchMode=yes") && a.contains("UserKnownHostsFile=/kh"));
        assert!(a.ends_with("-l core -- 198.18.0.11 true"), "{a}");
    }
}
