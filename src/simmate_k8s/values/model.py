"""The pydantic model of the ``charts/simmate`` values: the one source of truth.

Keys are camelCase like every Helm chart. Unknown keys are errors (``extra="forbid"``), every
field carries a description (it becomes the schema's documentation), and the cross-field rules in
``ChartValues.check_combinations`` are repeated in ``templates/_validate.tpl`` so that ``helm``
rejects the same bad combinations with the same words.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simmate_k8s import __version__

# The default project image tag is the package version (pyproject.toml -> package metadata);
# Chart.yaml's appVersion must equal it (tests/chart/test_versions.py).
CHART_VERSION = __version__
PREFECT_SERVER_VERSION = "core-1.4.1"
DASK_KUBERNETES_VERSION = "2026.3.0"

QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
DNS_LABEL = r"^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$"
# Prometheus durations, e.g. 30s, 1m, 1h30m.
DURATION = r"^(([0-9]+)(ms|s|m|h|d|w|y))+$"
# Five cron fields (or a @macro), as a Kubernetes CronJob schedule.
CRON = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$"

Quantity = Annotated[str, Field(pattern=QUANTITY, description="A Kubernetes quantity.")]


def field(default: Any = ..., description: str = "", **kwargs: Any) -> Any:
    """A field whose description is mandatory: the schema documents every key."""
    if "default_factory" in kwargs:
        return Field(description=description, **kwargs)
    return Field(default, description=description, **kwargs)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True)


# ---------------------------------------------------------------------------------------------
# Building blocks


class Image(Strict):
    repository: str = field(description="Image repository.", min_length=1)
    tag: str = field("", description="Image tag; never `latest`. Empty means the default tag.")
    pullPolicy: Literal["IfNotPresent", "Always", "Never"] = field(
        "IfNotPresent", description="Kubernetes imagePullPolicy."
    )

    @field_validator("tag")
    @classmethod
    def not_latest(cls, tag: str) -> str:
        if tag == "latest":
            raise ValueError("the tag `latest` is not allowed: pin a version")
        return tag


class CpuMemory(Strict):
    cpu: Quantity = field(description="CPU quantity, e.g. 250m or 2.")
    memory: Quantity = field(description="Memory quantity, e.g. 512Mi or 4Gi.")


class Resources(Strict):
    requests: CpuMemory = field(description="What the scheduler reserves for the container.")
    limits: CpuMemory = field(description="The most the container may use.")


def resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> Resources:
    return Resources(
        requests=CpuMemory(cpu=cpu, memory=memory),
        limits=CpuMemory(cpu=cpu_limit, memory=memory_limit),
    )


class Toleration(Strict):
    key: str = field("", description="Taint key to tolerate.")
    operator: Literal["Exists", "Equal"] = field("Equal", description="Exists or Equal.")
    value: str = field("", description="Taint value (with operator Equal).")
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = field(
        "", description="Taint effect to tolerate; empty means all."
    )


class Placement(Strict):
    """Where a component's pods may run."""

    nodeSelector: dict[str, str] = field(
        default_factory=dict, description="Node labels the pods must match."
    )
    tolerations: list[Toleration] = field(
        default_factory=list, description="Taints the pods tolerate."
    )


class Service(Strict):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = field(
        "ClusterIP", description="Kubernetes Service type."
    )
    nodePort: int | None = field(
        None, description="Fixed node port (type NodePort only).", ge=30000, le=32767
    )
    annotations: dict[str, str] = field(
        default_factory=dict, description="Service annotations (e.g. cloud load balancer settings)."
    )


class Component(Placement):
    """A Prefect Server component: image override, resources, placement."""

    image: Image = field(description="Image; an empty tag means `prefectServer.version`.")
    replicas: int = field(1, description="Number of pods.", ge=1)
    runAsUser: int = field(1000, description="Non-root UID (and GID) the container runs as.", ge=1)
    resources: Resources = field(description="Requests and limits of the container.")
    extraEnv: dict[str, str] = field(
        default_factory=dict, description="Extra environment variables (not secrets)."
    )


