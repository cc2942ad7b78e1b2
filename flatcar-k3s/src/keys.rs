//! The configuration keys K3s accepts, per node type, for the pinned
//! release line. Source: `k3s server --help` / `k3s agent --help` of K3s
//! v1.31 as documented at docs.k3s.io/cli/server and /cli/agent (config-file
//! keys are the long flag names without `--`). Servers also accept every
//! agent key.

/// The K3s release line these lists were taken from.
pub const SOURCE_VERSION: &str = "v1.31";

/// Keys `k3s agent` accepts.
pub const AGENT_KEYS: &[&str] = &[
    "config",
    "debug",
    "v",
    "vmodule",
    "log",
    "alsologtostderr",
    "token",
    "token-file",
    "server",
    "data-dir",
    "node-name",
    "with-node-id",
    "node-label",
    "node-taint",
    "image-credential-provider-bin-dir",
    "image-credential-provider-config",
    "selinux",
    "lb-server-port",
    "protect-kernel-defaults",
    "snapshotter",
    "private-registry",
    "system-default-registry",
    "airgap-extra-registry",
    "node-ip",
    "node-external-ip",
    "node-internal-dns",
    "node-external-dns",
    "resolv-conf",
    "flannel-iface",
    "flannel-conf",
    "flannel-cni-conf-dir",
    "flannel-cni-conf-file",
    "kubelet-arg",
    "kube-proxy-arg",
    "rootless",
    "prefer-bundled-bin",
    "docker",
    "container-runtime-endpoint",
    "default-runtime",
    "image-service-endpoint",
    "disable-default-registry-endpoint",
    "nonroot-devices",
    "pause-image",
    "vpn-auth",
    "vpn-auth-file",
    "disable-apiserver-lb",
    "enable-pprof",
];

/// Keys only `k3s server` accepts (in addition to [`AGENT_KEYS`]).
pub const SERVER_KEYS: &[&str] = &[
    "bind-address",
    "advertise-address",
    "advertise-port",
    "tls-san",
    "tls-san-security",
    "data-dir",
    "cluster-cidr",
    "service-cidr",
    "service-node-port-range",
    "cluster-dns",
    "cluster-domain",
    "flannel-backend",
    "flannel-ipv6-masq",
    "flannel-external-ip",
    "egress-selector-mode",
    "servicelb-namespace",
    "write-kubeconfig",
    "write-kubeconfig-mode",
    "write-kubeconfig-group",
    "helm-job-image",
    "agent-token",
    "agent-token-file",
    "cluster-init",
    "cluster-reset",
    "cluster-reset-restore-path",
    "kube-apiserver-arg",
    "etcd-arg",
    "kube-controller-manager-arg",
    "kube-scheduler-arg",
    "kube-cloud-controller-manager-arg",
    "datastore-endpoint",
    "datastore-cafile",
    "datastore-certfile",
    "datastore-keyfile",
    "etcd-expose-metrics",
    "etcd-disable-snapshots",
    "etcd-snapshot-name",
    "etcd-snapshot-schedule-cron",
    "etcd-snapshot-retention",
    "etcd-snapshot-dir",
    "etcd-snapshot-compress",
    "etcd-s3",
    "etcd-s3-endpoint",
    "etcd-s3-bucket",
    "etcd-s3-region",
    "etcd-s3-folder",
    "default-local-storage-path",
    "disable",
    "disable-scheduler",
    "disable-cloud-controller",
    "disable-kube-proxy",
    "disable-network-policy",
    "disable-helm-controller",
    "embedded-registry",
    "supervisor-metrics",
    "secrets-encryption",
    "secrets-encryption-provider",
    "enable-pprof",
    "https-listen-port",
    "https-listen-port",
    "kine-tls",
    "node-taint",
    "node-label",
];

/// The keys among `keys` (a config's top-level keys) that K3s would reject.
///
/// ```
/// let bad = flatcar_k3s::keys::unknown_keys(["token", "cluster-init", "no-such-key"], false);
/// assert_eq!(bad, ["cluster-init", "no-such-key"]);
/// ```
pub fn unknown_keys<'a>(keys: impl IntoIterator<Item = &'a str>, server: bool) -> Vec<String> {
    keys.into_iter()
        .filter(|k| !(AGENT_KEYS.contains(k) || (server && SERVER_KEYS.contains(k))))
        .map(str::to_string)
        .collect()
}
