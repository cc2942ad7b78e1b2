//! Every VM of the reference cloud gets an Ignition config with its own
//! hostname and addresses, deterministic bytes. (`ignition-validate`
//! accepting every one is the live target `ignition_live.rs`.)

use flatcar_ignition::IgnitionJson;
use flatcar_microcloud::reference::cluster;
use flatcar_topology::provision::MemorySecrets;

#[test]
fn every_reference_vm_has_its_hostname_and_address() {
    let c = cluster().expect("valid");
    let composed =
        flatcar_microcloud::services::compose(&c, &mut MemorySecrets::default()).expect("composes");
    assert_eq!(composed.nodes.len(), c.vms().len());
    for vm in c.vms() {
        let node = &composed.nodes[vm.name.as_str()];
        let json = node.ignition_json().expect("renders");
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        let files = v["storage"]["files"].as_array().expect("files");
        let hostname = files
            .iter()
            .find(|f| f["path"] == "/etc/hostname")
            .expect("hostname file");
        assert_eq!(hostname["mode"], 420);
        let text = node.files["/etc/hostname"].clone();
        assert_eq!(
            format!("{:?}", text.contents),
            "Inline(".to_string() + &(vm.name.as_str().len() + 1).to_string() + " bytes)"
        );
        for nic in &vm.nics {
            let net = node
                .files
                .values()
                .filter(|f| f.path.ends_with(".network"))
                .map(|f| match &f.contents {
                    flatcar_topology::provision::Contents::Inline(b) => {
                        String::from_utf8_lossy(b).to_string()
                    }
                    _ => String::new(),
                })
                .collect::<String>();
            assert!(
                net.contains(&format!("Address={}/24", nic.address)),
                "{}: {net}",
                vm.name
            );
        }
    }
    // Deterministic bytes.
    let mut secrets = MemorySecrets::default();
    let first = flatcar_microcloud::services::compose(&c, &mut secrets).expect("composes");
    let again = flatcar_microcloud::services::compose(&c, &mut secrets).expect("composes");
    for (name, node) in &first.nodes {
        assert_eq!(
            node.ignition_json().ok(),
            again.nodes[name].ignition_json().ok(),
            "{name}"
        );
    }
}

#[test]
fn lan_only_vms_route_nat_networks_through_the_host() {
    let c = cluster().expect("valid");
    let infra = c.vm("infra").expect("infra");
    let text = flatcar_ignition::base::network_file(&c, infra, 0).expect("nic 0");
    for dst in ["10.17.3.0/24", "10.17.4.0/24", "10.17.9.0/24"] {
        assert!(
            text.contains(&format!("Destination={dst}\nGateway=192.168.0.40")),
            "{text}"
        );
    }
    let lb1 = c.vm("lb1").expect("lb1");
    let text = flatcar_ignition::base::network_file(&c, lb1, 0).expect("nic 0");
    assert!(
        !text.contains("Destination=10.17.4.0/24"),
        "lb1 is on k8s directly:\n{text}"
    );
    assert!(text.contains("Gateway=192.168.0.1\n"), "{text}");
}