def component(repository: str, res: Resources, **kwargs: Any) -> Any:
    return Field(
        default_factory=lambda: {"image": {"repository": repository}, "resources": res, **kwargs},
        description=f"The {repository} component.",
    )


# ---------------------------------------------------------------------------------------------
# Prefect Server


class HasuraAdminSecret(Strict):
    existingSecret: str = field(
        "", description="Secret holding the admin secret; empty: generated once and kept."
    )
    key: str = field("admin-secret", description="Key of the admin secret in that Secret.")


class Hasura(Component):
    adminSecret: HasuraAdminSecret = field(
        default_factory=HasuraAdminSecret,
        description="Hasura admin secret, given to hasura, graphql, towel and the migration job.",
    )
    unauthorizedRole: str = field(
        "admin",
        description=(
            "Role for requests without the admin secret. Prefect Server v1's apollo sends none, "
            "so it stays `admin`; the NetworkPolicy limits who can reach hasura."
        ),
    )


class Migration(Strict):
    enabled: bool = field(
        True,
        description=(
            "Run `prefect-server database upgrade -y` as a post-install/post-upgrade hook Job, "
            "then restart apollo (a second hook) so it serves the migrated schema."
        ),
    )
    backoffLimit: int = field(10, description="Retries while the database starts.", ge=0)
    resources: Resources = field(
        default_factory=lambda: resources("100m", "256Mi", "500m", "512Mi"),
        description="Requests and limits of the migration Job.",
    )


class Graphql(Component):
    migration: Migration = field(
        default_factory=Migration, description="The database migration hook Job."
    )


class Apollo(Component):
    service: Service = field(default_factory=Service, description="The apollo (API) Service.")


class Ui(Component):
    enabled: bool = field(True, description="Deploy the Prefect UI.")
    apiUrl: str = field(
        "http://localhost:4200/graphql",
        description=(
            "Prefect API URL as the *browser* reaches it (the UI runs in the browser). Default "
            "fits `kubectl port-forward svc/<release>-apollo 4200`. With ingress, the API URL."
        ),
    )
    service: Service = field(default_factory=Service, description="The UI Service.")


class Tenant(Strict):
    enabled: bool = field(True, description="Create the default tenant (idempotent hook Job).")
    name: str = field("default", description="Tenant name.", min_length=1)
    slug: str = field("default", description="Tenant slug.", pattern=r"^[a-z0-9-]+$")
    resources: Resources = field(
        default_factory=lambda: resources("50m", "128Mi", "500m", "512Mi"),
        description="Requests and limits of the tenant Job.",
    )


class Retention(Strict):
    enabled: bool = field(
        False,
        description=(
            "A CronJob deleting flow runs (with their task runs, states and logs) not updated "
            "for `days` days, in batches (files/retention.sql, run by psql)."
        ),
    )
    days: int = field(30, description="Keep flow runs updated within this many days.", ge=1)
    batchSize: int = field(
        1000, description="Rows deleted per transaction (per table, per batch).", ge=1
    )
    schedule: str = field(
        "17 3 * * *", description="Cron schedule (cluster time zone).", pattern=CRON
    )
    resources: Resources = field(
        default_factory=lambda: resources("50m", "64Mi", "500m", "256Mi"),
        description="Requests and limits of the retention Job.",
    )


class IngressBasicAuth(Strict):
    enabled: bool = field(False, description="Protect UI and API with HTTP basic auth.")
    existingSecret: str = field(
        "", description="Secret with an htpasswd `auth` key (ingress-nginx format)."
    )


class IngressTls(Strict):
    secretName: str = field(description="TLS Secret for the hosts.", min_length=1)
    hosts: list[str] = field(default_factory=list, description="Hosts the certificate covers.")


