"""``simmate-k8s doctor``: every part a run needs, checked, one row each.

Each check is a function returning :class:`Row` s (check, status, what was found or is wrong,
the command that fixes it); the command only prints them. Nothing here raises for a problem it
finds: a problem is a ``FAIL`` row, and a check that cannot run because an earlier one failed
(or was not asked for) is ``skipped`` with the reason.

Kubernetes checks take an ``kubernetes.client.ApiClient`` and read every object by its labels
(``app.kubernetes.io/instance=<release>`` and the component), never by a name made up here.
Heavy imports (Dask, Prefect, SQLAlchemy, kubernetes) happen inside the functions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

OK, FAIL, SKIPPED = "ok", "FAIL", "skipped"
# Prefect 1 counts an agent healthy when it asked for work within the last minute
# (prefect.backend.flow_run.check_for_compatible_agents, since_minutes=1).
AGENT_HEARTBEAT = timedelta(minutes=1)
OPERATOR_NAME = "dask-kubernetes-operator"  # the operator chart's app.kubernetes.io/name
CRD_FIX = ("helm show crds charts/simmate/charts/dask-kubernetes-operator-*.tgz | "
           "kubectl apply --server-side -f -   (or helm upgrade ... --set "
           "daskOperator.upgradeCRDs=true)")


@dataclass
class Row:
    check: str
    status: str  # OK, FAIL or SKIPPED
    detail: str  # what was found; what is wrong; why it was skipped
    fix: str = ""  # the command that fixes it

    def as_dict(self) -> dict:
        return asdict(self)


def failed(rows: list[Row]) -> bool:
    return any(row.status == FAIL for row in rows)


def _skip(checks: list[str], reason: str) -> list[Row]:
    return [Row(check, SKIPPED, reason) for check in checks]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__


# --- Dask ----------------------------------------------------------------------------------------


def dask_rows(address: str | None, database_url: str, timeout: float) -> list[Row]:
    """The scheduler answers at ``address``; every worker has the preload, on ``database_url``."""
    if not address:
        return _skip(["scheduler", "workers"], "no scheduler address: set SIMMATE_DASK_ADDRESS "
                     "or --scheduler (e.g. through kubectl port-forward)")
    from simmate_k8s import database
    from simmate_k8s import engine as batch_engine
    from simmate_k8s.errors import SimmateError

    try:
        client = batch_engine.connect(address, timeout=timeout)
    except SimmateError as error:
        return [Row("scheduler", FAIL, str(error),
                    "start the scheduler or fix SIMMATE_DASK_ADDRESS / --scheduler"),
                *_skip(["workers"], "no scheduler")]
    rows = [Row("scheduler", OK, f"{address} answers")]
    try:
        try:
            url = database.parse_url(database_url)
        except SimmateError:
            return [*rows, *_skip(["workers"], "the results database URL is not usable")]
        try:
            count = batch_engine.check_workers(client, url)
        except SimmateError as error:
            return [*rows, Row("workers", FAIL, str(error),
                               "start every worker with `--preload simmate_k8s.preload` and "
                               "the SIMMATE_DATABASE_URL this command uses")]
        if count == 0:
            return [*rows, *_skip(["workers"], "no worker connected now (an autoscaled cluster "
                                  "starts them when tasks arrive)")]
        return [*rows, Row("workers", OK, f"{count} worker(s), each with the preload on "
                           f"{database.redact(url)}")]
    finally:
        client.close()


# --- results database ----------------------------------------------------------------------------


def database_rows(database_url: str, timeout: float) -> list[Row]:
    """The results database answers and its schema is the one this release writes."""
    from pathlib import Path

    from simmate_k8s import database, migrations
    from simmate_k8s.errors import SimmateError

    fix_url = "set SIMMATE_DATABASE_URL (e.g. postgresql://USER:PASSWORD@HOST:5432/DB)"
    try:
        url = database.parse_url(database_url)
    except SimmateError as error:
        return [Row("results database", FAIL, str(error), fix_url),
                *_skip(["results schema"], "no usable database URL")]
    shown = database.redact(url)
    if url.get_backend_name() == "sqlite" and not Path(url.database).expanduser().exists():
        return [Row("results database", OK, f"{shown}: not created yet (the first run "
                    "creates it)"), *_skip(["results schema"], "no database file yet")]
    engine = database.create_engine(url)
    try:
        try:
            version = database.connect_with_retry(engine, timeout)
        except SimmateError as error:
            return [Row("results database", FAIL, str(error),
                        f"start the database or {fix_url}; then `simmate-k8s db check`"),
                    *_skip(["results schema"], "no database")]
        rows = [Row("results database", OK, f"{shown} ({version})")]
        try:
            revision = migrations.current_revision(engine)
        except SimmateError as error:
            return [*rows, Row("results schema", FAIL, str(error),
                               "point SIMMATE_DATABASE_URL at another database")]
        if revision == migrations.HEAD:
            return [*rows, Row("results schema", OK, f"revision {revision} (current)")]
        if revision is None:
            return [*rows, Row("results schema", OK, "empty: the first run (or `simmate-k8s "
                               "db upgrade`) creates the tables")]
        if revision in migrations.REVISIONS:
            return [*rows, Row("results schema", FAIL, f"revision {revision}, this release "
                               f"writes {migrations.HEAD}",
                               "simmate-k8s db upgrade   (back the database up first)")]
        return [*rows, Row("results schema", FAIL, f"revision {revision}, made by a newer "
                           f"simmate-k8s (this release writes {migrations.HEAD})",
                           "upgrade this CLI: pip install -U simmate-k8s")]
    finally:
        engine.dispose()


# --- Prefect Server ------------------------------------------------------------------------------


def prefect_rows(config, agent_fix: str = "", now: datetime | None = None) -> list[Row]:
    """Prefect Server answers, has a tenant, knows every flow (in ``config.project``) and an
    agent asked it for work within the last minute."""
    from simmate_k8s import server
    from simmate_k8s.errors import SimmateError
    from simmate_k8s.redaction import redact_url

    where = redact_url(config.api_url)
    later = ["flows registered", "agent heartbeat"]
    try:
        session = server.connect(config)
    except server.NoTenantError as error:
        return [Row("Prefect API", OK, f"{where} answers"),
                Row("tenant", FAIL, str(error), "helm upgrade the release (its tenant hook "
                    "creates it), or: prefect server create-tenant --name default"),
                *_skip(later, "no tenant")]
    except SimmateError as error:
        return [Row("Prefect API", FAIL, str(error),
                    "simmate-k8s config set api-url http://HOST:PORT/graphql   (or "
                    "kubectl port-forward the release's apollo Service)"),
                *_skip(["tenant", *later], "no Prefect API")]
    rows = [Row("Prefect API", OK, f"{where} answers"),
            Row("tenant", OK, f"tenant {session.tenant_slug!r}")]
    for name, check in (("flows registered", lambda: _flows_row(session, config.project)),
                        ("agent heartbeat",
                         lambda: _agent_row(session, agent_fix, now or datetime.now(UTC)))):
        try:
            rows.append(check())
        except SimmateError as error:  # the server answered the tenant query, then failed
            rows.append(Row(name, FAIL, str(error), "read the Prefect Server (apollo) logs"))
    return rows


def _flows_row(session, project: str) -> Row:
    from prefect.utilities.graphql import with_args

    from simmate_k8s.flows.library import FLOWS

    where = {"project": {"name": {"_eq": project}}, "archived": {"_eq": False}}
    flows = session.query({"query": {with_args("flow", {"where": where}): {"name"}}}).flow
    missing = sorted(set(FLOWS) - {flow.name for flow in flows})
    if missing:
        return Row("flows registered", FAIL, f"not registered in project {project!r}: "
                   f"{', '.join(missing)}", f"simmate-k8s register --project {project}")
    return Row("flows registered", OK, f"all {len(FLOWS)} in project {project!r}")


def _agent_row(session, agent_fix: str, now: datetime) -> Row:
    """The newest ``last_queried`` of the agents (Prefect Server's ``agent`` table: an agent
    registers when it starts and the server stamps each of its queries for work)."""
    fix = agent_fix or ("start a Prefect agent (the chart's agent.enabled) and read its log; "
                        "`simmate-k8s doctor --release NAME` checks the chart's agent")
    agents = session.query({"query": {"agent": {"id", "name", "last_queried"}}}).agent
    seen = []
    for agent in agents:
        if agent.last_queried:
            seen.append((datetime.fromisoformat(str(agent.last_queried).replace("Z", "+00:00")),
                         agent.name or agent.id))
    if not seen:
        return Row("agent heartbeat", FAIL, "no agent has asked Prefect Server for work"
                   + (f" ({len(agents)} registered, none polled)" if agents else ""), fix)
    last, name = max(seen)
    age = (now - last).total_seconds()
    if now - last > AGENT_HEARTBEAT:
        return Row("agent heartbeat", FAIL, f"agent {name!r} last asked for work {age:.0f} s "
                   "ago (healthy: within 60 s)", fix)
    return Row("agent heartbeat", OK, f"agent {name!r} asked for work {max(age, 0):.0f} s ago")


# --- Kubernetes ----------------------------------------------------------------------------------


def instance(release: str, component: str | None = None) -> str:
    selector = f"app.kubernetes.io/instance={release}"
    return selector + (f",app.kubernetes.io/component={component}" if component else "")


def kube_api(context: str | None = None):
    """(ApiClient, context name) of the kubeconfig's context (or in-cluster config)."""
    from simmate_k8s import jobs

    name, _ = jobs.kube_context(context)
    _, core = jobs._api(context)  # loads the same config the Job backend uses
    return core.api_client, name or "in-cluster"


