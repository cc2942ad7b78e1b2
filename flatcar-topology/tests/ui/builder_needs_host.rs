use flatcar_topology::Cluster;
fn main() {
    // The physical host is a required part: the builder cannot be made without it.
    let _ = Cluster::builder("demo");
}
