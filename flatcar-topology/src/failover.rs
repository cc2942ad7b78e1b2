//! How fast the load balancers detect failures, when the model says so:
//! the VRRP advert interval, the HAProxy health-check interval and
//! Keepalived's realtime CPU budget. Absent values keep the load-balancer
//! service's defaults (measured on real cores); a host whose guests run
//! under CPU emulation ([`Accelerator::Qemu`](crate::Accelerator)) needs
//! slower ones.

use serde::{Deserialize, Serialize};

/// Shortest VRRPv3 advert interval Keepalived accepts (ms).
pub const MIN_ADVERT_MS: u32 = 10;
/// Longest VRRPv3 advert interval (12 bits of centiseconds: 40.95 s).
pub const MAX_ADVERT_MS: u32 = 40_950;
/// Shortest health-check interval (ms).
pub const MIN_CHECK_MS: u32 = 10;
/// Longest health-check interval (ms): one minute.
pub const MAX_CHECK_MS: u32 = 60_000;
/// Longest realtime CPU budget (ms): ten seconds.
pub const MAX_RTTIME_MS: u32 = 10_000;

/// Failure-detection timing stated in the model (every field optional).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Failover {
    /// VRRP advert interval in milliseconds (10 ms steps, 10–40950).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_advert_ms: Option<u32>,
    /// HAProxy health-check interval in milliseconds (10–60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_inter_ms: Option<u32>,
    /// CPU time in milliseconds Keepalived's realtime VRRP process may use
    /// without a blocking call before the kernel kills it
    /// (`vrrp_rlimit_rttime`; Keepalived's default is 10 ms, which an
    /// emulated CPU exceeds at start). 1–10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrrp_rlimit_rttime_ms: Option<u32>,
    /// Interval in whole seconds of Keepalived's HAProxy track script
    /// (1–60; each run may take all but a second of it). Emulated CPUs
    /// need several: a fork + exec of `sh` took over a second there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_interval_s: Option<u8>,
}

impl Failover {
    /// Whether nothing is stated (left out of model files).
    pub fn is_default(&self) -> bool {
        *self == Failover::default()
    }

    /// Why these values cannot be used, one sentence each.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(a) = self.vrrp_advert_ms {
            if !(MIN_ADVERT_MS..=MAX_ADVERT_MS).contains(&a) || a % 10 != 0 {
                out.push(format!(
                    "vrrp_advert_ms {a} is not a VRRPv3 advert interval ({MIN_ADVERT_MS}–{MAX_ADVERT_MS} ms in 10 ms steps)"
                ));
            }
        }
        if let Some(c) = self.check_inter_ms {
            if !(MIN_CHECK_MS..=MAX_CHECK_MS).contains(&c) {
                out.push(format!(
                    "check_inter_ms {c} is outside {MIN_CHECK_MS}–{MAX_CHECK_MS} ms"
                ));
            }
        }
        if let Some(r) = self.vrrp_rlimit_rttime_ms {
            if !(1..=MAX_RTTIME_MS).contains(&r) {
                out.push(format!(
                    "vrrp_rlimit_rttime_ms {r} is outside 1–{MAX_RTTIME_MS} ms"
                ));
            }
        }
        if let Some(t) = self.track_interval_s {
            if !(1..=60).contains(&t) {
                out.push(format!("track_interval_s {t} is outside 1–60 s"));
            }
        }
        out
    }

    /// One line for the summary (`None` when nothing is stated).
    pub fn describe(&self) -> Option<String> {
        if self.is_default() {
            return None;
        }
        let ms = |v: Option<u32>| v.map_or_else(|| "default".to_string(), |v| format!("{v} ms"));
        Some(format!(
            "failover: VRRP adverts every {}, health checks every {}, VRRP realtime budget {}, HAProxy track script every {}",
            ms(self.vrrp_advert_ms),
            ms(self.check_inter_ms),
            ms(self.vrrp_rlimit_rttime_ms),
            self.track_interval_s
                .map_or_else(|| "default".to_string(), |s| format!("{s} s"))
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::Failover;

    #[test]
    fn bounds() {
        assert!(Failover::default().problems().is_empty());
        let ok = Failover {
            vrrp_advert_ms: Some(300),
            check_inter_ms: Some(1000),
            vrrp_rlimit_rttime_ms: Some(1000),
            track_interval_s: Some(5),
        };
        assert!(ok.problems().is_empty());
        for bad in [
            Failover {
                vrrp_advert_ms: Some(5),
                ..ok
            },
            Failover {
                vrrp_advert_ms: Some(305),
                ..ok
            },
            Failover {
                vrrp_advert_ms: Some(41_000),
                ..ok
            },
            Failover {
                check_inter_ms: Some(0),
                ..ok
            },
            Failover {
                vrrp_rlimit_rttime_ms: Some(0),
                ..ok
            },
            Failover {
                track_interval_s: Some(0),
                ..ok
            },
        ] {
            assert_eq!(bad.problems().len(), 1, "{bad:?}");
        }
        assert!(Failover::default().describe().is_none());
        assert!(ok.describe().expect("stated").contains("300 ms"));
    }
}
