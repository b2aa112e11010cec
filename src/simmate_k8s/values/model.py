"""The pydantic model of the ``charts/simmate`` values: the one source of truth.

Keys are camelCase like every Helm chart. Unknown keys are errors (``extra="forbid"``), every
field carries a description (it becomes the schema's documentation), and the cross-field rules in
``ChartValues.check_combinations`` are repeated in ``templates/_validate.tpl`` so that ``helm``
rejects the same bad combinations with the same words.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_serializer,
    model_validator,
)

from simmate_k8s import __version__

# The default project image tag is the package version (pyproject.toml -> package metadata);
# Chart.yaml's appVersion must equal it (tests/chart/test_versions.py).
CHART_VERSION = __version__
PREFECT_SERVER_VERSION = "core-1.4.1"
DASK_KUBERNETES_VERSION = "2026.3.0"

# Every rule on a single value is a JSON-schema constraint (pattern, bounds, lengths, `not`), so
# values.schema.json, generated from this module, makes helm refuse what the model refuses. Only
# rules across keys live in Python (combination_problems) and, in the same words, _validate.tpl.
# The patterns are RE2/Rust-regex compatible (no lookaround): `$` is the end of the text in both
# helm's and pydantic's engines, so a trailing newline never slips through.
QUANTITY = r"^[0-9]{1,15}(\.[0-9]{1,9})?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
DNS_LABEL = r"^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$"
# An RFC 1123 subdomain: Secret, StorageClass, IngressClass and pull-secret names, host names.
DNS_NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"
# A Kubernetes label value (also Prefect agent labels and toleration values).
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$"
# A label or annotation key: an optional DNS prefix and a name of at most 63 characters.
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
# Data keys of a Secret.
SECRET_KEY = r"^[-._A-Za-z0-9]{1,253}$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
# A Docker tag; empty means the chart's default tag.
TAG = r"^([A-Za-z0-9_][-A-Za-z0-9_.]{0,127})?$"
# An image repository without tag: [registry[:port]/]path, lowercase.
REPOSITORY = r"^[a-z0-9]([-a-z0-9._/:]{0,253}[a-z0-9])?$"
URL = r"^https?://[-A-Za-z0-9._~:/?#@!$&()*+,;=%\[\]]+$"
SQL_NAME = r"^[a-z_][a-z0-9_]{0,62}$"
# An external database's name or user, placed in a connection URL.
DB_IDENT = r"^[A-Za-z0-9_][-A-Za-z0-9_.]{0,62}$"
# A host name or IPv4 address (upper case allowed, as DNS is case-insensitive).
HOST_NAME = (
    r"^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$"
)
# nameOverride / fullnameOverride: a DNS label, as the chart puts it in every object name.
NAME_OVERRIDE = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$"
# Prometheus durations, e.g. 30s, 1m, 1h30m.
DURATION = r"^(([0-9]{1,6})(ms|s|m|h|d|w|y)){1,4}$"
# Five cron fields (or a @macro), as a Kubernetes CronJob schedule.
CRON = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
    r"|([-0-9*/,A-Za-z]{1,32} ){4}[-0-9*/,A-Za-z]{1,32})$"
)
# `dask worker --memory-limit`: auto, bytes, a fraction, or a size such as 3GiB / 4G.
MEMORY_LIMIT = r"^(auto|[0-9]{1,15}(\.[0-9]{1,9})?( ?([kKMGTPE]i?B?|B))?)$"
# Bounds: far above any real lab cluster, far below what would exhaust the API server.
MAX_REPLICAS = 1000
MAX_SECONDS = 31_536_000  # a year
MAX_ENTRIES = 64  # keys of a labels/annotations/env map, items of a list
ANNOTATION_VALUE_MAX = 4096

# Environment variables the chart sets itself in some container. extraEnv may not name them: a
# later duplicate would replace e.g. a secret-backed HASURA_GRAPHQL_ADMIN_SECRET with plain text.
# tests/chart/test_hostile_values.py checks that every name the chart renders is listed here.
CHART_ENV = (
    "HOME",
    "PREFECT__BACKEND",
    "PREFECT__CLOUD__API",
    "PREFECT__SERVER__ENDPOINT",
    "PREFECT_DB_PASSWORD",
    "PREFECT_SERVER__DATABASE__CONNECTION_URL",
    "PREFECT_SERVER__HASURA__HOST",
    "PREFECT_SERVER__HASURA__PORT",
    "PREFECT_SERVER__HASURA__ADMIN_SECRET",
    "PREFECT_SERVER__TELEMETRY__ENABLED",
    "HASURA_GRAPHQL_DATABASE_URL",
    "HASURA_GRAPHQL_ADMIN_SECRET",
    "HASURA_GRAPHQL_UNAUTHORIZED_ROLE",
    "HASURA_GRAPHQL_SERVER_PORT",
    "HASURA_GRAPHQL_ENABLE_CONSOLE",
    "HASURA_GRAPHQL_ENABLE_TELEMETRY",
    "HASURA_GRAPHQL_V1_BOOLEAN_NULL_COLLAPSE",
    "HASURA_GRAPHQL_LOG_LEVEL",
    "HASURA_API_URL",
    "PREFECT_API_URL",
    "PREFECT_API_HEALTH_URL",
    "GRAPHQL_SERVICE_HOST",
    "GRAPHQL_SERVICE_PORT",
    "APOLLO_API_PORT",
    "SIMMATE_DATABASE_URL",
    "SIMMATE_DB_PASSWORD",
    "SIMMATE_DB_CONNECT_TIMEOUT",
    "SIMMATE_IMAGE",
    "SIMMATE_DASK_ADDRESS",
    "SIMMATE_JOB_PRESET",
    "SIMMATE_WORKER_GROUP",
    "NAMESPACE",
    "DELETE_FINISHED_JOBS",
    "PREFECT__CLOUD__AGENT__AGENT_ADDRESS",
    "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES",
    "TENANT_NAME",
    "TENANT_SLUG",
    # postgres, retention and hook Jobs
    "POSTGRES_USER",
    "POSTGRES_DB",
    "POSTGRES_PASSWORD",
    "SIMMATE_PG_PREFECT_DB",
    "SIMMATE_PG_RESULTS_DB",
    "SIMMATE_PG_PREFECT_ROLE",
    "SIMMATE_PG_PREFECT_PASSWORD",
    "SIMMATE_PG_OWNER_ROLE",
    "SIMMATE_PG_OWNER_PASSWORD",
    "SIMMATE_PG_WRITER_ROLE",
    "SIMMATE_PG_WRITER_PASSWORD",
    "SIMMATE_PG_READER_ROLE",
    "SIMMATE_PG_READER_PASSWORD",
    "PGDATA",
    "TZ",
    "PGTZ",
    "PGHOST",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGSSLMODE",
    "PGCONNECT_TIMEOUT",
    "PGAPPNAME",
    "DASK_CLUSTER",
    "DEPLOYMENT",
    "SPEC_CHECKSUM",
    "TIMEOUT_SECONDS",
    "WATCH_NAMESPACE",
    "HASURA_PROXY_PORT",
    "HASURA_UPSTREAM",
    "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION",
    "DASK_DISTRIBUTED__COMM__TLS__CA_FILE",
    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT",
    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY",
    "DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__CERT",
    "DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__KEY",
    "DASK_DISTRIBUTED__COMM__TLS__WORKER__CERT",
    "DASK_DISTRIBUTED__COMM__TLS__WORKER__KEY",
    "DASK_SCHEDULER_ADDRESS",
)


def forbid(values: tuple[str, ...], reason: str) -> tuple[Any, Any]:
    """Refuse these exact strings, in the model and (as `not: {enum}`) in the schema: one rule."""
    refused = frozenset(values)

    def check(value: str) -> str:
        if value in refused:
            raise ValueError(f"`{value}` {reason}")
        return value

    # read by the test that every Python rule has a schema twin
    check.schema_not = {"enum": sorted(refused)}
    return AfterValidator(check), Field(json_schema_extra={"not": check.schema_not})


def _forbid_pattern(test, pattern: str, reason: str) -> tuple[Any, Any]:
    """Refuse strings where test(value) holds; the schema gets `not: {pattern}`."""

    def check(value: str) -> str:
        if test(value):
            raise ValueError(f"`{value}` {reason}")
        return value

    check.schema_not = {"pattern": pattern}
    return AfterValidator(check), Field(json_schema_extra={"not": check.schema_not})


def forbid_prefix(prefixes: tuple[str, ...], reason: str) -> tuple[Any, Any]:
    """Refuse strings starting with any of these."""
    pattern = "^(" + "|".join(re.escape(prefix) for prefix in prefixes) + ")"
    return _forbid_pattern(lambda value: value.startswith(prefixes), pattern, reason)


def forbid_suffix(suffixes: tuple[str, ...], reason: str) -> tuple[Any, Any]:
    """Refuse strings ending with any of these."""
    pattern = "(" + "|".join(re.escape(suffix) for suffix in suffixes) + ")$"
    return _forbid_pattern(lambda value: value.endswith(suffixes), pattern, reason)


def text(pattern: str, max_length: int, description: str = "") -> Any:
    return Annotated[str, Field(pattern=pattern, max_length=max_length, description=description)]


Quantity = Annotated[
    str, Field(pattern=QUANTITY, max_length=32, description="A Kubernetes quantity.")
]
Tag = Annotated[
    str, Field(pattern=TAG, max_length=128), *forbid(("latest",), "is not allowed: pin a version")
]
DnsName = text(DNS_NAME, 253)
MaybeDnsName = text(f"^$|{DNS_NAME}", 253)  # empty: the chart's default
LabelKey = text(LABEL_KEY, 317)
HostName = text(HOST_NAME, 253)
LabelValue = text(LABEL_VALUE, 63)
SecretKey = text(SECRET_KEY, 253)
EnvName = Annotated[
    str, Field(pattern=ENV_NAME, max_length=128), *forbid(CHART_ENV, "is set by the chart")
]
# Maps rendered as labels, annotations or env: bounded keys, values and sizes.
Labels = Annotated[dict[LabelKey, LabelValue], Field(max_length=MAX_ENTRIES)]
# Labels the chart adds to its own objects: the prefixes of the labels it sets itself (selectors,
# NetworkPolicy peers) are refused, a duplicate key would silently replace or break them.
CHART_LABEL_PREFIXES = ("app.kubernetes.io/", "helm.sh/", "simmate-k8s.io/")
OwnLabelKey = Annotated[
    LabelKey, *forbid_prefix(CHART_LABEL_PREFIXES, "is a label the chart sets itself")
]
OwnLabels = Annotated[dict[OwnLabelKey, LabelValue], Field(max_length=MAX_ENTRIES)]
Annotations = Annotated[
    dict[LabelKey, Annotated[str, Field(max_length=ANNOTATION_VALUE_MAX)]],
    Field(max_length=MAX_ENTRIES),
]
ExtraEnv = Annotated[
    dict[EnvName, Annotated[str, Field(max_length=ANNOTATION_VALUE_MAX)]],
    Field(max_length=MAX_ENTRIES),
]
# An image reference pinned by a tag or a digest (the tag `latest` is refused below).
IMAGE_REF = r"^[^\s@]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$"
ImageRef = Annotated[
    str,
    Field(pattern=IMAGE_REF, max_length=512),
    *forbid_suffix((":latest",), "is not allowed: pin a version"),
]
# A hasura role for unauthenticated requests; empty means none. `admin` would hand hasura's
# admin rights to every pod that reaches it.
HasuraRole = Annotated[
    str,
    Field(pattern=r"^$|^[A-Za-z0-9_-]{1,63}$"),
    *forbid(("admin",), "would give anonymous requests hasura's admin rights"),
]


def field(default: Any = ..., description: str = "", **kwargs: Any) -> Any:
    """A field whose description is mandatory: the schema documents every key."""
    if "default_factory" in kwargs:
        return Field(description=description, **kwargs)
    return Field(default, description=description, **kwargs)


def required_keys(model: type[BaseModel]) -> list[str]:
    """Keys that may not be null: values.yaml sets them, and `key: null` would make Helm drop
    the key and the templates fail. The schema lists them as `required`; render.py checks the
    same list on the merged values."""
    if model.user_item:
        return [name for name, info in model.model_fields.items() if info.is_required()]
    keys = []
    for name, info in model.model_fields.items():
        if info.is_required() or info.get_default(call_default_factory=True) is not None:
            keys.append(info.alias or name)
    return keys


def _require_non_null_keys(schema: dict[str, Any], model: type[BaseModel]) -> None:
    schema["required"] = required_keys(model)


class Strict(BaseModel):
    # True for models the user writes whole (list items, map values): Helm fills in no defaults
    # there, so only their keys without a default are required.
    user_item: ClassVar[bool] = False
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        validate_default=True,
        json_schema_extra=_require_non_null_keys,
    )


# ---------------------------------------------------------------------------------------------
# Building blocks


class Image(Strict):
    repository: str = field(
        description="Image repository.", min_length=1, max_length=255, pattern=REPOSITORY
    )
    tag: Tag = field("", description="Image tag; never `latest`. Empty means the default tag.")
    pullPolicy: Literal["IfNotPresent", "Always", "Never"] = field(
        "IfNotPresent", description="Kubernetes imagePullPolicy."
    )


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
    user_item = True
    key: str = field(
        "", description="Taint key to tolerate.", pattern=f"^$|{LABEL_KEY}", max_length=317
    )
    operator: Literal["Exists", "Equal"] = field("Equal", description="Exists or Equal.")
    value: LabelValue = field("", description="Taint value (with operator Equal).")
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = field(
        "", description="Taint effect to tolerate; empty means all."
    )


UID = Annotated[int, Field(ge=1, le=2147483647)]


class Overrides(Strict):
    """Settings that cascade (component, then chart-wide, then the chart's own): a null key
    means "inherit", so it is left out of values.yaml and rendered values."""

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler):
        return {key: value for key, value in handler(self).items() if value is not None}


class PodSecurity(Overrides):
    """The pod securityContext keys a cluster may need to set (OpenShift UID ranges, the group
    of shared storage). A key left null inherits: the component's value, then the chart-wide
    `securityContext`, then the image's own user. runAsNonRoot, seccomp and every container
    setting (no privilege escalation, read-only root, no capabilities) are not values."""

    runAsUser: UID | None = field(None, description="Non-root UID the containers run as.")
    runAsGroup: UID | None = field(None, description="GID the containers run as.")
    fsGroup: UID | None = field(None, description="Group that owns mounted volumes.")
    fsGroupChangePolicy: Literal["OnRootMismatch", "Always"] | None = field(
        None, description="When Kubernetes changes volume ownership to fsGroup."
    )
    supplementalGroups: list[UID] | None = field(
        None, description="Extra groups of the containers.", max_length=32
    )


class Placement(Strict):
    """Where, and as whom, a component's pods run."""

    nodeSelector: Labels = field(
        default_factory=dict, description="Node labels the pods must match."
    )
    tolerations: list[Toleration] = field(
        default_factory=list, description="Taints the pods tolerate.", max_length=MAX_ENTRIES
    )
    securityContext: PodSecurity = field(
        default_factory=PodSecurity,
        description="Pod security settings; null keys: the chart-wide `securityContext`.",
    )


SECONDS = Annotated[int, Field(ge=1, le=3600)]


class ProbeTiming(Overrides):
    initialDelaySeconds: Annotated[int, Field(ge=0, le=3600)] | None = field(
        None, description="Seconds before the first probe."
    )
    periodSeconds: SECONDS | None = field(None, description="Seconds between probes.")
    timeoutSeconds: SECONDS | None = field(None, description="Seconds a probe may take.")
    failureThreshold: Annotated[int, Field(ge=1, le=100)] | None = field(
        None, description="Failed probes in a row that count as a failure."
    )


class Probes(Strict):
    readiness: ProbeTiming = field(
        default_factory=ProbeTiming, description="readinessProbe timings (out of the Service)."
    )
    liveness: ProbeTiming = field(
        default_factory=ProbeTiming, description="livenessProbe timings (restart)."
    )


def default_probes() -> Probes:
    return Probes(
        readiness=ProbeTiming(periodSeconds=10, timeoutSeconds=5),
        liveness=ProbeTiming(
            initialDelaySeconds=30, periodSeconds=20, timeoutSeconds=5, failureThreshold=6
        ),
    )


class Deployed(Placement):
    """A long-running component: placement plus its probe timings."""

    probes: Probes = field(
        default_factory=Probes,
        description="Probe timings of this component; null keys: the chart-wide `probes`.",
    )


class Service(Strict):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = field(
        "ClusterIP", description="Kubernetes Service type."
    )
    nodePort: int | None = field(
        None, description="Fixed node port (type NodePort only).", ge=30000, le=32767
    )
    annotations: Annotations = field(
        default_factory=dict, description="Service annotations (e.g. cloud load balancer settings)."
    )


class Component(Deployed):
    """A Prefect Server component: image override, resources, placement."""

    image: Image = field(description="Image; an empty tag means `prefectServer.version`.")
    replicas: int = field(1, description="Number of pods.", ge=1, le=100)
    resources: Resources = field(description="Requests and limits of the container.")
    extraEnv: ExtraEnv = field(
        default_factory=dict,
        description=(
            "Extra environment variables (not secrets). Names the chart sets itself are refused "
            "(they would replace e.g. a secret-backed variable)."
        ),
    )


def component(repository: str, res: Resources, **kwargs: Any) -> Any:
    return Field(
        default_factory=lambda: {"image": {"repository": repository}, "resources": res, **kwargs},
        description=f"The {repository} component.",
    )


# ---------------------------------------------------------------------------------------------
# Prefect Server


class HasuraAdminSecret(Strict):
    existingSecret: MaybeDnsName = field(
        "", description="Secret holding the admin secret; empty: generated once and kept."
    )
    key: SecretKey = field("admin-secret", description="Key of the admin secret in that Secret.")


class Hasura(Component):
    adminSecret: HasuraAdminSecret = field(
        default_factory=HasuraAdminSecret,
        description="Hasura admin secret, given to hasura, graphql, towel and the migration job.",
    )
    unauthorizedRole: HasuraRole = field(
        "",
        description=(
            "Role hasura gives requests without the admin secret; empty: none, such requests are "
            "refused. Never `admin`: every Prefect component sends the secret (apollo through a "
            "sidecar in its pod that adds it), so anonymous admin would only serve attackers."
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
    backoffLimit: int = field(10, description="Retries while the database starts.", ge=0, le=100)
    resources: Resources = field(
        default_factory=lambda: resources("100m", "256Mi", "500m", "512Mi"),
        description="Requests and limits of the migration Job.",
    )


class Graphql(Component):
    migration: Migration = field(
        default_factory=Migration, description="The database migration hook Job."
    )


class PrefectService(Service):
    allowExternal: bool = field(
        False,
        description=(
            "Allow type NodePort/LoadBalancer. Prefect Server v1 has no authentication: anyone "
            "who reaches it can read and create flow runs. Also admit the outside callers in "
            "networkPolicy.extraPeers (e.g. an ipBlock); an Ingress with auth is the safer way."
        ),
    )


class Apollo(Component):
    service: PrefectService = field(
        default_factory=PrefectService, description="The apollo (API) Service."
    )


class Ui(Component):
    enabled: bool = field(True, description="Deploy the Prefect UI.")
    apiUrl: str = field(
        "http://localhost:4200/graphql",
        pattern=URL,
        max_length=2048,
        description=(
            "Prefect API URL as the *browser* reaches it (the UI runs in the browser). Default "
            "fits `kubectl port-forward svc/<release>-apollo 4200`. With ingress, the API URL."
        ),
    )
    service: PrefectService = field(
        default_factory=PrefectService, description="The UI Service."
    )


class Tenant(Strict):
    enabled: bool = field(True, description="Create the default tenant (idempotent hook Job).")
    name: str = field(
        "default", description="Tenant name.", pattern=r"^[A-Za-z0-9][-A-Za-z0-9 _.]{0,62}$"
    )
    slug: str = field("default", description="Tenant slug.", pattern=r"^[a-z0-9-]{1,63}$")
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
    days: int = field(
        30, description="Keep flow runs updated within this many days.", ge=1, le=36500
    )
    batchSize: int = field(
        1000, description="Rows deleted per transaction (per table, per batch).", ge=1, le=1000000
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
    existingSecret: MaybeDnsName = field(
        "", description="Secret with an htpasswd `auth` key (ingress-nginx format)."
    )


class IngressTls(Strict):
    user_item = True
    secretName: DnsName = field(description="TLS Secret for the hosts.")
    hosts: list[HostName] = field(
        default_factory=list, description="Hosts the certificate covers.", max_length=MAX_ENTRIES
    )


class Ingress(Strict):
    enabled: bool = field(False, description="Expose UI and API through an Ingress.")
    className: MaybeDnsName = field(
        "", description="IngressClass name; empty: the cluster default."
    )
    host: str = field(
        "",
        description="Host name serving the UI at / and the API at /graphql.",
        pattern=f"^$|{HOST_NAME}",
        max_length=253,
    )
    annotations: Annotations = field(
        default_factory=dict, description="Ingress annotations (auth, cert-manager, ...)."
    )
    basicAuth: IngressBasicAuth = field(
        default_factory=IngressBasicAuth,
        description="Basic auth with ingress-nginx annotations. Prefect Server v1 has no auth.",
    )
    authProvidedElsewhere: bool = field(
        False,
        description=(
            "Declare that something the chart does not render enforces auth for this Ingress "
            "(oauth2-proxy, the cloud's identity-aware proxy, your class's own annotations). "
            "Without it the chart renders an Ingress only with basicAuth and className nginx."
        ),
    )
    tls: list[IngressTls] = field(
        default_factory=list, description="TLS settings.", max_length=MAX_ENTRIES
    )


class PrefectServer(Strict):
    enabled: bool = field(True, description="Deploy Prefect Server v1 (hasura, graphql, ...).")
    version: Tag = field(
        PREFECT_SERVER_VERSION,
        description="Tag of the prefecthq/server, apollo and ui images (one knob).",
        min_length=1,
    )
    hasura: Hasura = field(
        default_factory=lambda: {
            "image": {"repository": "hasura/graphql-engine", "tag": "v2.1.1"},
            # the image's user
            "securityContext": {"runAsUser": 1001, "runAsGroup": 1001, "fsGroup": 1001},
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
        securityContext={"runAsUser": 101, "runAsGroup": 101, "fsGroup": 101},  # nginx
    )
    tenant: Tenant = field(default_factory=Tenant, description="Default tenant Job.")
    ingress: Ingress = field(default_factory=Ingress, description="Optional Ingress.")
    retention: Retention = field(
        default_factory=Retention, description="Prefect database retention CronJob."
    )


# ---------------------------------------------------------------------------------------------
# Databases


class Persistence(Strict):
    size: Quantity = field("8Gi", description="Size of the data volume.")
    storageClass: MaybeDnsName = field("", description="StorageClass; empty: the cluster default.")


class DbRole(Strict):
    """A login role of the bundled postgres (charts/simmate/files/postgres-roles.sql)."""

    name: str = field(description="Role name.", pattern=SQL_NAME)
    existingSecret: MaybeDnsName = field(
        "",
        description=(
            "Secret with its password (URL-safe characters: it goes into connection URLs); "
            "empty: generated once and kept (Secret `<fullname>-postgresql-<role>`)."
        ),
    )
    passwordKey: SecretKey = field("password", description="Key of the password in that Secret.")


def db_role(name: str, description: str) -> Any:
    return Field(default_factory=lambda: DbRole(name=name), description=description)


class DbRoles(Strict):
    prefect: DbRole = db_role(
        "prefect",
        "Owns Prefect's database (and only that): hasura, graphql, Prefect's migration Job, "
        "the retention CronJob.",
    )
    owner: DbRole = db_role(
        "simmate_owner",
        "Owns the results database and its schema, the one role running DDL there: the "
        "results-schema hook Job.",
    )
    writer: DbRole = db_role(
        "simmate_writer",
        "Reads and writes the rows of the results tables (SELECT, INSERT, UPDATE; no DDL, no "
        "DELETE, no other database): Dask workers, flow-run pods, `submit --backend job` Jobs, "
        "the test pod.",
    )
    reader: DbRole = db_role(
        "simmate_reader",
        "Reads the results tables (SELECT only), for analysis; no pod of the chart uses it.",
    )


class Postgresql(Deployed):
    enabled: bool = field(
        True, description="Run the bundled postgres (Prefect's DB and the results DB)."
    )
    image: Image = field(
        default_factory=lambda: Image(repository="postgres", tag="16.4-bookworm"),
        description="Official postgres image, pinned.",
    )
    username: str = field(
        "postgres",
        description=(
            "The superuser: used only at initialisation (postgres-roles.sql makes the roles and "
            "databases); no other pod gets its password."
        ),
        pattern=SQL_NAME,
    )
    database: str = field("prefect", description="Prefect's database.", pattern=SQL_NAME)
    resultsDatabase: str = field(
        "simmate_results",
        description="The results database, created at init.",
        pattern=SQL_NAME,
    )
    existingSecret: MaybeDnsName = field(
        "",
        description=(
            "Secret with the superuser's password; empty: generated once and kept (Secret "
            "`<fullname>-postgresql`)."
        ),
    )
    passwordKey: SecretKey = field("password", description="Key of the password in that Secret.")
    roles: DbRoles = field(
        default_factory=DbRoles,
        description="The login roles made at initialisation, each with a password Secret.",
    )
    persistence: Persistence = field(default_factory=Persistence, description="Data volume.")
    resources: Resources = field(
        default_factory=lambda: resources("100m", "256Mi", "1", "1Gi"),
        description="Requests and limits of postgres.",
    )


class ExternalDatabase(Strict):
    host: str = field(
        "",
        description="Host of an external postgres for Prefect (managed DB).",
        pattern=f"^$|{HOST_NAME}",
        max_length=253,
    )
    port: int = field(5432, description="Port.", ge=1, le=65535)
    database: str = field("prefect", description="Database name.", pattern=DB_IDENT)
    user: str = field("prefect", description="User name.", pattern=DB_IDENT)
    existingSecret: MaybeDnsName = field("", description="Secret with the (URL-safe) password.")
    passwordKey: SecretKey = field("password", description="Key of the password in that Secret.")
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = field(
        "require", description="libpq sslmode."
    )


class ResultsSchema(Strict):
    enabled: bool = field(
        True,
        description=(
            "Bring the results database to this release's schema (`simmate-k8s db upgrade`) as "
            "its owner, in a post-install/post-upgrade hook Job."
        ),
    )
    existingSecret: MaybeDnsName = field(
        "",
        description=(
            "Secret with the owner's SQLAlchemy URL, for an external results database; empty: "
            "the bundled postgres' owner role."
        ),
    )
    key: SecretKey = field("url", description="Key of the URL in that Secret.")
    backoffLimit: int = field(10, description="Retries while the database starts.", ge=0, le=100)
    resources: Resources = field(
        default_factory=lambda: resources("100m", "256Mi", "500m", "512Mi"),
        description="Requests and limits of the schema Job.",
    )


class Results(Strict):
    existingSecret: MaybeDnsName = field(
        "",
        description=(
            "Secret with the SQLAlchemy URL of an external results database, as its writer (no "
            "DDL needed); empty: the bundled postgres' writer role."
        ),
    )
    key: SecretKey = field("url", description="Key of the URL in that Secret.")
    connectTimeout: int = field(
        30, description="SIMMATE_DB_CONNECT_TIMEOUT: seconds to wait for the DB.", ge=1, le=3600
    )
    schema_: ResultsSchema = field(
        default_factory=ResultsSchema,
        alias="schema",
        description="The results-schema hook Job (migrations as the owner).",
    )


# ---------------------------------------------------------------------------------------------
# Dask


Threads = Annotated[int, Field(ge=1, le=256)] | Literal["auto"]
Replicas = Annotated[int, Field(ge=0, le=MAX_REPLICAS)]
MemoryLimit = text(MEMORY_LIMIT, 32)


class DaskWorker(Deployed):
    replicas: Replicas | None = field(
        None,
        description=(
            "Workers of the default group without the autoscaler (empty: 1). With the autoscaler "
            "the DaskCluster starts at dask.autoscaler.minimum, so leave it empty or equal to it."
        ),
    )
    nthreads: Threads = field(
        "auto",
        description=(
            "`dask worker --nthreads`; auto: the container's CPU limit (else request), rounded "
            "down, at least 1."
        ),
    )
    memoryLimit: MemoryLimit = field(
        "auto",
        description=(
            "`dask worker --memory-limit`; auto: the container's memory limit (else request) in "
            "bytes, computed by the chart (Dask's own detection misreads cgroup v1 nodes)."
        ),
    )
    resources: Resources = field(
        default_factory=lambda: resources("500m", "1Gi", "1", "2Gi"),
        description="Requests and limits of a worker.",
    )


class WorkerGroup(Strict):
    """An extra worker group; every key left out is taken from `dask.worker`."""

    user_item = True

    name: str = field(description="Group name (DNS label), e.g. highmem.", pattern=DNS_LABEL)
    replicas: Replicas | None = field(None, description="Workers in the group (not autoscaled).")
    nthreads: Threads | None = field(
        None, description="Threads per worker (auto: from the group's CPU)."
    )
    memoryLimit: MemoryLimit | None = field(
        None, description="`dask worker --memory-limit` (auto: from the group's memory)."
    )
    resources: Resources | None = field(None, description="Requests and limits of a worker.")
    nodeSelector: Labels | None = field(None, description="Node labels to match.")
    tolerations: list[Toleration] | None = field(
        None, description="Taints tolerated.", max_length=MAX_ENTRIES
    )


class PodMonitor(Strict):
    enabled: bool = field(
        False,
        description=(
            "A prometheus-operator PodMonitor (monitoring.coreos.com/v1) scraping the scheduler's "
            "/metrics (needs prometheus_client in the image and the CRD in the cluster)."
        ),
    )
    interval: str = field("30s", description="Scrape interval.", pattern=DURATION)
    labels: OwnLabels = field(
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


class DaskScheduler(Deployed):
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
    minimum: int = field(
        0, description="Fewest workers; 0 scales to zero when idle.", ge=0, le=MAX_REPLICAS
    )
    maximum: int = field(4, description="Most workers.", ge=1, le=MAX_REPLICAS)


class DaskTlsIssuerRef(Strict):
    name: MaybeDnsName = field(
        "", description="Issuer name; set: cert-manager makes the certificates."
    )
    kind: Literal["Issuer", "ClusterIssuer"] = field("Issuer", description="The issuer kind.")
    group: DnsName = field("cert-manager.io", description="The issuer's API group.")


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
    existingSecret: MaybeDnsName = field(
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
        default_factory=list,
        description="Extra worker groups (DaskWorkerGroup), e.g. high-memory.",
        max_length=MAX_ENTRIES,
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
        300, description="How long a hook Job waits (for a deletion or a rollout).", ge=30, le=86400
    )


# ---------------------------------------------------------------------------------------------
# Agent and flow-run Jobs


class JobPreset(Placement):
    user_item = True
    resources: Resources = field(description="Requests and limits of the flow-run container.")
    activeDeadlineSeconds: int | None = field(
        None,
        description="Longest a flow-run Job may run; empty: agent.jobActiveDeadlineSeconds.",
        ge=1,
        le=MAX_SECONDS,
    )


def default_presets() -> dict[str, JobPreset]:
    return {
        "default": JobPreset(resources=resources("250m", "512Mi", "1", "1Gi")),
        "small": JobPreset(resources=resources("100m", "256Mi", "500m", "512Mi")),
        "large": JobPreset(resources=resources("1", "2Gi", "2", "4Gi")),
    }


class Agent(Deployed):
    enabled: bool = field(True, description="Run the Prefect Kubernetes agent.")
    labels: list[Annotated[str, Field(pattern=LABEL_VALUE, min_length=1, max_length=63)]] = field(
        default_factory=lambda: ["simmate"],
        description="Labels of flow runs the agent picks up.",
        max_length=MAX_ENTRIES,
    )
    apiUrl: str = field(
        "",
        description="Prefect API URL; empty: this release's apollo Service.",
        pattern=f"^$|{URL}",
        max_length=2048,
    )
    allowedImages: list[ImageRef] = field(
        default_factory=list,
        description=(
            "Images a flow run's run config may name besides the project image (e.g. the one "
            "`register --image` set); pinned by tag or digest, never `latest`. The agent refuses "
            "any other image, and any run config with its own job template, service account or "
            "environment."
        ),
    )
    resources: Resources = field(
        default_factory=lambda: resources("100m", "256Mi", "500m", "512Mi"),
        description="Requests and limits of the agent.",
    )
    jobPresets: Annotated[dict[str, JobPreset], Field(max_length=MAX_ENTRIES)] = field(
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
        le=MAX_SECONDS,
    )
    jobActiveDeadlineSeconds: int = field(
        86400,
        description="activeDeadlineSeconds of flow-run Jobs whose preset sets none (24 h).",
        ge=1,
        le=MAX_SECONDS,
    )


class HelmTests(Strict):
    enabled: bool = field(True, description="Add the `helm test` pod (submits the smoke flow).")
    flow: str = field(
        "smoke",
        description="Workflow the test submits and waits for (a name from `simmate-k8s flows`).",
        pattern=r"^[a-z][a-z0-9_]{0,62}$",
    )
    resources: Resources = field(
        default_factory=lambda: resources("100m", "256Mi", "500m", "512Mi"),
        description="Requests and limits of the test pod.",
    )


CIDR = r"^[0-9a-fA-F.:]{2,39}/[0-9]{1,3}$"


class LabelSelectorRequirement(Strict):
    user_item = True
    key: LabelKey = field(description="Label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = field(description="Operator.")
    values: list[LabelValue] = field(
        default_factory=list, description="Values (In/NotIn).", max_length=MAX_ENTRIES
    )


class LabelSelector(Strict):
    user_item = True
    matchLabels: Labels = field(default_factory=dict, description="Labels to match.")
    matchExpressions: list[LabelSelectorRequirement] = field(
        default_factory=list, description="Set-based requirements.", max_length=MAX_ENTRIES
    )


class IpBlock(Strict):
    user_item = True
    cidr: str = field(description="A CIDR, e.g. 10.0.0.0/8.", pattern=CIDR)
    except_: list[Annotated[str, Field(pattern=CIDR)]] = field(
        default_factory=list, alias="except", description="CIDRs left out.", max_length=MAX_ENTRIES
    )


class NetworkPolicyPeer(Strict):
    """A Kubernetes NetworkPolicyPeer. Without namespaceSelector: this namespace only."""

    user_item = True

    podSelector: LabelSelector | None = field(None, description="Pods, by label.")
    namespaceSelector: LabelSelector | None = field(
        None, description="Namespaces, by label ({} = every namespace)."
    )
    ipBlock: IpBlock | None = field(None, description="Addresses outside the cluster.")

    def well_formed(self) -> bool:
        """Kubernetes' rule: selectors or an ipBlock, one kind and at least one."""
        selectors = self.podSelector is not None or self.namespaceSelector is not None
        return selectors != (self.ipBlock is not None)


def peer(pod_labels: dict[str, str], namespace_labels: dict[str, str] | None = None) -> Any:
    namespaces = None if namespace_labels is None else LabelSelector(matchLabels=namespace_labels)
    return NetworkPolicyPeer(podSelector=LabelSelector(matchLabels=pod_labels),
                             namespaceSelector=namespaces)  # fmt: skip


# Components that serve a port; networkpolicy.yaml holds who may call each of them.
SERVING_COMPONENTS = (
    "postgresql", "hasura", "graphql", "apollo", "ui", "dask-scheduler", "dask-worker",
)  # fmt: skip


class NetworkPolicy(Strict):
    enabled: bool = field(
        True,
        description=(
            "NetworkPolicies: ingress to every pod of the release is denied except from the "
            "components that call it (templates/networkpolicy.yaml)."
        ),
    )
    ingressController: NetworkPolicyPeer = field(
        default_factory=lambda: peer(
            {"app.kubernetes.io/name": "ingress-nginx"},
            {"kubernetes.io/metadata.name": "ingress-nginx"},
        ),
        description="The ingress controller's pods, admitted to apollo and the UI with ingress on.",
    )
    daskOperator: NetworkPolicyPeer = field(
        default_factory=lambda: peer({"app.kubernetes.io/name": "dask-kubernetes-operator"}),
        description=(
            "The dask-kubernetes operator's pods (its autoscaler calls the scheduler's HTTP API); "
            "add a namespaceSelector when the operator runs in another namespace."
        ),
    )
    prometheus: NetworkPolicyPeer = field(
        default_factory=lambda: peer({"app.kubernetes.io/name": "prometheus"}, {}),
        description="Prometheus pods, admitted to the scheduler metrics port with the PodMonitor.",
    )
    extraPeers: dict[
        Literal[SERVING_COMPONENTS],  # type: ignore[valid-type]
        Annotated[list[NetworkPolicyPeer], Field(max_length=MAX_ENTRIES)],
    ] = field(
        default_factory=dict,
        description=(
            "More peers per component, e.g. {apollo: [{ipBlock: {cidr: 10.0.0.0/8}}]} for a "
            "NodePort; components: " + ", ".join(SERVING_COMPONENTS) + "."
        ),
    )


class ProjectImage(Image):
    repository: str = field(
        "simmate-k8s",
        pattern=f"^$|{REPOSITORY}",
        max_length=255,
        description=(
            "The project image. The cloud profiles leave it empty: the registry the cluster "
            "pulls from must be set."
        ),
    )
    tag: Tag = field(CHART_VERSION, description="Its tag (the chart appVersion); never `latest`.")


# ---------------------------------------------------------------------------------------------
# The whole chart


class ChartValues(Strict):
    nameOverride: str = field(
        "", description="Replaces the chart name in object names.", pattern=NAME_OVERRIDE
    )
    fullnameOverride: str = field(
        "", description="Replaces `<release>-<chart>` in object names.", pattern=NAME_OVERRIDE
    )
    commonLabels: OwnLabels = field(
        default_factory=dict, description="Labels added to every object."
    )
    imagePullSecrets: list[DnsName] = field(
        default_factory=list,
        description="Names of image pull Secrets for every pod.",
        max_length=MAX_ENTRIES,
    )
    image: ProjectImage = field(
        default_factory=ProjectImage,
        description="Project image: dask workers and scheduler, agent, flow-run Jobs, tests.",
    )
    securityContext: PodSecurity = field(
        default_factory=PodSecurity,
        description=(
            "Pod security settings for every pod; a component's own `securityContext` wins, "
            "null keys fall back to the image's user."
        ),
    )
    probes: Probes = field(
        default_factory=default_probes,
        description="Probe timings of every long-running component; a component's own win.",
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
            # Scoped to the release's namespace: a Role instead of a ClusterRole, and kopf told
            # to watch that namespace only (Kubernetes expands $(WATCH_NAMESPACE) in args).
            "rbac": {"create": True, "cluster": False},
            "extraEnv": [
                {
                    "name": "WATCH_NAMESPACE",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                }
            ],
            "kopfArgs": ["--namespace=$(WATCH_NAMESPACE)", "--standalone"],
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
    role_names = [pg.username] + [getattr(pg.roles, r).name for r in DbRoles.model_fields]
    if len(role_names) != len(set(role_names)):
        problems.append("postgresql.username and the postgresql.roles names must all differ")
    schema = v.results.schema_
    if v.results.existingSecret and schema.enabled and not schema.existingSecret:
        # The writer of an external results database may not create its tables.
        problems.append(
            "results.existingSecret needs results.schema.existingSecret or schema.enabled=false"
        )
    operator = v.dask_kubernetes_operator
    cluster_rbac = bool(operator.get("rbac", {}).get("cluster", True))
    all_namespaces = "--all-namespaces" in (operator.get("kopfArgs") or [])
    if v.daskOperator.enabled and cluster_rbac != all_namespaces:
        problems.append(
            "dask-kubernetes-operator: rbac.cluster and kopfArgs --all-namespaces must agree"
        )
    if pg.resultsDatabase == pg.database:
        problems.append("postgresql.resultsDatabase must differ from postgresql.database")
    npol = v.networkPolicy
    peers = [npol.ingressController, npol.daskOperator, npol.prometheus]
    peers += [peer for extra in npol.extraPeers.values() for peer in extra]
    if not all(peer.well_formed() for peer in peers):
        problems.append(
            "networkPolicy peers need podSelector/namespaceSelector or ipBlock, not both"
        )
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
    ing = ps.ingress
    nginx_basic = ing.basicAuth.enabled and ing.className == "nginx"
    if ps.enabled and ing.enabled and not (nginx_basic or ing.authProvidedElsewhere):
        # Prefect Server v1 has no auth; the basic-auth annotations are ingress-nginx's.
        problems.append(
            "prefectServer.ingress needs auth: basicAuth (className nginx) or authProvidedElsewhere"
        )
    # No authentication in Prefect Server v1: exposing it must be a decision.
    if ps.apollo.service.type != "ClusterIP" and not ps.apollo.service.allowExternal:
        problems.append("prefectServer.apollo.service NodePort/LoadBalancer needs allowExternal")
    if ps.ui.service.type != "ClusterIP" and not ps.ui.service.allowExternal:
        problems.append("prefectServer.ui.service NodePort/LoadBalancer needs allowExternal")
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
