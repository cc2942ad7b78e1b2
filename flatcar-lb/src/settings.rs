//! Tunables of failure detection, with fast defaults and the common
//! hand-written settings for comparison.

use std::time::Duration;

/// How fast failures are detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// VRRP version (3 allows sub-second adverts).
    pub vrrp_version: u8,
    /// VRRP advertisement interval.
    pub advert_int: Duration,
    /// HAProxy health-check interval.
    pub check_inter: Duration,
    /// Failed checks before a server is DOWN.
    pub fall: u8,
    /// Passed checks before a server is UP again.
    pub rise: u8,
    /// Keepalived HAProxy-liveness script interval (whole seconds: Keepalived
    /// 2.2 rejects fractions).
    pub track_interval_secs: u8,
}

impl Default for Settings {
    /// The generated defaults: VRRPv3 with 100 ms adverts (backup takes over
    /// ~3.4 adverts after the last one, see FIELD-NOTES) and 200 ms checks
    /// with fall 2 (a dead backend is DOWN after ~0.3–0.7 s).
    fn default() -> Self {
        Settings {
            vrrp_version: 3,
            advert_int: Duration::from_millis(100),
            check_inter: Duration::from_millis(200),
            fall: 2,
            rise: 2,
            track_interval_secs: 1,
        }
    }
}

impl Settings {
    /// The settings found in most hand-written setups: VRRPv2 `advert_int 1`,
    /// `check inter 3s fall 3 rise 2`. Only for benchmarks.
    pub fn hand_written() -> Self {
        Settings {
            vrrp_version: 2,
            advert_int: Duration::from_secs(1),
            check_inter: Duration::from_secs(3),
            fall: 3,
            rise: 2,
            track_interval_secs: 2,
        }
    }

    /// `advert_int` as Keepalived writes it (`0.1`, `1`).
    pub fn advert_text(&self) -> String {
        let ms = self.advert_int.as_millis();
        if ms % 1000 == 0 {
            format!("{}", ms / 1000)
        } else {
            format!("{}", ms as f64 / 1000.0)
        }
    }

    /// A duration as HAProxy writes it (`200ms`, `3s`).
    pub fn haproxy_time(d: Duration) -> String {
        let ms = d.as_millis();
        if ms % 1000 == 0 {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        }
    }
}