def _kube_error(error: Exception) -> str:
    from kubernetes.client.exceptions import ApiException

    if isinstance(error, ApiException):
        try:
            return f"Kubernetes said {error.status} {json.loads(error.body)['message']}"
        except (TypeError, ValueError, KeyError):
            return f"Kubernetes said {error.status} {error.reason}"
    return f"cannot reach the Kubernetes API ({_first_line(error)})"


def api_row(api, context_name: str) -> Row:
    from kubernetes import client

    try:
        version = client.VersionApi(api).get_code().git_version
    except Exception as error:  # noqa: BLE001 - any failure is the row's finding
        return Row("Kubernetes API", FAIL, f"context {context_name!r}: {_kube_error(error)}",
                   "kubectl config use-context NAME   (or set KUBECONFIG)")
    return Row("Kubernetes API", OK, f"context {context_name!r}, server {version}")


def release_row(api, release: str, namespace: str) -> Row:
    """The release's objects, by its instance label (Helm's own label on every object)."""
    from kubernetes import client

    fix = f"helm -n {namespace} list   (install: helm install {release} charts/simmate -n " \
          f"{namespace})"
    try:
        deployments = client.AppsV1Api(api).list_namespaced_deployment(
            namespace, label_selector=instance(release)).items
        templates = client.CoreV1Api(api).list_namespaced_config_map(
            namespace, label_selector=instance(release, "job-templates")).items
    except Exception as error:  # noqa: BLE001
        return Row("release", FAIL, _kube_error(error), fix)
    if not deployments:
        return Row("release", FAIL, f"nothing labelled {instance(release)} in namespace "
                   f"{namespace}", fix)
    charts = sorted({(d.metadata.labels or {}).get("helm.sh/chart", "?") for d in deployments
                     if (d.metadata.labels or {}).get("app.kubernetes.io/name") != OPERATOR_NAME})
    found = f"{len(deployments)} Deployments ({', '.join(charts)})"
    if not templates:
        return Row("release", FAIL, f"{found} but no job-templates ConfigMap (agent.enabled "
                   "is off, or the chart is older)", f"helm -n {namespace} upgrade {release} "
                   "charts/simmate --reuse-values")
    return Row("release", OK, f"{found}, job templates")


