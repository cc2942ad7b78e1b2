//! Artifacts: no zero hash anywhere in the reference bundle, every remote
//! file verified or listed as unverified, strict rendering, mirror and
//! overrides (model and document form), unknown K3s versions, and the
//! Terraform export's provider pin and data-disk addressing.

use flatcar_microcloud::reference::cluster;
use flatcar_microcloud::{Bundle, BundleSecrets, Error, RenderOptions};
use flatcar_topology::artifact::{Mirror, Override, RegistryHost, SourceUrl};
use flatcar_topology::{Cluster, Format};
use serde_json::Value;

fn render(c: &Cluster) -> Bundle {
    Bundle::render(c, &mut BundleSecrets::default()).expect("renders")
}

/// Every `contents.source` in an Ignition config with its verification hash.
fn remote_files(ign: &Value) -> Vec<(String, Option<String>)> {
    ign["storage"]["files"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let src = f["contents"]["source"].as_str()?;
            (!src.starts_with("data:")).then(|| {
                (
                    src.to_string(),
                    f["contents"]["verification"]["hash"]
                        .as_str()
                        .map(str::to_string),
                )
            })
        })
        .collect()
}

fn has_zero_run(bytes: &[u8]) -> bool {
    let mut run = 0;
    for &b in bytes {
        run = if b == b'0' { run + 1 } else { 0 };
        if run >= 64 {
            return true;
        }
    }
    false
}

#[test]
fn no_zero_hash_anywhere_in_the_reference_bundle() {
    let b = render(&cluster().expect("valid"));
    assert!(b.files().len() > 30);
    for (path, f) in b.files() {
        assert!(!has_zero_run(&f.contents), "{path} has 64 zeros in a row");
        let text = String::from_utf8_lossy(&f.contents);
        assert!(!text.contains("sha512-0000"), "{path}");
        assert!(!text.contains("sha256:0000000000"), "{path}");
    }
    // The scanner itself finds what it looks for.
    assert!(has_zero_run(
        format!("sha256-{}", "0".repeat(64)).as_bytes()
    ));
}

#[test]
fn every_remote_file_is_verified_or_listed_and_k3s_coredns_are_verified() {
    let b = render(&cluster().expect("valid"));
    let unverified: Vec<String> = b
        .unverified()
        .iter()
        .map(|a| a.source().to_string())
        .collect();
    let mut remote = 0;
    for (path, f) in b.files() {
        if !path.ends_with("ignition.json") {
            continue;
        }
        let ign: Value = serde_json::from_slice(&f.contents).expect("json");
        for (src, hash) in remote_files(&ign) {
            remote += 1;
            match hash {
                Some(h) => assert!(
                    h.starts_with("sha256-") || h.starts_with("sha512-"),
                    "{path}: {src} {h}"
                ),
                None => assert!(
                    unverified.contains(&src),
                    "{path}: {src} neither verified nor listed"
                ),
            }
        }
    }
    assert!(
        remote >= 12,
        "k3s on 7 nodes + 2 extensions on 2 LBs + chrony = 12: {remote}"
    );
    for name in ["k3s", "coredns"] {
        assert!(b.downloads()[name].is_verified(), "{name} must be verified");
    }
    let master =
        String::from_utf8_lossy(&b.files()["vms/master1/ignition.json"].contents).to_string();
    assert!(
        master.contains("sha256-d73847bcd3c5fccef0115b372e2f9a91f3032dc84bbf71518a4617565294d313")
    );
    let infra = String::from_utf8_lossy(&b.files()["vms/infra/ignition.json"].contents).to_string();
    assert!(infra.contains("registry.k8s.io/coredns/coredns:v1.14.2@sha256:fd5079792b93909db3adefa91e41c3995455013394f0197c7346786ae19079fc"));
    // The bundle's own table lists every download.
    let table = String::from_utf8_lossy(&b.files()["artifacts.md"].contents).to_string();
    for name in b.downloads().keys() {
        assert!(table.contains(&format!("| {name} |")), "{table}");
    }
    assert_eq!(
        table.matches("**UNVERIFIED**").count(),
        b.unverified().len()
    );
}

