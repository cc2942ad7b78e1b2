//! Live (root, network namespaces): the generated failover settings raise no
//! false alarm under load — a 20 s version of the failover bench's soak
//! (`cargo bench --bench failover -- --soak 600` runs the long one). Every
//! core is saturated, bulk TCP crosses the LAN bridge that carries VRRP,
//! clients hammer both VIPs; no VIP may move, no VRRP instance change state,
//! no server be marked DOWN and no client request fail. Its own test target,
//! so the CPU burners do not slow the other live tests down.

#[path = "support/lb_lab.rs"]
mod lb_lab;
mod support;

use flatcar_lb::Settings;
use lb_lab::Lab;
use std::time::Duration;
use support::wait_until;

#[test]
fn a_short_soak_raises_no_false_alarm() {
    let lab = Lab::new(Settings::default());
    let want = vec!["lb1".to_string()];
    wait_until(Duration::from_secs(15), || {
        lab.holders(lab.vip("api")) == want && lab.holders(lab.vip("web")) == want
    })
    .expect("lb1 holds both VIPs");
    wait_until(Duration::from_secs(15), || lab.all_servers_up()).expect("every server UP");
    let r = lab.soak(Duration::from_secs(20));
    println!("{r}");
    for lb in &lab.lbs {
        let log = std::fs::read_to_string(lb.dir.join("haproxy.log")).unwrap_or_default();
        for l in log.lines().filter(|l| l.contains("is DOWN")).take(5) {
            println!("{}: {l}", lb.name);
        }
    }
    assert!(r.cpu_busy > 0.9, "the soak did not saturate the cores: {r}");
    assert!(r.requests > 0 && r.bulk_bytes > 0, "no load: {r}");
    assert!(
        r.clean(),
        "false alarms: {r}\nclient errors: {:?}\nstate changes: {:?}\nfailed checks: {:#?}",
        r.first_errors,
        r.state_lines,
        r.check_lines
    );
    assert!(lab.all_servers_up(), "a server is not UP after the soak");
}