class Ingress(Strict):
    enabled: bool = field(False, description="Expose UI and API through an Ingress.")
    className: str = field("", description="IngressClass name; empty: the cluster default.")
    host: str = field("", description="Host name serving the UI at / and the API at /graphql.")
    annotations: dict[str, str] = field(
        default_factory=dict, description="Ingress annotations (auth, cert-manager, ...)."
    )
    basicAuth: IngressBasicAuth = field(
        default_factory=IngressBasicAuth,
        description="Basic auth with ingress-nginx annotations. Prefect Server v1 has no auth.",
    )
    tls: list[IngressTls] = field(default_factory=list, description="TLS settings.")


class PrefectServer(Strict):
    enabled: bool = field(True, description="Deploy Prefect Server v1 (hasura, graphql, ...).")
    version: str = field(
        PREFECT_SERVER_VERSION,
        description="Tag of the prefecthq/server, apollo and ui images (one knob).",
        min_length=1,
    )
    hasura: Hasura = field(
        default_factory=lambda: {
            "image": {"repository": "hasura/graphql-engine", "tag": "v2.1.1"},
            "runAsUser": 1001,
            "resources": resources("100m", "256Mi", "1", "1Gi"),
        },
        description="Hasura GraphQL engine (image pinned separately from `version`).",
    )
    graphql: Graphql = component("prefecthq/server", resources("100m", "256Mi", "1", "1Gi"))
    apollo: Apollo = component("prefecthq/apollo", resources("100m", "256Mi", "1", "768Mi"))
    towel: Component = component("prefecthq/server", resources("50m", "128Mi", "500m", "512Mi"))
    ui: Ui = component(
        "prefecthq/ui",
        resources("25m", "32Mi", "250m", "128Mi"),
        runAsUser=101,  # nginx
    )
    tenant: Tenant = field(default_factory=Tenant, description="Default tenant Job.")
    ingress: Ingress = field(default_factory=Ingress, description="Optional Ingress.")
    retention: Retention = field(
        default_factory=Retention, description="Prefect database retention CronJob."
    )

    _version_not_latest = field_validator("version")(Image.not_latest.__func__)


# ---------------------------------------------------------------------------------------------
# Databases


class Persistence(Strict):
    size: Quantity = field("8Gi", description="Size of the data volume.")
    storageClass: str = field("", description="StorageClass; empty: the cluster default.")


class Postgresql(Placement):
    enabled: bool = field(
        True, description="Run the bundled postgres (Prefect's DB and the results DB)."
    )
    image: Image = field(
        default_factory=lambda: Image(repository="postgres", tag="16.4-bookworm"),
        description="Official postgres image, pinned.",
    )
    username: str = field("simmate", description="Database user.", pattern=r"^[a-z_][a-z0-9_]*$")
    database: str = field(
        "prefect", description="Prefect's database.", pattern=r"^[a-z_][a-z0-9_]*$"
    )
    resultsDatabase: str = field(
        "simmate_results",
        description="The results database, created at init.",
        pattern=r"^[a-z_][a-z0-9_]*$",
    )
    existingSecret: str = field(
        "", description="Secret with the password; empty: generated once and kept."
    )
    passwordKey: str = field("password", description="Key of the password in that Secret.")
    persistence: Persistence = field(default_factory=Persistence, description="Data volume.")
    resources: Resources = field(
        default_factory=lambda: resources("100m", "256Mi", "1", "1Gi"),
        description="Requests and limits of postgres.",
    )


class ExternalDatabase(Strict):
    host: str = field("", description="Host of an external postgres for Prefect (managed DB).")
    port: int = field(5432, description="Port.", ge=1, le=65535)
    database: str = field("prefect", description="Database name.", min_length=1)
    user: str = field("prefect", description="User name.", min_length=1)
    existingSecret: str = field("", description="Secret with the (URL-safe) password.")
    passwordKey: str = field("password", description="Key of the password in that Secret.")
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = field(
        "require", description="libpq sslmode."
    )