#[test]
fn lb_vms_get_sysexts_the_flatcar_way() {
    let b = render(&cluster().expect("valid"));
    let ign: Value =
        serde_json::from_slice(&b.files()["vms/lb1/ignition.json"].contents).expect("json");
    let links: Vec<(String, String)> = ign["storage"]["links"]
        .as_array()
        .expect("links")
        .iter()
        .map(|l| {
            (
                l["path"].as_str().unwrap_or_default().to_string(),
                l["target"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    for (name, ver) in [("haproxy", "3.2.5"), ("keepalived", "v2.3.1")] {
        let raw = format!("/opt/extensions/{name}/{name}-{ver}-x86-64.raw");
        assert!(
            links.contains(&(format!("/etc/extensions/{name}.raw"), raw.clone())),
            "{links:?}"
        );
        assert!(links.contains(&(
            format!("/etc/systemd/system/multi-user.target.wants/{name}.service"),
            format!("/usr/lib/systemd/system/{name}.service")
        )));
        let text = b.files()["vms/lb1/ignition.json"].contents.clone();
        let text = String::from_utf8_lossy(&text);
        assert!(text.contains(&format!("/etc/sysupdate.{name}.d/{name}.conf")));
    }
    let units = ign["systemd"]["units"].as_array().expect("units");
    let enabled = |n: &str| {
        units
            .iter()
            .any(|u| u["name"] == n && u["enabled"] == Value::Bool(true))
    };
    assert!(enabled("systemd-sysext.service") && enabled("systemd-sysupdate.timer"));
    assert!(
        !String::from_utf8_lossy(&b.files()["vms/lb1/ignition.json"].contents)
            .contains("docker run")
    );
}

#[test]
fn strict_refuses_unverified_and_lists_them_then_accepts_overrides() {
    let c = cluster().expect("valid");
    let err = Bundle::render_opts(&c, &mut BundleSecrets::default(), RenderOptions::strict())
        .expect_err("strict refuses");
    let Error::Unverified(list) = &err else {
        panic!("{err}")
    };
    assert_eq!(list.len(), 3, "{err}");
    for name in ["haproxy", "keepalived", "chrony"] {
        assert!(err.to_string().contains(name), "{err}");
    }
    // Pinning the three (e.g. hashes of a local build) makes strict pass.
    let mut spec = c.into_spec();
    for (i, name) in ["haproxy", "keepalived", "chrony"].into_iter().enumerate() {
        spec.artifacts.overrides.insert(
            flatcar_topology::Name::new(name).expect("name"),
            Override::file(
                &format!("https://build.lan/{name}.raw"),
                &format!("sha256-{}", format!("{:02x}", i + 1).repeat(32)),
            )
            .expect("override"),
        );
    }
    let c = Cluster::try_from(spec).expect("valid");
    let b = Bundle::render_opts(&c, &mut BundleSecrets::default(), RenderOptions::strict())
        .expect("strict passes");
    assert!(b.unverified().is_empty());
    let lb = String::from_utf8_lossy(&b.files()["vms/lb1/ignition.json"].contents).to_string();
    assert!(lb.contains("https://build.lan/keepalived.raw"));
    assert!(lb.contains(&format!("sha256-{}", "02".repeat(32))));
}

#[test]
fn a_mirror_rewrites_every_source_in_one_place() {
    let mut spec = cluster().expect("valid").into_spec();
    spec.artifacts.mirror = Mirror {
        files: Some(SourceUrl::new("https://mirror.lan/dl").expect("url")),
        registry: Some(RegistryHost::new("registry.lan:5000").expect("host")),
    };
    let c = Cluster::try_from(spec).expect("valid");
    let b = render(&c);
    let mut seen = 0;
    for (path, f) in b.files() {
        if !path.ends_with("ignition.json") {
            continue;
        }
        let text = String::from_utf8_lossy(&f.contents).to_string();
        let ign: Value = serde_json::from_str(&text).expect("json");
        for (src, _) in remote_files(&ign) {
            seen += 1;
            assert!(src.starts_with("https://mirror.lan/dl/"), "{path}: {src}");
        }
        assert!(
            !text.contains("Path=https://extensions.flatcar.org"),
            "{path}: sysupdate not mirrored"
        );
        assert!(!text.contains("registry.k8s.io"), "{path}");
    }
    assert!(seen > 0);
    assert!(
        String::from_utf8_lossy(&b.files()["vms/infra/ignition.json"].contents)
            .contains("registry.lan:5000/coredns/coredns:v1.14.2@sha256:")
    );
    // Hashes survive the mirror: nothing new is unverified.
    assert_eq!(b.unverified().len(), 3);
}

#[test]
fn overrides_and_mirror_in_the_document_form() {
    let c = cluster().expect("valid");
    let mut toml = c.to_string_as(Format::Toml).expect("toml");
    toml.push_str(
        "\n[artifacts.mirror]\nregistry = \"registry.lan:5000\"\n\n\
         [artifacts.overrides.k3s]\nurl = \"https://build.lan/k3s\"\nhash = \"sha512-",
    );
    toml.push_str(&"ab".repeat(64));
    toml.push_str("\"\nversion = \"v1.36.5+k3s1-local\"\n\n[artifacts.overrides.keepalived]\nurl = \"https://mirror.lan/k.raw\"\nunverified = true\n");
    let loaded = Cluster::from_str_as(&toml, Format::Toml).expect("loads");
    // It survives a save/load round trip in both formats.
    for f in [Format::Toml, Format::Json] {
        let again =
            Cluster::from_str_as(&loaded.to_string_as(f).expect("save"), f).expect("reload");
        assert_eq!(again.spec(), loaded.spec());
    }
    let b = render(&loaded);
    let master =
        String::from_utf8_lossy(&b.files()["vms/master2/ignition.json"].contents).to_string();
    assert!(master.contains("https://build.lan/k3s"));
    assert!(master.contains(&format!("sha512-{}", "ab".repeat(64))));
    assert_eq!(b.downloads()["k3s"].version(), "v1.36.5+k3s1-local");
    assert!(
        String::from_utf8_lossy(&b.files()["vms/infra/ignition.json"].contents)
            .contains("registry.lan:5000/coredns/coredns")
    );
    // A zero hash in a model file is rejected with its position.
    let zero = toml.replace(&"ab".repeat(64), &"00".repeat(64));
    let err = Cluster::from_str_as(&zero, Format::Toml).expect_err("zero hash");
    assert!(err.to_string().contains("all zeros"), "{err}");
    // An override naming nothing the cloud downloads is an error.
    let typo =
        format!("{toml}\n[artifacts.overrides.k3ss]\nurl = \"https://b/x\"\nunverified = true\n");
    let c = Cluster::from_str_as(&typo, Format::Toml).expect("loads");
    let err = Bundle::render(&c, &mut BundleSecrets::default()).expect_err("unknown override");
    assert!(err.to_string().contains("k3ss"), "{err}");
}

#[test]
fn an_unknown_k3s_version_is_an_error_not_a_fallback() {
    let mut spec = cluster().expect("valid").into_spec();
    spec.k3s.version = flatcar_topology::K3sVersion::new("v1.31.4+k3s1").expect("version");
    let c = Cluster::try_from(spec.clone()).expect("valid");
    let err = Bundle::render(&c, &mut BundleSecrets::default()).expect_err("unpinned");
    let text = err.to_string();
    assert!(
        text.contains("v1.31.4+k3s1") && text.contains("v1.36.5+k3s1"),
        "{text}"
    );
    // With an override the version is the user's business.
    spec.artifacts.overrides.insert(
        flatcar_topology::Name::new("k3s").expect("name"),
        Override::file(
            "https://build.lan/k3s",
            &format!("sha256-{}", "12".repeat(32)),
        )
        .expect("override"),
    );
    let b = render(&Cluster::try_from(spec).expect("valid"));
    assert!(b.downloads()["k3s"].is_verified());
}

#[test]
fn terraform_pins_the_provider_and_addresses_data_disks_like_ignition() {
    let c = cluster().expect("valid");
    let b = render(&c);
    let tf: Value =
        serde_json::from_slice(&b.files()["terraform/main.tf.json"].contents).expect("json");
    assert_eq!(
        tf["terraform"]["required_providers"]["libvirt"]["version"],
        "= 0.8.3"
    );
    let mut checked = 0;
    for vm in c.vms() {
        let dom = &tf["resource"]["libvirt_domain"][vm.name.as_str().replace(['.', '-'], "_")];
        assert!(dom.is_object(), "{}", vm.name);
        let disks = dom["disk"].as_array().expect("disks");
        assert_eq!(disks.len(), 1 + vm.data_disks.len());
        let xml = String::from_utf8_lossy(
            &b.files()[&format!("libvirt/domains/{}.xml", vm.name)].contents,
        )
        .to_string();
        let ign =
            String::from_utf8_lossy(&b.files()[&format!("vms/{}/ignition.json", vm.name)].contents)
                .to_string();
        if vm.data_disks.is_empty() {
            assert!(dom.get("xml").is_none());
            continue;
        }
        let xslt = dom["xml"]["xslt"].as_str().expect("xslt");
        for (i, d) in vm.data_disks.iter().enumerate() {
            let dev = flatcar_libvirt::domain::disk_dev(i + 1);
            // The domain XML gives the disk at `dev` this serial …
            let at = xml
                .find(&format!("<target dev=\"{dev}\""))
                .expect("disk in domain XML");
            assert!(xml[at..].contains(&format!("<serial>{}</serial>", d.name)));
            // … the Terraform domain gets the same through its XSLT …
            assert!(xslt.contains(&format!(
                "disk[target/@dev='{dev}']\">\n    <xsl:copy><xsl:apply-templates select=\"node()|@*\"/><serial>{}</serial>",
                d.name
            )), "{xslt}");
            // … and Ignition partitions it by that serial.
            assert!(ign.contains(&format!("\"/dev/disk/by-id/virtio-{}\"", d.name)));
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "the reference cloud has data disks: {checked}"
    );
}
