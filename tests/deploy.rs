//! The rollout executor (fast tier) with a fake transport, machines and
//! nodes that record every call: the order of a push (stage, check, install,
//! reload, verify), a failed reload or check stopping the rollout with the
//! VM named, and a load balancer replaced only while the other one is left
//! alone.

mod support;
use flatcar_microcloud::change::{classify, Changes};
use flatcar_microcloud::deploy::{execute, BoxError, Machines, Nodes, Options, Remote, Target};
use flatcar_microcloud::{reference, services, Error};
use flatcar_topology::change::{ReplaceReason, VmChange};
use flatcar_topology::provision::MemorySecrets;
use flatcar_topology::Cluster;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use support::with_worker4;

/// Everything the fakes saw, in order: `vm: script`, `machine op vm`,
/// `node op vm`, `forget vm`.
type Log = Rc<RefCell<Vec<String>>>;

struct FakeRemote {
    log: Log,
    /// Fails a script on a VM containing this text.
    fail: Option<(String, String)>,
    vips: String,
}

impl Remote for FakeRemote {
    fn run(&mut self, t: &Target, script: &str, _: &[u8]) -> Result<String, Error> {
        self.log.borrow_mut().push(format!("{}: {script}", t.vm));
        if let Some((vm, text)) = &self.fail {
            if *vm == t.vm && script.contains(text.as_str()) {
                return Err(Error::Command {
                    command: script.to_string(),
                    status: "status 1".into(),
                    stderr: "injected failure".into(),
                });
            }
        }
        if script.starts_with("ip -4 -o addr show") {
            return Ok(self.vips.clone());
        }
        Ok(String::new())
    }
    fn forget(&mut self, t: &Target) -> Result<(), Error> {
        self.log.borrow_mut().push(format!("forget {}", t.vm));
        Ok(())
    }
}

struct Fake(Log);

impl Machines for Fake {
    fn host(&mut self) -> Result<(), BoxError> {
        self.0.borrow_mut().push("machine host".into());
        Ok(())
    }
    fn create(&mut self, vm: &str) -> Result<(), BoxError> {
        self.0.borrow_mut().push(format!("machine create {vm}"));
        Ok(())
    }
    fn wait_ready(&mut self, vm: &str) -> Result<(), BoxError> {
        self.0.borrow_mut().push(format!("machine ready {vm}"));
        Ok(())
    }
    fn replace(&mut self, vm: &str) -> Result<(), BoxError> {
        self.0.borrow_mut().push(format!("machine replace {vm}"));
        Ok(())
    }
    fn remove(&mut self, vm: &str) -> Result<(), BoxError> {
        self.0.borrow_mut().push(format!("machine remove {vm}"));
        Ok(())
    }
}

impl Nodes for Fake {
    fn cordon(&mut self, vm: &str) -> Result<(), BoxError> {
        self.0.borrow_mut().push(format!("node cordon {vm}"));
        Ok(())
    }
    fn drain(&mut self, vm: &str) -> Result<(), BoxError> {
        self.0.borrow_mut().push(format!("node drain {vm}"));
        Ok(())
    }
    fn uncordon(&mut self, vm: &str) -> Result<(), BoxError> {
        self.0.borrow_mut().push(format!("node uncordon {vm}"));
        Ok(())
    }
}

/// Runs the rollout from `old` to `new` (or `changes` if given) against
/// the fakes; the log and the result.
fn run(
    old: &Cluster,
    new: &Cluster,
    changes: Option<Changes>,
    fail: Option<(&str, &str)>,
) -> (Vec<String>, Result<(), Error>) {
    let mut secrets = MemorySecrets::default();
    let changes = match changes {
        Some(c) => c,
        None => classify(old, new, &mut secrets).expect("classifies"),
    };
    let rollout = changes.rollout(old, new);
    let composed = services::compose(new, &mut secrets).expect("composes");
    let log: Log = Rc::default();
    let vips = new
        .vips()
        .iter()
        .map(|v| format!("2: eth0    inet {}/24 scope global eth0\n", v.address))
        .collect();
    let mut remote = FakeRemote {
        log: log.clone(),
        fail: fail.map(|(a, b)| (a.to_string(), b.to_string())),
        vips,
    };
    let (mut machines, mut nodes) = (Fake(log.clone()), Fake(log.clone()));
    let options = Options {
        handover: Duration::from_secs(1),
        ssh_ready: Duration::from_millis(10),
        poll: Duration::from_millis(1),
    };
    let r = execute(
        &rollout,
        old,
        new,
        &composed,
        &mut remote,
        &mut machines,
        &mut nodes,
        &options,
        &mut |_| {},
    )
    .map(|_| ());
    let log = log.borrow().clone();
    (log, r)
}