class Results(Strict):
    existingSecret: str = field(
        "",
        description=(
            "Secret with the results-DB SQLAlchemy URL; empty: the bundled postgres' results "
            "database (Secret `<release>-results-db`)."
        ),
    )
    key: str = field("url", description="Key of the URL in that Secret.")
    connectTimeout: int = field(
        30, description="SIMMATE_DB_CONNECT_TIMEOUT: seconds to wait for the DB.", ge=1
    )


# ---------------------------------------------------------------------------------------------
# Dask


Threads = int | Literal["auto"]


class DaskWorker(Placement):
    replicas: int | None = field(
        None,
        description=(
            "Workers of the default group without the autoscaler (empty: 1). With the autoscaler "
            "the DaskCluster starts at dask.autoscaler.minimum, so leave it empty or equal to it."
        ),
        ge=0,
    )
    nthreads: Threads = field(
        "auto",
        description=(
            "`dask worker --nthreads`; auto: the container's CPU limit (else request), rounded "
            "down, at least 1."
        ),
    )
    memoryLimit: str = field(
        "auto",
        description=(
            "`dask worker --memory-limit`; auto: the container's memory limit (else request) in "
            "bytes, computed by the chart (Dask's own detection misreads cgroup v1 nodes)."
        ),
        min_length=1,
    )
    resources: Resources = field(
        default_factory=lambda: resources("500m", "1Gi", "1", "2Gi"),
        description="Requests and limits of a worker.",
    )


class WorkerGroup(Strict):
    """An extra worker group; every key left out is taken from `dask.worker`."""

    name: str = field(description="Group name (DNS label), e.g. highmem.", pattern=DNS_LABEL)
    replicas: int | None = field(None, description="Workers in the group (not autoscaled).", ge=0)
    nthreads: Threads | None = field(
        None, description="Threads per worker (auto: from the group's CPU)."
    )
    memoryLimit: str | None = field(
        None, description="`dask worker --memory-limit` (auto: from the group's memory)."
    )
    resources: Resources | None = field(None, description="Requests and limits of a worker.")
    nodeSelector: dict[str, str] | None = field(None, description="Node labels to match.")
    tolerations: list[Toleration] | None = field(None, description="Taints tolerated.")


class PodMonitor(Strict):
    enabled: bool = field(
        False,
        description=(
            "A prometheus-operator PodMonitor (monitoring.coreos.com/v1) scraping the scheduler's "
            "/metrics (needs prometheus_client in the image and the CRD in the cluster)."
        ),
    )
    interval: str = field("30s", description="Scrape interval.", pattern=DURATION)
    labels: dict[str, str] = field(
        default_factory=dict,
        description="Extra labels, e.g. the one your Prometheus selects PodMonitors by.",
    )


class DaskSchedulerService(Service):
    allowExternal: bool = field(
        False,
        description=(
            "Allow type NodePort/LoadBalancer (needs dask.tls.enabled): the comm port then takes "
            "connections from outside the cluster (client certificate required) and the "
            "dashboard port 8787 too (plain HTTP, no login: it shows the cluster and can "
            "retire workers, it cannot run code)."
        ),
    )


class DaskScheduler(Placement):
    resources: Resources = field(
        default_factory=lambda: resources("100m", "256Mi", "1", "1Gi"),
        description="Requests and limits of the scheduler.",
    )
    service: DaskSchedulerService = field(
        default_factory=DaskSchedulerService, description="Scheduler Service."
    )
    podMonitor: PodMonitor = field(
        default_factory=PodMonitor, description="Prometheus scraping of the scheduler."
    )


class Autoscaler(Strict):
    enabled: bool = field(True, description="Create a DaskAutoscaler for the default workers.")
    minimum: int = field(0, description="Fewest workers; 0 scales to zero when idle.", ge=0)
    maximum: int = field(4, description="Most workers.", ge=1)


