//! The namespace support itself: two namespaces, a veth, a ping on test addresses.

mod support;
use support::*;

#[test]
fn veth_ping_and_cleanup() {
    require("ip");
    require("ping");
    let a_name = unique("sa");
    {
        let a = Netns::new(&a_name);
        let b = Netns::new(&unique("sb"));
        veth(&a, "e0", &b, "e0");
        a.addr("e0", "198.18.100.1".parse().expect("ip"), 30);
        b.addr("e0", "198.18.100.2".parse().expect("ip"), 30);
        a.exec(&["ping", "-c1", "-W1", "198.18.100.2"]);
    }
    let list = run(&["ip", "netns", "list"]);
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(&a_name),
        "namespace left behind"
    );
}
