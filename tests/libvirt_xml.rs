//! The reference cloud's libvirt documents say what Flatcar needs
//! (pure Rust; `virt-xml-validate` is the live target `libvirt_xml_live.rs`).

use flatcar_libvirt as libvirt;
use flatcar_microcloud::reference::cluster;
use flatcar_topology::Cluster;

#[test]
fn reference_documents_are_deterministic_and_hashed() {
    let c = cluster().expect("valid");
    let docs = libvirt::documents(&c).expect("renders");
    let master1 = &docs
        .iter()
        .find(|(p, _, _)| p == "domains/master1.xml")
        .expect("master1")
        .2;
    assert!(master1.contains("<entry name=\"opt/org.flatcar-linux/config\" file=\"/var/lib/libvirt/images/microcloud/master1.ign\"/>"), "{master1}");
    assert!(master1.contains("<cpu mode=\"host-model\"/>") && master1.contains("machine=\"q35\""));
    assert!(master1.contains("fmc:owner xmlns:fmc=\"https://flatcar-microcloud.dev/xmlns/1\" cluster=\"microcloud\" hash=\"sha256-"));
    let worker1 = &docs
        .iter()
        .find(|(p, _, _)| p == "domains/worker1.xml")
        .expect("worker1")
        .2;
    assert!(worker1.contains("<serial>longhorn</serial>"), "{worker1}");
    let lb1 = &docs
        .iter()
        .find(|(p, _, _)| p == "domains/lb1.xml")
        .expect("lb1")
        .2;
    let vm = c.vm("lb1").expect("lb1");
    for nic in c.nics(vm) {
        assert!(
            lb1.contains(&format!("<mac address=\"{}\"/>", nic.mac)),
            "{lb1}"
        );
    }
    let k8s = &docs
        .iter()
        .find(|(p, _, _)| p == "networks/k8s.xml")
        .expect("k8s")
        .2;
    assert!(
        k8s.contains("<forward mode=\"open\"/>")
            && k8s.contains("<range start=\"10.17.4.100\" end=\"10.17.4.254\"/>"),
        "{k8s}"
    );
    assert!(k8s.contains("name=\"master1\" ip=\"10.17.4.21\""), "{k8s}");
    let lan = &docs
        .iter()
        .find(|(p, _, _)| p == "networks/lan.xml")
        .expect("lan")
        .2;
    assert!(
        lan.contains("<forward mode=\"bridge\"/>") && lan.contains("<bridge name=\"br0\"/>"),
        "{lan}"
    );
    // Deterministic, and the hash changes when the desired state does.
    assert_eq!(libvirt::documents(&c).expect("renders"), docs);
    let mut spec = c.into_spec();
    spec.vms
        .iter_mut()
        .find(|v| v.name.as_str() == "master1")
        .expect("m1")
        .vcpus = 4;
    let c2 = Cluster::try_from(spec).expect("valid");
    let m1b = libvirt::domain::xml(&c2, c2.vm("master1").expect("m1")).expect("xml");
    let hash = |x: &str| x.split("hash=\"").nth(1).map(|h| h[..20].to_string());
    assert_ne!(hash(master1), hash(&m1b));
}