class DaskTlsIssuerRef(Strict):
    name: str = field("", description="Issuer name; set: cert-manager makes the certificates.")
    kind: str = field("Issuer", description="Issuer or ClusterIssuer.", min_length=1)
    group: str = field("cert-manager.io", description="The issuer's API group.", min_length=1)


class DaskTlsCertManager(Strict):
    issuerRef: DaskTlsIssuerRef = field(
        default_factory=DaskTlsIssuerRef,
        description=(
            "A CA issuer (it must fill in ca.crt) for two Certificates, <release>-dask-tls-"
            "scheduler and -client; needs the cert-manager CRDs."
        ),
    )


class DaskTls(Strict):
    enabled: bool = field(
        True,
        description=(
            "Dask comms over mutual TLS (tls://, encryption required): scheduler, workers, "
            "flow-run pods, the test pod and the CLI present certificates of the release's CA."
        ),
    )
    existingSecret: str = field(
        "",
        description=(
            "Secret with ca.crt, scheduler.crt, scheduler.key, client.crt, client.key (PEM); "
            "empty: generated by the chart (Secret `<release>-dask-tls`) or by cert-manager."
        ),
    )
    certManager: DaskTlsCertManager = field(
        default_factory=DaskTlsCertManager, description="Certificates from cert-manager."
    )
    validityDays: int = field(
        3650, description="Validity of generated (or cert-manager) certificates.", ge=1, le=36500
    )


class Dask(Strict):
    enabled: bool = field(True, description="Create the DaskCluster (needs the Dask operator).")
    tls: DaskTls = field(default_factory=DaskTls, description="TLS for the Dask comms.")
    scheduler: DaskScheduler = field(default_factory=DaskScheduler, description="The scheduler.")
    worker: DaskWorker = field(default_factory=DaskWorker, description="The default workers.")
    autoscaler: Autoscaler = field(default_factory=Autoscaler, description="Autoscaling.")
    workerGroups: list[WorkerGroup] = field(
        default_factory=list, description="Extra worker groups (DaskWorkerGroup), e.g. high-memory."
    )
    recreateOnUpgrade: bool = field(
        True,
        description=(
            "A pre-upgrade hook deletes the DaskCluster when its rendered spec changed (the "
            "operator does not update running pods), so Helm re-creates it with the new spec."
        ),
    )


class CrdUpgrade(Strict):
    image: Image = field(
        default_factory=lambda: Image(repository="registry.k8s.io/kubectl", tag="v1.33.4"),
        description="An image with `kubectl` on PATH, pinned.",
    )


class DaskOperator(Strict):
    enabled: bool = field(
        True, description="Install the dask-kubernetes-operator subchart (once per cluster)."
    )
    upgradeCRDs: bool = field(
        False,
        description=(
            "A pre-upgrade hook applies the Dask CRDs of this chart (Helm never upgrades a "
            "chart's crds/); needs a ClusterRole limited to those four CRDs."
        ),
    )
    crdUpgrade: CrdUpgrade = field(
        default_factory=CrdUpgrade, description="The CRD upgrade hook Job."
    )


class Hooks(Strict):
    resources: Resources = field(
        default_factory=lambda: resources("50m", "64Mi", "200m", "128Mi"),
        description=(
            "Requests and limits of the small Kubernetes-API hook Jobs (DaskCluster re-create, "
            "apollo restart, CRD upgrade)."
        ),
    )
    timeoutSeconds: int = field(
        300, description="How long a hook Job waits (for a deletion or a rollout).", ge=30
    )


# ---------------------------------------------------------------------------------------------
# Agent and flow-run Jobs


class JobPreset(Placement):
    resources: Resources = field(description="Requests and limits of the flow-run container.")
    activeDeadlineSeconds: int | None = field(
        None,
        description="Longest a flow-run Job may run; empty: agent.jobActiveDeadlineSeconds.",
        ge=1,
    )