def wheel_crds() -> tuple[str, dict[str, dict]] | None:
    """(dask-kubernetes version, {CRD name: CRD}) of the installed dask-kubernetes package:
    the CRDs of the version this CLI's chart pins (pyproject's ``chart`` extra pins it exactly).
    None when it is not installed (the project image leaves it out)."""
    import importlib.util
    from importlib import metadata
    from pathlib import Path

    import yaml

    spec = importlib.util.find_spec("dask_kubernetes")  # located, not imported (slow)
    if spec is None:
        return None
    base = Path(next(iter(spec.submodule_search_locations)))
    folder = base / "operator" / "deployment" / "helm" / OPERATOR_NAME / "crds"
    crds = {}
    for path in sorted(folder.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        crds[crd["metadata"]["name"]] = crd
    return metadata.version("dask-kubernetes"), crds


def _crd_versions(crd: dict) -> dict:
    """What a CRD defines: each version's name, schema, served/storage and subresources."""
    return {v["name"]: {key: v.get(key) for key in ("schema", "served", "storage",
                                                     "subresources")}
            for v in (crd.get("spec") or {}).get("versions", [])}


def crd_row(api) -> Row:
    from kubernetes import client

    from simmate_k8s.errors import install_extra

    wheel = wheel_crds()
    if wheel is None:
        return Row("Dask CRDs", SKIPPED, "dask-kubernetes is not installed: its CRDs are what "
                   "the cluster's are compared with", install_extra("chart"))
    version, expected = wheel
    extensions = client.ApiextensionsV1Api(api)
    missing, differ = [], []
    for name, crd in expected.items():
        try:
            response = extensions.read_custom_resource_definition(name, _preload_content=False)
        except Exception as error:  # noqa: BLE001
            if getattr(error, "status", None) == 404:
                missing.append(name)
                continue
            return Row("Dask CRDs", FAIL, _kube_error(error), CRD_FIX)
        installed = json.loads(response.data)
        if _crd_versions(installed) != _crd_versions(crd):
            differ.append(name)
    if missing:
        return Row("Dask CRDs", FAIL, f"not installed: {', '.join(missing)}", CRD_FIX)
    if differ:
        return Row("Dask CRDs", FAIL, f"{', '.join(differ)} differ from dask-kubernetes "
                   f"{version}'s (Helm never upgrades CRDs)", CRD_FIX)
    return Row("Dask CRDs", OK, f"the {len(expected)} CRDs of dask-kubernetes {version}")


def operator_rows(api, release: str, namespace: str) -> list[Row]:
    """The operator Deployment (found by the operator chart's labels): its image tag is the
    dask-kubernetes version the chart pins, and it is available."""
    from kubernetes import client

    from simmate_k8s.values.model import DASK_KUBERNETES_VERSION

    selector = f"app.kubernetes.io/name={OPERATOR_NAME},{instance(release)}"
    fix = f"kubectl -n {namespace} describe deployment -l {selector}"
    try:
        found = client.AppsV1Api(api).list_namespaced_deployment(
            namespace, label_selector=selector).items
    except Exception as error:  # noqa: BLE001
        return [Row("Dask operator", FAIL, _kube_error(error), fix)]
    if not found:
        return [Row("Dask operator", FAIL, f"no Deployment labelled {selector} in {namespace} "
                    "(daskOperator.enabled is off: the operator must run elsewhere)",
                    f"helm -n {namespace} upgrade {release} charts/simmate --reuse-values "
                    "--set daskOperator.enabled=true")]
    deployment = found[0]
    images = [c.image for c in deployment.spec.template.spec.containers]
    tags = {image.rsplit(":", 1)[-1] for image in images if ":" in image.rsplit("/", 1)[-1]}
    if tags != {DASK_KUBERNETES_VERSION}:
        version = Row("Dask operator version", FAIL, f"operator image {', '.join(images)}; "
                      f"the chart pins dask-kubernetes {DASK_KUBERNETES_VERSION}",
                      f"helm -n {namespace} upgrade {release} charts/simmate --reuse-values")
    else:
        version = Row("Dask operator version", OK, f"{DASK_KUBERNETES_VERSION}")
    available = deployment.status.available_replicas or 0
    if available < 1:
        ready = Row("Dask operator ready", FAIL, f"0 of {_replicas(deployment)} replicas "
                    "available", fix)
    else:
        ready = Row("Dask operator ready", OK, f"{available} replica(s) available")
    return [version, ready]


def _replicas(deployment) -> int:
    replicas = deployment.spec.replicas
    return 1 if replicas is None else replicas  # Kubernetes' default


def scheduler_service_row(api, release: str, namespace: str) -> Row:
    """The scheduler Service (labels from the DaskCluster's scheduler metadata) has a ready
    endpoint, and the job templates' scheduler-address points at it."""
    from kubernetes import client

    from simmate_k8s import jobs

    selector = instance(release, "dask-scheduler")
    core = client.CoreV1Api(api)
    fix = f"kubectl -n {namespace} get daskcluster,pods -l {instance(release)}"
    try:
        services = core.list_namespaced_service(namespace, label_selector=selector).items
        templates = core.list_namespaced_config_map(
            namespace, label_selector=jobs.templates_selector(release)).items
    except Exception as error:  # noqa: BLE001
        return Row("scheduler Service", FAIL, _kube_error(error), fix)
    if not services:
        return Row("scheduler Service", FAIL, f"no Service labelled {selector} (the operator "
                   "has not created the DaskCluster's scheduler)", fix)
    name = services[0].metadata.name
    try:  # a Service's Endpoints object has the Service's name (Kubernetes' rule)
        endpoints = core.read_namespaced_endpoints(name, namespace)
        ready = sum(len(subset.addresses or []) for subset in endpoints.subsets or [])
    except Exception:  # noqa: BLE001 - no Endpoints object yet: nothing ready
        ready = 0
    if not ready:
        return Row("scheduler Service", FAIL, f"svc/{name} has no ready scheduler pod", fix)
    address = (templates[0].data or {}).get(jobs.SCHEDULER_KEY, "") if templates else ""
    host = address.split("://", 1)[-1].split(":", 1)[0]
    if address and host.split(".")[0] != name:
        return Row("scheduler Service", FAIL, f"the job templates use {address}, but the "
                   f"scheduler Service is svc/{name}", f"helm -n {namespace} upgrade {release} "
                   "charts/simmate --reuse-values")
    return Row("scheduler Service", OK, f"svc/{name}, {ready} ready endpoint(s)"
               + (f"; flow runs use {address}" if address else ""))


def agent_deployment_row(api, release: str, namespace: str) -> Row:
    from kubernetes import client

    selector = instance(release, "agent")
    try:
        found = client.AppsV1Api(api).list_namespaced_deployment(
            namespace, label_selector=selector).items
    except Exception as error:  # noqa: BLE001
        return Row("agent Deployment", FAIL, _kube_error(error), "")
    if not found:
        return Row("agent Deployment", FAIL, f"no Deployment labelled {selector}",
                   f"helm -n {namespace} upgrade {release} charts/simmate --reuse-values "
                   "--set agent.enabled=true")
    deployment = found[0]
    ready = deployment.status.ready_replicas or 0
    if ready < 1:
        return Row("agent Deployment", FAIL, f"0 of {_replicas(deployment)} replicas ready",
                   agent_fix(release, namespace))
    return Row("agent Deployment", OK, f"{ready} replica(s) ready")


def agent_fix(release: str, namespace: str) -> str:
    return f"kubectl -n {namespace} logs -l {instance(release, 'agent')} --tail 50"


KUBERNETES_CHECKS = ["Kubernetes API", "release", "Dask CRDs", "Dask operator version",
                     "Dask operator ready", "scheduler Service", "agent Deployment"]


def kubernetes_rows(api, context_name: str, release: str, namespace: str) -> list[Row]:
    """Every Kubernetes check, on ``api`` (a kubernetes ApiClient)."""
    first = api_row(api, context_name)
    if first.status != OK:
        return [first, *_skip(KUBERNETES_CHECKS[1:], "no Kubernetes API")]
    release_found = release_row(api, release, namespace)
    rows = [first, release_found, crd_row(api)]
    if release_found.status != OK:
        return [*rows, *_skip(KUBERNETES_CHECKS[3:], f"release {release!r} not found whole")]
    return [*rows, *operator_rows(api, release, namespace),
            scheduler_service_row(api, release, namespace),
            agent_deployment_row(api, release, namespace)]


# --- all of it -----------------------------------------------------------------------------------


def run(*, release: str | None, namespace: str | None, context: str | None,
        scheduler: str | None, prefect: bool, timeout: float) -> list[Row]:
    from simmate_k8s import server_config
    from simmate_k8s.errors import SimmateError, UserError
    from simmate_k8s.settings import Settings

    rows: list[Row] = []
    if release:
        try:
            api, context_name = kube_api(context)
        except SimmateError as error:
            rows += [Row("Kubernetes context", FAIL, str(error),
                         "kubectl config use-context NAME   (or set KUBECONFIG)"),
                     *_skip(KUBERNETES_CHECKS, "no Kubernetes context")]
        else:
            rows += kubernetes_rows(api, context_name, release, namespace)
    else:
        rows += _skip(["Kubernetes"], "no --release: Kubernetes checks skipped")
    try:
        settings = Settings.from_env()
    except SimmateError as error:
        return [*rows, Row("settings", FAIL, str(error), "fix the environment variable")]
    rows += dask_rows(scheduler or settings.dask_address, settings.database_url, timeout)
    rows += database_rows(settings.database_url, timeout)
    if not prefect:
        rows += _skip(["Prefect API"], "--no-prefect: Prefect Server checks skipped")
        return rows
    try:
        config = server_config.load()
    except UserError as error:
        return [*rows, Row("Prefect API", FAIL, str(error),
                           "simmate-k8s config set api-url http://HOST:PORT/graphql")]
    fix = agent_fix(release, namespace) if release else ""
    return rows + prefect_rows(config, agent_fix=fix)
