//! Tunables of failure detection: a few primary intervals, everything else
//! derived from them (see the crate docs for the formulas and the measured
//! numbers), and the common hand-written settings for comparison.

use std::time::Duration;

/// How fast failures are detected.
///
/// The primary knobs are the VRRP advert interval and the HAProxy check
/// interval; [`Settings::fast`] derives the rest from them. The fields stay
/// public so a caller (or a benchmark) can state any combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// VRRP version (3 allows sub-second adverts).
    pub vrrp_version: u8,
    /// VRRP advertisement interval (VRRPv3: 10 ms steps, at least 10 ms).
    pub advert_int: Duration,
    /// HAProxy health-check interval while a server is steadily UP.
    pub check_inter: Duration,
    /// HAProxy health-check interval while a server is changing state
    /// (after a first failed or passed check).
    pub check_fastinter: Duration,
    /// HAProxy's `timeout check`: how long a connected check may take to
    /// answer (the API's TLS handshake and `GET /readyz`). It does not slow
    /// down detecting a dead or unreachable server: HAProxy bounds a
    /// check's *connect* by `min(timeout connect, inter)`, so a refused or
    /// unanswered connection still fails within `check_inter`. Only a server
    /// that accepts but answers slowly waits this long, and that is a server
    /// under load, not a dead one: marking it DOWN is a false alarm.
    pub check_timeout: Duration,
    /// Failed checks before a server is DOWN.
    pub fall: u8,
    /// Passed checks before a server is UP again.
    pub rise: u8,
    /// Interval of Keepalived's HAProxy-liveness track script (whole
    /// seconds: Keepalived 2.2 rejects fractions). The slow backstop behind
    /// [`Settings::haproxy_watch`].
    pub track_interval_secs: u8,
    /// Consecutive failed (or timed-out, 1 s) runs of the track script
    /// before Keepalived enters FAULT. With the watcher in place the script
    /// is only a backstop, so it may be slow to judge: one fork + exec that
    /// took over a second on saturated cores (load average 19) put an LB
    /// into FAULT in the 600 s soak with `fall 1`.
    pub track_fall: u8,
    /// Poll interval of the HAProxy watcher (`tail --pid`), which writes a
    /// Keepalived `track_file` the moment HAProxy exits; `None`: no watcher,
    /// only the track script (as in hand-written setups).
    pub haproxy_watch: Option<Duration>,
    /// Realtime (`SCHED_RR`) priority of Keepalived's VRRP process
    /// (`vrrp_rt_priority`), so adverts leave on time when every core is
    /// busy; `None`: ordinary scheduling.
    pub vrrp_rt_priority: Option<u8>,
    /// CPU time the realtime VRRP process may use without a blocking call
    /// before the kernel kills it (`vrrp_rlimit_rttime`, whole
    /// microseconds; written only with [`Settings::vrrp_rt_priority`],
    /// the only case in which Keepalived sets `RLIMIT_RTTIME`). Keepalived's
    /// own default, 10 ms, is exceeded by its VRRP child's start on an
    /// emulated (TCG) CPU: the kernel kills the child ("has rlimit_rttime
    /// been exceeded?"), Keepalived respawns it, and every instance stays
    /// in FAULT. `None`: Keepalived's default.
    pub vrrp_rlimit_rttime: Option<Duration>,
    /// Nice value of the HAProxy service (`Nice=` in its unit drop-in), so
    /// its health checks and forwarding keep their time budget when every
    /// core is busy: a check's connect and TLS handshake must finish within
    /// `check_inter`. `None`: ordinary scheduling.
    pub haproxy_nice: Option<i8>,
}

/// `timeout check` in [`Settings::fast`]: the answer time a connected
/// health check is granted. 50 ms (= `check inter`) marked healthy API
/// servers DOWN in the saturated-cores soak (HTTPS checks answered in 5–14 ms
/// typically, but some took longer than 50 ms twice in a row); connection
/// failures are still detected within `check inter`.
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(250);

/// `Nice=` of HAProxy in [`Settings::fast`]: ahead of ordinary processes
/// (weight ~9.3× theirs under CFS), behind nothing realtime.
pub const HAPROXY_NICE: i8 = -10;

/// [`Settings::vrrp_rlimit_rttime`] in [`Settings::fast`]: ten times
/// Keepalived's default (10 ms), still a fraction of an advert round on
/// real cores, so a runaway realtime loop is stopped at once, while a
/// slow start on a loaded guest is not taken for one.
pub const VRRP_RLIMIT_RTTIME: Duration = Duration::from_millis(100);

/// `SCHED_RR` priority of Keepalived's VRRP process in [`Settings::fast`]:
/// above every ordinary process, below the kernel's threaded interrupt
/// handlers (50) and migration threads (99).
pub const VRRP_RT_PRIORITY: u8 = 40;

impl Default for Settings {
    /// The generated defaults: [`Settings::fast`] with 20 ms VRRP adverts and
    /// 50 ms health checks — the fastest that raised no false alarm in the
    /// soak (10 ms adverts flapped with both cores saturated); measured
    /// numbers in the crate docs.
    fn default() -> Self {
        Settings::fast(Duration::from_millis(20), Duration::from_millis(100))
    }
}

