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
    #[serde(skip_serializing_if = "Option::is_none")]
    longhorn_manager: Option<Tolerating>,
    #[serde(skip_serializing_if = "Option::is_none")]
    longhorn_driver: Option<Tolerating>,
}

#[derive(Serialize)]
struct Tolerating {
    tolerations: Vec<Toleration>,
}

/// A Kubernetes toleration of one taint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Toleration {
    /// Taint key.
    pub key: String,
    /// `Equal` (with a value) or `Exists`.
    pub operator: &'static str,
    /// Taint value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

impl Toleration {
    /// Parses a K3s `node-taint` (`key=value:Effect` or `key:Effect`).
    pub fn of_taint(taint: &str) -> Option<Toleration> {
        let (kv, effect) = taint.rsplit_once(':')?;
        let (key, value) = match kv.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (kv, None),
        };
        Some(Toleration {
            key: key.to_string(),
            operator: if value.is_some() { "Equal" } else { "Exists" },
            value,
            effect: effect.to_string(),
        })
    }

    /// Longhorn's `taintToleration` setting form (`key=value:Effect`).
    fn setting(&self) -> String {
        match &self.value {
            Some(v) => format!("{}={v}:{}", self.key, self.effect),
            None => format!("{}:{}", self.key, self.effect),
        }
    }
}

/// The tolerations Longhorn needs: one per distinct taint of the nodes that
/// hold Longhorn replicas (workers and storage nodes), derived from the same
/// taints K3s puts on them — whatever taint the storage node has, Longhorn
/// runs there.
pub fn longhorn_tolerations(cluster: &Cluster) -> Vec<Toleration> {
    let mut t: Vec<Toleration> = cluster
        .vms()
        .iter()
        .filter(|v| v.has(flatcar_topology::Role::Worker) || v.has(flatcar_topology::Role::Storage))
        .flat_map(|v| crate::config::taints(cluster, v))
        .filter_map(|taint| Toleration::of_taint(&taint))
        .collect();
    t.sort();
    t.dedup();
    t
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LonghornSettings {
    default_data_path: &'static str,
    create_default_disk_labeled_nodes: bool,
    default_replica_count: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    taint_toleration: Option<String>,
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
    let tolerations = longhorn_tolerations(cluster);
    let tolerating = || {
        (!tolerations.is_empty()).then(|| Tolerating {
            tolerations: tolerations.clone(),
        })
    };
    let values = LonghornValues {
        default_settings: LonghornSettings {
            default_data_path: LONGHORN_DATA_PATH,
            create_default_disk_labeled_nodes: true,
            default_replica_count: replicas,
            taint_toleration: (!tolerations.is_empty()).then(|| {
                tolerations
                    .iter()
                    .map(Toleration::setting)
                    .collect::<Vec<_>>()
                    .join("; ")
            }),
        },
        longhorn_manager: tolerating(),
        longhorn_driver: tolerating(),
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

/// FLUO (Flatcar Linux Update Operator) image. Upstream publishes no digest
/// we could verify here: pinned by tag, listed as unverified.
pub const FLUO_IMAGE: &str = "ghcr.io/flatcar/flatcar-linux-update-operator:v0.9.0";
/// Namespace FLUO runs in.
pub const FLUO_NAMESPACE: &str = "reboot-coordinator";

/// FLUO: the update-agent DaemonSet on every K3s node (tolerating every
/// taint the model puts on them) and the update-operator Deployment, which
/// drains a node before rebooting it and reboots one node at a time, only
/// inside [`flatcar_topology::reboot::FLUO_WINDOW`]. Locksmithd is masked on
/// K3s nodes, so FLUO is their only reboot manager.
pub fn fluo(cluster: &Cluster) -> String {
    let mut taints: Vec<Toleration> = cluster
        .vms()
        .iter()
        .flat_map(|v| crate::config::taints(cluster, v))
        .filter_map(|t| Toleration::of_taint(&t))
        .collect();
    taints.sort();
    taints.dedup();
    let mut tolerations = String::new();
    for t in &taints {
        tolerations.push_str(&format!(
            "        - key: {}\n          operator: {}\n{}          effect: {}\n",
            t.key,
            t.operator,
            t.value
                .as_ref()
                .map(|v| format!("          value: \"{v}\"\n"))
                .unwrap_or_default(),
            t.effect
        ));
    }
    let tolerations = if tolerations.is_empty() {
        String::new()
    } else {
        format!("      tolerations:\n{tolerations}")
    };
    let (start, length) = flatcar_topology::reboot::FLUO_WINDOW;
    format!(
        "# Generated by flatcar-microcloud: FLUO reboots K3s nodes one at a time, drained.
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: flatcar-update
  namespace: {ns}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: flatcar-update
rules:
  - apiGroups: [\"\"]
    resources: [nodes]
    verbs: [get, list, watch, update]
  - apiGroups: [\"\"]
    resources: [configmaps]
    verbs: [create, get, update, list, watch]
  - apiGroups: [\"\"]
    resources: [events]
    verbs: [create, watch]
  - apiGroups: [\"\"]
    resources: [pods]
    verbs: [get, list, delete]
  - apiGroups: [\"\"]
    resources: [pods/eviction]
    verbs: [create]
  - apiGroups: [apps]
    resources: [daemonsets]
    verbs: [get]
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [create, get, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: flatcar-update
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: flatcar-update
subjects:
  - kind: ServiceAccount
    name: flatcar-update
    namespace: {ns}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: flatcar-linux-update-operator
  namespace: {ns}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: flatcar-linux-update-operator
  template:
    metadata:
      labels:
        app: flatcar-linux-update-operator
    spec:
      serviceAccountName: flatcar-update
{tolerations}      containers:
        - name: update-operator
          image: {image}
          command:
            - /bin/update-operator
            - --reboot-window-start={start}
            - --reboot-window-length={length}
          env:
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: flatcar-linux-update-agent
  namespace: {ns}
spec:
  selector:
    matchLabels:
      app: flatcar-linux-update-agent
  template:
    metadata:
      labels:
        app: flatcar-linux-update-agent
    spec:
      serviceAccountName: flatcar-update
{tolerations}      containers:
        - name: update-agent
          image: {image}
          command: [/bin/update-agent]
          env:
            - name: UPDATE_AGENT_NODE
              valueFrom:
                fieldRef:
                  fieldPath: spec.nodeName
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
          volumeMounts:
            - {{name: var-run-dbus, mountPath: /var/run/dbus}}
            - {{name: etc-flatcar, mountPath: /etc/flatcar}}
            - {{name: usr-share-flatcar, mountPath: /usr/share/flatcar}}
            - {{name: etc-os-release, mountPath: /etc/os-release}}
      volumes:
        - {{name: var-run-dbus, hostPath: {{path: /var/run/dbus}}}}
        - {{name: etc-flatcar, hostPath: {{path: /etc/flatcar}}}}
        - {{name: usr-share-flatcar, hostPath: {{path: /usr/share/flatcar}}}}
        - {{name: etc-os-release, hostPath: {{path: /etc/os-release}}}}
",
        ns = FLUO_NAMESPACE,
        image = FLUO_IMAGE,
    )
}
