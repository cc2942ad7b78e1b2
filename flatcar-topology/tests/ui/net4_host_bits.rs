use flatcar_topology::net4;
fn main() {
    let _ = net4!("10.17.4.1/24");
}
