//! Live (validator, feature `live`): the Terraform export's per-domain XSLT,
//! run by the real `xsltproc` on the domain XML the provider would generate
//! (our domain XML without its `<serial>` elements), gives every data disk
//! exactly the serial the built-in domain XML has, so Ignition's
//! `/dev/disk/by-id/virtio-<name>` exists either way. A missing tool fails.
//! (`terraform validate` itself needs the provider, which cannot be fetched
//! here; the schema pin is checked in the fast tier.)

use flatcar_microcloud::reference::cluster;
use flatcar_microcloud::{Bundle, BundleSecrets};
use std::process::Command;

fn strip_serials(xml: &str) -> String {
    let mut out = String::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<serial>") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("</serial>").expect("closed") + start + "</serial>".len();
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn xslt_gives_data_disks_the_serials_ignition_addresses() {
    let c = cluster().expect("valid");
    let b = Bundle::render(&c, &mut BundleSecrets::default()).expect("renders");
    let tf: serde_json::Value =
        serde_json::from_slice(&b.files()["terraform/main.tf.json"].contents).expect("json");
    /// Removes the scratch directory also when an assertion fails.
    struct Scratch(std::path::PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let scratch = Scratch(std::env::temp_dir().join(format!("fmc-tf-xslt-{}", std::process::id())));
    let dir = &scratch.0;
    std::fs::create_dir_all(dir).expect("tempdir");
    let mut checked = 0;
    for vm in c.vms().iter().filter(|v| !v.data_disks.is_empty()) {
        let id = vm.name.as_str().replace(['.', '-'], "_");
        let xslt = tf["resource"]["libvirt_domain"][&id]["xml"]["xslt"]
            .as_str()
            .expect("xslt");
        let xml = String::from_utf8_lossy(
            &b.files()[&format!("libvirt/domains/{}.xml", vm.name)].contents,
        )
        .to_string();
        let bare = strip_serials(&xml);
        assert!(!bare.contains("<serial>"));
        let (x, d) = (dir.join(format!("{id}.xsl")), dir.join(format!("{id}.xml")));
        std::fs::write(&x, xslt).expect("write xsl");
        std::fs::write(&d, &bare).expect("write xml");
        let out = Command::new("xsltproc")
            .arg(&x)
            .arg(&d)
            .output()
            .expect("xsltproc must be installed (scripts/test installs package xsltproc)");
        assert!(
            out.status.success(),
            "{}: {}",
            vm.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let result = String::from_utf8_lossy(&out.stdout);
        for d in &vm.data_disks {
            assert_eq!(
                result
                    .matches(&format!("<serial>{}</serial>", d.name))
                    .count(),
                1,
                "{}: {result}",
                vm.name
            );
            assert_eq!(
                xml.matches(&format!("<serial>{}</serial>", d.name)).count(),
                1
            );
            checked += 1;
        }
        assert_eq!(result.matches("<serial>").count(), vm.data_disks.len());
        assert!(!result.contains("<serial></serial>"));
    }
    drop(scratch);
    println!("xsltproc: {checked} data disk(s) got the serial Ignition addresses");
    assert!(checked >= 2);
}
