use flatcar_topology::{host, ipv4, net4};
const LAN: ipnet::Ipv4Net = net4!("192.168.0.0/24");
const API: std::net::Ipv4Addr = ipv4!("192.168.0.10");
fn main() {
    assert_eq!(host!(LAN, 10), API);
    assert_eq!(net4!("0.0.0.0/0").prefix_len(), 0);
    assert_eq!(host!(LAN, 254).octets()[3], 254);
}