def default_presets() -> dict[str, JobPreset]:
    return {
        "default": JobPreset(resources=resources("250m", "512Mi", "1", "1Gi")),
        "small": JobPreset(resources=resources("100m", "256Mi", "500m", "512Mi")),
        "large": JobPreset(resources=resources("1", "2Gi", "2", "4Gi")),
    }


class Agent(Placement):
    enabled: bool = field(True, description="Run the Prefect Kubernetes agent.")
    labels: list[str] = field(
        default_factory=lambda: ["simmate"], description="Labels of flow runs the agent picks up."
    )
    apiUrl: str = field("", description="Prefect API URL; empty: this release's apollo Service.")
    resources: Resources = field(
        default_factory=lambda: resources("100m", "256Mi", "500m", "512Mi"),
        description="Requests and limits of the agent.",
    )
    jobPresets: dict[str, JobPreset] = field(
        default_factory=default_presets,
        description=(
            "Flow-run resources by preset name; one job template each "
            "(/etc/simmate/job-templates/<name>.yaml). `default` is required."
        ),
    )
    deleteFinishedJobs: bool = field(True, description="Delete flow-run Jobs when they finish.")
    jobTtlSeconds: int = field(
        3600,
        description="ttlSecondsAfterFinished of every flow-run Job (the one place it is set).",
        ge=0,
    )
    jobActiveDeadlineSeconds: int = field(
        86400,
        description="activeDeadlineSeconds of flow-run Jobs whose preset sets none (24 h).",
        ge=1,
    )


class HelmTests(Strict):
    enabled: bool = field(True, description="Add the `helm test` pod (submits the smoke flow).")
    flow: str = field("smoke", description="Flow the test submits and waits for.")
    resources: Resources = field(
        default_factory=lambda: resources("100m", "256Mi", "500m", "512Mi"),
        description="Requests and limits of the test pod.",
    )


class NetworkPolicy(Strict):
    enabled: bool = field(
        True, description="NetworkPolicies: databases and hasura accept only their clients."
    )


class ProjectImage(Image):
    repository: str = field(
        "simmate-k8s",
        description=(
            "The project image. The cloud profiles leave it empty: the registry the cluster "
            "pulls from must be set."
        ),
    )
    tag: str = field(CHART_VERSION, description="Its tag (the chart appVersion); never `latest`.")


# ---------------------------------------------------------------------------------------------
# The whole chart