fn pos(log: &[String], pred: impl Fn(&str) -> bool, what: &str) -> usize {
    log.iter()
        .position(|l| pred(l))
        .unwrap_or_else(|| panic!("{what} not in:\n{}", log.join("\n")))
}

#[test]
fn adding_worker4_stages_checks_installs_then_reloads_each_vm() {
    let old = reference::cluster().expect("valid");
    let new = with_worker4(&old);
    let (log, r) = run(&old, &new, None, None);
    r.expect("the rollout runs");
    let at = |p: &str| pos(&log, |l| l.starts_with(p), p);
    assert_eq!(log[0], "machine host");
    assert!(at("machine create worker4") < at("machine ready worker4"));
    assert!(at("machine ready worker4") < at("worker4: true"));
    for lb in ["lb1", "lb2"] {
        let stage = at(&format!(
            "{lb}: set -eu; umask 077; cat > '/etc/haproxy/haproxy.cfg.new'"
        ));
        let check = at(&format!(
            "{lb}: haproxy -c -q -f '/etc/haproxy/haproxy.cfg.new'"
        ));
        let install = at(&format!(
            "{lb}: set -eu; mv -f '/etc/haproxy/haproxy.cfg.new' '/etc/haproxy/haproxy.cfg'"
        ));
        let reload = at(&format!(
            "{lb}: {}",
            flatcar_topology::change::Reload::Haproxy.command()
        ));
        let verify = at(&format!(
            "{lb}: systemctl is-active --quiet haproxy.service"
        ));
        assert!(
            stage < check && check < install && install < reload && reload < verify,
            "{lb}:\n{}",
            log.join("\n")
        );
        // The staged copy keeps the Ignition entry's mode and owner.
        assert!(log[stage].contains("chown 'root':0") && log[stage].contains("chmod 644"));
    }
    assert!(at("machine ready worker4") < at("lb1: set -eu"));
    assert!(at("lb1: systemctl is-active") < at("lb2: set -eu"));
    for (vm, reload) in [
        ("infra", "docker kill --signal=USR1 coredns"),
        ("storage1", "exportfs -ra"),
        ("postgresql1", "docker kill --signal=HUP postgres"),
    ] {
        at(&format!("{vm}: {reload}"));
    }
    // pg_hba.conf is bind-mounted as one file: rewritten in place.
    assert!(log.iter().any(
        |l| l.starts_with("postgresql1: set -eu; cat '") && l.contains("pg_hba.conf.new' > '")
    ));
    // Removing it again: pushes first, then the drained node goes.
    let (log, r) = run(&new, &old, None, None);
    r.expect("the rollout runs");
    let at = |p: &str| pos(&log, |l| l.starts_with(p), p);
    assert!(
        at(&format!(
            "lb2: {}",
            flatcar_topology::change::Reload::Haproxy.command()
        )) < at("node cordon worker4")
    );
    assert!(at("node cordon worker4") < at("node drain worker4"));
    assert!(at("node drain worker4") < at("machine remove worker4"));
    assert!(at("machine remove worker4") < at("forget worker4"));
}

#[test]
fn a_failed_reload_stops_the_rollout_and_names_the_vm() {
    let old = reference::cluster().expect("valid");
    let new = with_worker4(&old);
    let (log, r) = run(
        &old,
        &new,
        None,
        Some(("lb1", "systemctl reload haproxy.service")),
    );
    let e = r.expect_err("the reload failed");
    let text = e.to_string();
    assert!(
        matches!(&e, Error::Rollout { vm, step, .. } if vm == "lb1" && step.contains("reload")),
        "{text}"
    );
    assert!(text.contains("lb1") && text.contains("systemctl reload haproxy.service"));
    let source = std::error::Error::source(&e)
        .expect("cause kept")
        .to_string();
    assert!(source.contains("injected failure"), "{source}");
    // Nothing after it: no other VM is touched, lb1 is not verified.
    assert_eq!(
        log.last().map(String::as_str),
        Some(
            format!(
                "lb1: {}",
                flatcar_topology::change::Reload::Haproxy.command()
            )
            .as_str()
        )
    );
    assert!(
        !log.iter().any(|l| l.starts_with("lb2:")),
        "{}",
        log.join("\n")
    );
}

