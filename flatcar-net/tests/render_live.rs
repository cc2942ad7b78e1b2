//! Live (validators, feature `live`): the small model's ruleset (text and
//! JSON) checked by `nft -c`, its zones by `named-checkzone`, its Chrony
//! configs by `chronyd -p`. A missing tool fails.

mod common;

use flatcar_net::{chrony, coredns, ruleset};
use std::process::Command;

fn nft_c(args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nft (apt-get install nftables)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    child.wait_with_output().expect("nft")
}

#[test]
fn ruleset_text_and_json_pass_nft_check() {
    let c = common::small();
    let r = ruleset::build(&c, &[]);
    let text = r.to_text();
    let out = nft_c(&["-c", "-f", "-"], &text);
    assert!(
        out.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    ruleset::check(&r).expect("JSON dry run (nft -c -j)");
    ruleset::check_text(&text).expect("text dry run");
    // A rule nft refuses is reported with nft's own words.
    let mut bad = r.clone();
    bad.tables[0].chains[0].rules.push(ruleset::Rule {
        matches: vec![],
        verdict: ruleset::Verdict::Accept,
        comment: Some("x".repeat(300)),
    });
    let e = ruleset::check(&bad).expect_err("comment too long");
    println!("{e}");
    assert!(e.to_string().contains("nft rejected"), "{e}");
    assert!(ruleset::check_text(&bad.to_text()).is_err());
}

#[test]
fn zones_pass_named_checkzone() {
    let c = common::small();
    let extra = [flatcar_topology::provision::DnsRecord {
        name: "registry".into(),
        address: "198.18.4.21".parse().expect("ip"),
    }];
    let zone = coredns::zone(&c, &extra);
    let dir = std::env::temp_dir().join(format!("fnet-zone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut zones = vec![("small.home.arpa".to_string(), zone.clone())];
    zones.extend(coredns::reverse_zones(&c));
    for (name, text) in &zones {
        let p = dir.join(format!("{name}.zone"));
        std::fs::write(&p, text).expect("write");
        let out = Command::new("named-checkzone")
            .arg(name)
            .arg(&p)
            .output()
            .expect("named-checkzone (apt-get install bind9-utils)");
        assert!(
            out.status.success(),
            "{name}: {}\n{text}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn chrony_configs_parse() {
    let c = common::small();
    let dir = std::env::temp_dir().join(format!("fnet-chrony-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for (name, text) in [
        ("server", chrony::server(&c)),
        ("client", chrony::client(&c)),
    ] {
        let p = dir.join(format!("{name}.conf"));
        std::fs::write(&p, &text).expect("write");
        let out = Command::new("chronyd")
            .args(["-p", "-f"])
            .arg(&p)
            .output()
            .expect("chronyd (apt-get install chrony)");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
