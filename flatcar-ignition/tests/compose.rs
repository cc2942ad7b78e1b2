//! Provisioning: collisions between services (and with the base service)
//! are reported naming both; secrets mark the node. The `ignition-validate`
//! check of random topologies is the live target `ignition_validate`.

#[path = "../../flatcar-topology/tests/common/mod.rs"]
mod common;

use flatcar_ignition::compose;
use flatcar_topology::provision::{
    Contributions, File, MemorySecrets, ProvisionError, Service, Unit,
};
use flatcar_topology::{Cluster, Error, Secret};

struct Writes(&'static str, &'static str);

impl Service for Writes {
    fn name(&self) -> &'static str {
        self.0
    }
    fn contribute(&self, cluster: &Cluster, out: &mut Contributions<'_>) -> Result<(), Error> {
        if let Some(vm) = cluster.vms().first() {
            out.file(&vm.name, File::text(self.1, 0o644, "x\n"));
            out.unit(
                &vm.name,
                Unit::dropin("docker.service", &format!("{}.conf", self.0), "[Unit]\n"),
            );
        }
        Ok(())
    }
}

fn small() -> Cluster {
    common::build(&common::Shape {
        nats: 1,
        masters: 3,
        workers: 1,
        extra: vec![],
        lbs: 2,
        with_vpn: false,
    })
}

#[test]
fn two_services_writing_one_path_is_an_error_naming_both() {
    let c = small();
    let err = compose(
        &c,
        &[
            &Writes("alpha", "/etc/x.conf"),
            &Writes("beta", "/etc/x.conf"),
        ],
        &mut MemorySecrets::default(),
    )
    .expect_err("collision");
    let Error::Provision(problems) = &err else {
        panic!("{err}")
    };
    assert!(
        problems.iter().any(|p| matches!(
            p,
            ProvisionError::Collision {
                first: "alpha",
                second: "beta",
                kind: "file",
                ..
            }
        )),
        "{err}"
    );
    assert!(err.to_string().contains("/etc/x.conf"), "{err}");
    // Different dropins for the same unit do not collide.
    compose(
        &c,
        &[
            &Writes("alpha", "/etc/a.conf"),
            &Writes("beta", "/etc/b.conf"),
        ],
        &mut MemorySecrets::default(),
    )
    .expect("no collision");
    // A service colliding with the base service is reported too.
    let err = compose(
        &c,
        &[&Writes("gamma", "/etc/hostname")],
        &mut MemorySecrets::default(),
    )
    .expect_err("collision");
    assert!(err.to_string().contains("base and gamma"), "{err}");
}

struct Hostile;
impl Service for Hostile {
    fn name(&self) -> &'static str {
        "hostile"
    }
    fn contribute(&self, cluster: &Cluster, out: &mut Contributions<'_>) -> Result<(), Error> {
        let vm = &cluster.vms()[0].name;
        out.file(vm, File::text("/etc/../shadow", 0o644, ""));
        out.file(vm, File::text("relative/path", 0o644, ""));
        out.file(
            vm,
            File::remote("/opt/bin/x", 0o755, "http://insecure", &"a".repeat(128)),
        );
        out.file(
            vm,
            File::remote("/opt/bin/y", 0o755, "https://example.org/y", "short"),
        );
        out.unit(vm, Unit::enabled("evil\n.service", ""));
        out.sysctl(vm, "net.ipv4.ip_forward\n", "1");
        Ok(())
    }
}

#[test]
fn hostile_contributions_are_rejected_each() {
    let err = compose(&small(), &[&Hostile], &mut MemorySecrets::default()).expect_err("rejected");
    let Error::Provision(p) = &err else {
        panic!("{err}")
    };
    assert_eq!(p.len(), 6, "{err}");
    for line in err.to_string().lines() {
        assert!(line.starts_with("service hostile:"), "{line}");
    }
}

struct Token;
impl Service for Token {
    fn name(&self) -> &'static str {
        "token"
    }
    fn contribute(&self, cluster: &Cluster, out: &mut Contributions<'_>) -> Result<(), Error> {
        let s = out.secret("tok", &|| Ok(Secret::new("s3cr3t-value")))?;
        out.file(&cluster.vms()[0].name, File::secret("/etc/tok", 0o644, s));
        Ok(())
    }
}

#[test]
fn secret_files_are_0600_and_mark_the_node() {
    let c = small();
    let composed = compose(&c, &[&Token], &mut MemorySecrets::default()).expect("composes");
    let first = &composed.nodes[c.vms()[0].name.as_str()];
    assert!(first.has_secrets());
    assert_eq!(first.files["/etc/tok"].mode, 0o600);
    assert!(!format!("{composed:?}").contains("s3cr3t-value"));
    assert!(!composed.nodes[c.vms()[1].name.as_str()].has_secrets());
}