#[test]
fn a_failed_config_check_never_reloads_and_leaves_the_target_alone() {
    let old = reference::cluster().expect("valid");
    let new = with_worker4(&old);
    let (log, r) = run(&old, &new, None, Some(("lb2", "haproxy -c")));
    let e = r.expect_err("the check failed");
    assert!(
        matches!(&e, Error::Rollout { vm, step, .. } if vm == "lb2" && step.contains("check /etc/haproxy/haproxy.cfg")),
        "{e}"
    );
    let lb2: Vec<&String> = log.iter().filter(|l| l.starts_with("lb2:")).collect();
    assert!(
        !lb2.iter()
            .any(|l| l.contains("systemctl reload") || l.contains("mv -f")),
        "{lb2:?}"
    );
    // The staged copy is removed; the live file was never touched.
    assert_eq!(
        log.last().map(String::as_str),
        Some("lb2: rm -f '/etc/haproxy/haproxy.cfg.new'")
    );
    // lb1, before it, was done completely.
    assert!(log
        .iter()
        .any(|l| l == "lb1: systemctl is-active --quiet haproxy.service"));
}

#[test]
fn load_balancers_are_replaced_one_at_a_time_while_the_other_is_left_alone() {
    let c = reference::cluster().expect("valid");
    let replace = || VmChange::Replace {
        reasons: vec![ReplaceReason::Resources],
    };
    let changes = Changes {
        vms: [
            ("lb1".to_string(), replace()),
            ("lb2".to_string(), replace()),
        ]
        .into(),
        host: false,
    };
    let (log, r) = run(&c, &c, Some(changes), None);
    r.expect("the rollout runs");
    let at = |p: &str| pos(&log, |l| l.starts_with(p), p);
    // The backup goes first; the primary hands its VIPs over before it goes.
    let stop2 = at("lb2: systemctl stop keepalived.service");
    let stop1 = at("lb1: systemctl stop keepalived.service");
    assert!(stop2 < at("machine replace lb2"));
    assert!(at("machine replace lb2") < at("forget lb2"));
    assert!(at("machine ready lb2") < at("lb2: true"));
    assert!(at("lb2: true") < stop1, "lb1 goes only once lb2 is back");
    assert!(stop1 < at("machine replace lb1"));
    // While one is down (its handover until SSH answers again), the other is
    // only asked which addresses it holds: nothing is pushed, stopped or
    // reloaded there.
    for (down, other) in [("lb2", "lb1"), ("lb1", "lb2")] {
        let from = at(&format!("{down}: systemctl stop keepalived"));
        let to = at(&format!("{down}: true"));
        for l in &log[from..to] {
            if let Some(cmd) = l.strip_prefix(&format!("{other}: ")) {
                assert_eq!(
                    cmd, "ip -4 -o addr show",
                    "{other} touched while {down} was down"
                );
            }
        }
    }
}

#[test]
fn a_handover_that_never_completes_stops_before_the_replace() {
    let c = reference::cluster().expect("valid");
    let changes = Changes {
        vms: [(
            "lb1".to_string(),
            VmChange::Replace {
                reasons: vec![ReplaceReason::Resources],
            },
        )]
        .into(),
        host: false,
    };
    // lb2 reports no address at all: the VIPs never arrive there.
    let (log, r) = run(&c, &c, Some(changes), Some(("lb2", "ip -4 -o addr show")));
    let e = r.expect_err("no takeover");
    assert!(
        matches!(&e, Error::Rollout { vm, .. } if vm == "lb2"),
        "{e}"
    );
    assert!(!log.iter().any(|l| l.starts_with("machine replace")));
}
