use flatcar_topology::ipv4;
fn main() {
    let _ = ipv4!("192.168.0.256");
}
