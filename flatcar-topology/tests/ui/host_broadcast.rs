use flatcar_topology::{host, net4};
const K8S: ipnet::Ipv4Net = net4!("10.17.4.0/24");
fn main() {
    let _ = host!(K8S, 255);
}