class ChartValues(Strict):
    nameOverride: str = field("", description="Replaces the chart name in object names.")
    fullnameOverride: str = field("", description="Replaces `<release>-<chart>` in object names.")
    commonLabels: dict[str, str] = field(
        default_factory=dict, description="Labels added to every object."
    )
    imagePullSecrets: list[str] = field(
        default_factory=list, description="Names of image pull Secrets for every pod."
    )
    image: ProjectImage = field(
        default_factory=ProjectImage,
        description="Project image: dask workers and scheduler, agent, flow-run Jobs, tests.",
    )
    prefectServer: PrefectServer = field(default_factory=PrefectServer, description="Prefect v1.")
    postgresql: Postgresql = field(default_factory=Postgresql, description="Bundled postgres.")
    externalDatabase: ExternalDatabase = field(
        default_factory=ExternalDatabase,
        description="External postgres for Prefect when `postgresql.enabled` is false.",
    )
    results: Results = field(default_factory=Results, description="The results database.")
    dask: Dask = field(default_factory=Dask, description="The Dask cluster.")
    daskOperator: DaskOperator = field(
        default_factory=DaskOperator, description="The Dask operator subchart switch."
    )
    dask_kubernetes_operator: dict[str, Any] = Field(
        default_factory=lambda: {
            "resources": {
                "requests": {"cpu": "50m", "memory": "128Mi"},
                "limits": {"cpu": "500m", "memory": "512Mi"},
            },
            "podSecurityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        },
        alias="dask-kubernetes-operator",
        description="Values passed to the dask-kubernetes-operator subchart.",
    )
    agent: Agent = field(default_factory=Agent, description="The Prefect Kubernetes agent.")
    tests: HelmTests = field(default_factory=HelmTests, description="`helm test` hook.")
    hooks: Hooks = field(default_factory=Hooks, description="The chart's Kubernetes-API hook Jobs.")
    networkPolicy: NetworkPolicy = field(
        default_factory=NetworkPolicy, description="NetworkPolicies."
    )
    global_: dict[str, Any] = Field(
        default_factory=dict, alias="global", description="Helm global values (unused)."
    )

    @model_validator(mode="after")
    def check_combinations(self) -> ChartValues:
        problems = combination_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def combination_problems(v: ChartValues) -> list[str]:
    """Rules across keys. ``templates/_validate.tpl`` states the same rules in the same words."""
    problems = []
    ps, pg, ext = v.prefectServer, v.postgresql, v.externalDatabase
    if pg.enabled and ext.host:
        problems.append("postgresql.enabled and externalDatabase.host are both set: choose one")
    if ps.enabled and not pg.enabled and not ext.host:
        problems.append(
            "prefectServer needs a database: enable postgresql or set externalDatabase.host"
        )
    if ext.host and not ext.existingSecret:
        problems.append(
            "externalDatabase.host needs externalDatabase.existingSecret (the password)"
        )
    if (v.dask.enabled or v.agent.enabled) and not pg.enabled and not v.results.existingSecret:
        problems.append("the results DB needs postgresql.enabled or results.existingSecret")
    if v.dask.autoscaler.minimum > v.dask.autoscaler.maximum:
        problems.append("dask.autoscaler.minimum is larger than dask.autoscaler.maximum")
    scaler, replicas = v.dask.autoscaler, v.dask.worker.replicas
    if scaler.enabled and replicas is not None and replicas != scaler.minimum:
        # The operator scales a fresh worker away before it registers ("Retired workers {}").
        problems.append(
            "dask.worker.replicas must be empty or equal dask.autoscaler.minimum (autoscaler on)"
        )
    if not v.image.repository:
        problems.append(
            "image.repository is not set: set --set image.repository=REGISTRY/simmate-k8s"
        )
    if ps.retention.enabled and not ps.enabled:
        problems.append("prefectServer.retention.enabled needs prefectServer.enabled")
    if v.agent.enabled and not ps.enabled and not v.agent.apiUrl:
        problems.append("agent.enabled without prefectServer.enabled needs agent.apiUrl")
    if pg.enabled and pg.existingSecret and not v.results.existingSecret:
        problems.append("postgresql.existingSecret needs results.existingSecret (the results URL)")
    if "default" not in v.agent.jobPresets:
        problems.append("agent.jobPresets must contain `default`")
    if any(not re.fullmatch(DNS_LABEL, name) for name in v.agent.jobPresets):
        problems.append("agent.jobPresets names must be DNS labels (a-z, 0-9, -)")
    names = [group.name for group in v.dask.workerGroups]
    if len(names) != len(set(names)) or "default" in names:
        problems.append("dask.workerGroups names must be unique and not `default`")
    if ps.ingress.enabled and not ps.ingress.host:
        problems.append("prefectServer.ingress.enabled needs prefectServer.ingress.host")
    if ps.ingress.basicAuth.enabled and not ps.ingress.basicAuth.existingSecret:
        problems.append("prefectServer.ingress.basicAuth.enabled needs basicAuth.existingSecret")
    tls, service = v.dask.tls, v.dask.scheduler.service
    if service.type != "ClusterIP" and not (tls.enabled and service.allowExternal):
        # Anyone who reaches :8786 can run code on the workers unless it takes TLS client certs.
        problems.append(
            "dask.scheduler.service NodePort/LoadBalancer needs dask.tls.enabled and allowExternal"
        )
    if tls.existingSecret and tls.certManager.issuerRef.name:
        problems.append(
            "dask.tls.existingSecret and dask.tls.certManager.issuerRef are both set: choose one"
        )
    return problems