impl Settings {
    /// Settings derived from two intervals: VRRPv3 adverts every
    /// `advert_int`, HAProxy checks every `check_inter`, a server in
    /// transition re-checked every `check_inter / 5` (at least 10 ms),
    /// `fall 2 rise 2`, the HAProxy watcher polling every `advert_int` (so a
    /// dead HAProxy is noticed within one advert), and the 1 s track script
    /// as the backstop.
    pub fn fast(advert_int: Duration, check_inter: Duration) -> Self {
        Settings {
            vrrp_version: 3,
            advert_int,
            check_inter,
            check_fastinter: (check_inter / 5).max(Duration::from_millis(10)),
            check_timeout: CHECK_TIMEOUT,
            fall: 2,
            rise: 2,
            track_interval_secs: 1,
            track_fall: 3,
            haproxy_watch: Some(advert_int),
            vrrp_rt_priority: Some(VRRP_RT_PRIORITY),
            vrrp_rlimit_rttime: Some(VRRP_RLIMIT_RTTIME),
            haproxy_nice: Some(HAPROXY_NICE),
        }
    }

    /// The settings found in most hand-written setups: VRRPv2 `advert_int 1`,
    /// `check inter 3s fall 3 rise 2` (HAProxy's default `fastinter` is
    /// `inter`), a 2 s track script and no watcher. Only for benchmarks.
    pub fn hand_written() -> Self {
        Settings {
            vrrp_version: 2,
            advert_int: Duration::from_secs(1),
            check_inter: Duration::from_secs(3),
            check_fastinter: Duration::from_secs(3),
            check_timeout: Duration::from_secs(3),
            fall: 3,
            rise: 2,
            track_interval_secs: 2,
            track_fall: 1,
            haproxy_watch: None,
            vrrp_rt_priority: None,
            vrrp_rlimit_rttime: None,
            haproxy_nice: None,
        }
    }

    /// These settings with what `cluster`'s model states
    /// ([`flatcar_topology::failover::Failover`]): a stated advert or
    /// check interval derives the rest as [`Settings::fast`] does (keeping
    /// the scheduling settings), a stated realtime budget replaces
    /// [`Settings::vrrp_rlimit_rttime`], a stated track-script interval
    /// [`Settings::track_interval_secs`]. Nothing stated: unchanged.
    pub fn with_model(&self, cluster: &flatcar_topology::Cluster) -> Settings {
        let f = cluster.spec().failover;
        let mut s = *self;
        if f.vrrp_advert_ms.is_some() || f.check_inter_ms.is_some() {
            let advert = f
                .vrrp_advert_ms
                .map_or(self.advert_int, |ms| Duration::from_millis(ms.into()));
            let inter = f
                .check_inter_ms
                .map_or(self.check_inter, |ms| Duration::from_millis(ms.into()));
            s = Settings {
                vrrp_rt_priority: self.vrrp_rt_priority,
                vrrp_rlimit_rttime: self.vrrp_rlimit_rttime,
                haproxy_nice: self.haproxy_nice,
                ..Settings::fast(advert, inter)
            };
        }
        if let Some(secs) = f.track_interval_s {
            s.track_interval_secs = secs;
        }
        if let Some(ms) = f.vrrp_rlimit_rttime_ms {
            s.vrrp_rlimit_rttime = Some(Duration::from_millis(ms.into()));
        }
        s
    }

    /// VRRP skew time of a backup with `priority`:
    /// `(256 − priority) / 256 × advert_int` (RFC 5798).
    pub fn skew(&self, priority: u8) -> Duration {
        self.advert_int * (256 - u32::from(priority)) / 256
    }

    /// Time from the last advert of a crashed holder until a backup with
    /// `priority` takes over: the master-down interval
    /// `3 × advert_int + skew` (RFC 5798).
    pub fn takeover(&self, priority: u8) -> Duration {
        self.advert_int * 3 + self.skew(priority)
    }

    /// Upper bound of the time until HAProxy marks a server whose process
    /// died (connections refused) DOWN: up to one `check_inter` until the
    /// next check, then `fall − 1` more checks `check_fastinter` apart.
    /// The median is about `check_inter / 2 + (fall − 1) × check_fastinter`.
    pub fn down_after_refusal(&self) -> Duration {
        self.check_inter + self.check_fastinter * u32::from(self.fall.saturating_sub(1))
    }

    /// `advert_int` as Keepalived writes it (`0.01`, `1`).
    pub fn advert_text(&self) -> String {
        seconds_text(self.advert_int)
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

/// Seconds with up to three decimals, no trailing zeros (`0.01`, `1`).
pub(crate) fn seconds_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}", ms / 1000)
    } else {
        let s = format!("{}.{:03}", ms / 1000, ms % 1000);
        s.trim_end_matches('0').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_values_follow_the_formulas() {
        let s = Settings::default();
        assert_eq!(s.advert_text(), "0.02");
        assert_eq!(s.check_fastinter, Duration::from_millis(20));
        assert_eq!(s.check_timeout, CHECK_TIMEOUT);
        assert!(s.check_timeout > s.check_inter);
        assert_eq!(s.haproxy_watch, Some(s.advert_int));
        // Backup priority 150: skew = 106/256 × 20 ms ≈ 8.3 ms.
        assert_eq!(s.skew(150), Duration::from_nanos(8_281_250));
        assert_eq!(s.takeover(150), Duration::from_nanos(68_281_250));
        assert_eq!(s.down_after_refusal(), Duration::from_millis(120));
        assert_eq!(Settings::hand_written().advert_text(), "1");
        assert_eq!(seconds_text(Duration::from_millis(250)), "0.25");
        assert_eq!(seconds_text(Duration::from_millis(1500)), "1.5");
    }
}
