//! K3s auto-deploy manifests (on the first server, in
//! `/var/lib/rancher/k3s/server/manifests/`): Traefik exposed on the ingress
//! ports the model declares, Longhorn at a pinned chart version.

use crate::Error;
use flatcar_topology::Cluster;
use serde::Serialize;

/// Directory K3s watches for manifests.
pub const MANIFEST_DIR: &str = "/var/lib/rancher/k3s/server/manifests";
/// Longhorn chart version (pinned).
pub const LONGHORN_CHART_VERSION: &str = "1.7.2";
/// Where Longhorn keeps replicas on every node (the data disk mount).
pub const LONGHORN_DATA_PATH: &str = "/var/mnt/longhorn";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<S> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: S,
}

#[derive(Serialize)]
struct Metadata {
    name: &'static str,
    namespace: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigSpec {
    values_content: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChartSpec {
    repo: &'static str,
    chart: &'static str,
    version: &'static str,
    target_namespace: &'static str,
    create_namespace: bool,
    values_content: String,
}

#[derive(Serialize)]
struct TraefikValues {
    service: TraefikService,
    ports: TraefikPorts,
    #[serde(rename = "nodeSelector")]
    node_selector: std::collections::BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize)]
struct TraefikService {
    #[serde(rename = "type")]
    kind: &'static str,
    spec: TraefikServiceSpec,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TraefikServiceSpec {
    external_traffic_policy: &'static str,
}

#[derive(Serialize)]
struct TraefikPorts {
    web: NodePort,
    websecure: NodePort,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodePort {
    node_port: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LonghornValues {
    default_settings: LonghornSettings,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LonghornSettings {
    default_data_path: &'static str,
    create_default_disk_labeled_nodes: bool,
    default_replica_count: u8,
}

fn yaml<T: Serialize>(what: &str, v: &T) -> Result<String, Error> {
    serde_saphyr::to_string(v).map_err(|source| Error::Yaml {
        what: what.into(),
        source,
    })
}

/// Traefik's `HelmChartConfig`: a NodePort service whose `web` and
/// `websecure` node ports are exactly `cluster.k3s().ingress` — the ports
/// the load balancers forward the web VIP to. `externalTrafficPolicy: Local`
/// keeps client addresses; Traefik runs on the ingress (worker) nodes.
pub fn traefik(cluster: &Cluster) -> Result<String, Error> {
    let ing = cluster.k3s().ingress;
    let values = TraefikValues {
        service: TraefikService {
            kind: "NodePort",
            spec: TraefikServiceSpec {
                external_traffic_policy: "Cluster",
            },
        },
        ports: TraefikPorts {
            web: NodePort {
                node_port: ing.web.get(),
            },
            websecure: NodePort {
                node_port: ing.websecure.get(),
            },
        },
        node_selector: [("microcloud.dev/ingress", "true")].into_iter().collect(),
    };
    yaml(
        "traefik",
        &Manifest {
            api_version: "helm.cattle.io/v1",
            kind: "HelmChartConfig",
            metadata: Metadata {
                name: "traefik",
                namespace: "kube-system",
            },
            spec: ConfigSpec {
                values_content: yaml("traefik values", &values)?,
            },
        },
    )
}

/// Longhorn's `HelmChart` at [`LONGHORN_CHART_VERSION`].
pub fn longhorn(cluster: &Cluster) -> Result<String, Error> {
    let replicas = cluster
        .vms()
        .iter()
        .filter(|v| v.has(flatcar_topology::Role::Worker) || v.has(flatcar_topology::Role::Storage))
        .count()
        .clamp(1, 3) as u8;
    let values = LonghornValues {
        default_settings: LonghornSettings {
            default_data_path: LONGHORN_DATA_PATH,
            create_default_disk_labeled_nodes: true,
            default_replica_count: replicas,
        },
    };
    yaml(
        "longhorn",
        &Manifest {
            api_version: "helm.cattle.io/v1",
            kind: "HelmChart",
            metadata: Metadata {
                name: "longhorn",
                namespace: "kube-system",
            },
            spec: ChartSpec {
                repo: "https://charts.longhorn.io",
                chart: "longhorn",
                version: LONGHORN_CHART_VERSION,
                target_namespace: "longhorn-system",
                create_namespace: true,
                values_content: yaml("longhorn values", &values)?,
            },
        },
    )
}
