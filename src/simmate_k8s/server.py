"""Prefect Server v1, through Prefect 1's own ``Client``: register, submit, status, watch, logs.

Every GraphQL operation this module sends is listed in ``tests/contract`` (the contract tests
answer exactly these and fail on anything else). Errors a user can fix are one-line
:class:`~simmate_k8s.errors.ServerError` s (``InputError`` for a malformed run id).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import prefect
import requests
from prefect.exceptions import ClientError
from prefect.utilities.graphql import EnumValue, parse_graphql, with_args

from simmate_k8s.backends import numbered
from simmate_k8s.errors import InputError, ServerError
from simmate_k8s.server_config import ServerConfig, redact_url

LIBRARY_MODULE = "simmate_k8s.flows.library"
JOB_TEMPLATE_DIR = "/etc/simmate/job-templates"  # mounted into the agent by the chart
DEFAULT_IMAGE = "simmate-k8s:0.1.0"


def _timeout() -> float:
    from simmate_k8s.settings import Settings

    return Settings.from_env().api_timeout


def poll_interval() -> float:
    from simmate_k8s.settings import Settings

    return Settings.from_env().poll_interval


# --- connecting --------------------------------------------------------------------------------


@dataclass
class Session:
    config: ServerConfig
    client: prefect.Client
    tenant_slug: str

    def flow_run_url(self, flow_run_id: str) -> str:
        return self.config.flow_run_url(flow_run_id, self.tenant_slug)

    def query(self, query: dict) -> dict:
        with api_errors(self.config):
            return self.client.graphql(query).data


@contextlib.contextmanager
def api_errors(config: ServerConfig) -> Iterator[None]:
    """Connection and API failures as one line each."""
    where = redact_url(config.api_url)
    try:
        yield
    except requests.ConnectionError as error:
        raise ServerError(f"lost the connection to Prefect Server at {where} "
                          f"({_reason(error)})") from None
    except requests.Timeout:
        raise ServerError(f"Prefect Server at {where} did not answer in time") from None
    except requests.HTTPError as error:
        raise ServerError(f"Prefect Server at {where} answered HTTP "
                          f"{error.response.status_code}") from None
    except ClientError as error:
        raise ServerError(f"Prefect Server at {where} refused the request: "
                          f"{_refusal(error)}") from None


_GRAPHQL_ERRORS = "The following error messages were provided by the GraphQL server:"


def _refusal(error: ClientError) -> str:
    """The server's reason, on one line. For an HTTP 400 Prefect's message is a summary whose
    last line is the request's variables: the reason is the error lines after its heading."""
    lines = [line.strip() for line in str(error).strip().splitlines()]
    if _GRAPHQL_ERRORS in lines:
        after = itertools.dropwhile(lambda line: not line,
                                    lines[lines.index(_GRAPHQL_ERRORS) + 1:])
        return " ".join(itertools.takewhile(bool, after))
    return lines[-1] if lines else error.__class__.__name__


def _reason(error: Exception) -> str:
    text = str(error)
    for marker in ("Connection refused", "Name or service not known", "timed out",
                   "No route to host", "Temporary failure in name resolution"):
        if marker in text:
            return marker
    return error.__class__.__name__


class NoTenantError(ServerError):
    """Prefect Server answers but has no tenant (doctor tells this apart from no server)."""


def connect(config: ServerConfig) -> Session:
    """Check that Prefect Server answers (one quick request, no retries), then a Prefect Client.

    Prefect's Client retries a refused connection for about a minute; the check first makes
    "nothing there" a fast, one-line error.
    """
    where = redact_url(config.api_url)
    hint = ("set it with `simmate-k8s config set api-url URL` or PREFECT__CLOUD__API, or "
            "port-forward the release's apollo Service (`helm status RELEASE` prints the command)")
    tenants_query = parse_graphql({"query": {"tenant": {"id": True, "slug": True}}})
    try:
        response = requests.post(config.api_url, json={"query": tenants_query},
                                 headers=config.headers, timeout=_timeout())
    except requests.Timeout:
        raise ServerError(f"no answer from Prefect Server at {where} within {_timeout():g} s; "
                          f"{hint}") from None
    except requests.RequestException as error:
        raise ServerError(f"no Prefect Server answers at {where} ({_reason(error)}); "
                          f"{hint}") from None
    if response.status_code in (401, 403):
        raise ServerError(f"Prefect Server at {where} refused the credentials (HTTP "
                          f"{response.status_code}); set them with `simmate-k8s config set "
                          "api-url URL --basic-auth USER` or --header NAME=VALUE")
    try:
        tenants = response.json()["data"]["tenant"]
    except (ValueError, KeyError, TypeError):
        raise ServerError(f"{where} does not answer like Prefect Server's GraphQL API (HTTP "
                          f"{response.status_code}); api-url should end in /graphql") from None
    if not tenants:
        raise NoTenantError(f"Prefect Server at {where} has no tenant yet (the chart's tenant job "
                            "creates it; or run `prefect server create-tenant --name default`)")

    os.environ.setdefault("PREFECT__BACKEND", "server")
    for prefect_config in {id(c): c for c in (prefect.config, prefect.context.config)}.values():
        prefect_config.backend = "server"
        prefect_config.cloud.api = config.api_url
    client = prefect.Client(api_server=config.api_url)
    client.attach_headers(dict(config.headers))
    client.tenant_id = tenants[0]["id"]
    return Session(config, client, tenants[0]["slug"])


# --- flows -------------------------------------------------------------------------------------


@dataclass
class RegisteredFlow:
    name: str
    flow_id: str
    version: int
    changed: bool
    labels: list[str]


def latest_flow(session: Session, name: str, project: str) -> dict | None:
    """The newest unarchived version of a flow in a project, or None."""
    query = {"query": {with_args("flow", {
        "where": {"name": {"_eq": name}, "project": {"name": {"_eq": project}},
                  "archived": {"_eq": False}},
        "order_by": {"version": EnumValue("desc")},
        "limit": 1,
    }): {"id": True, "name": True, "version": True, "run_config": True,
         "flow_group": {"labels"}}}}
    flows = session.query(query).flow
    return flows[0] if flows else None


def register(session: Session, project: str, image: str | None, labels: list[str],
             on_done: Callable[[RegisteredFlow], None] = lambda r: None) -> list[RegisteredFlow]:
    """Create the project (if new) and register every workflow; unchanged flows keep their
    version (the idempotency key is the hash of the serialized flow)."""
    from prefect.run_configs import KubernetesRun
    from prefect.storage import Module

    from simmate_k8s.flows.library import FLOWS

    client = session.client
    results = []
    with api_errors(session.config):
        client.create_project(project)
        for original in FLOWS.values():
            flow = original.copy()
            flow.storage = Module(LIBRARY_MODULE)
            flow.storage.add_flow(flow)
            flow.run_config = KubernetesRun(image=image, labels=sorted(set(labels)))
            before = latest_flow(session, flow.name, project)
            with warnings.catch_warnings():  # results go to the results DB, not Prefect's
                warnings.filterwarnings("ignore", message="No result handler")
                flow_id = client.register(
                    flow, project_name=project, build=False, set_schedule_active=False,
                    no_url=True, idempotency_key=flow.serialized_hash(),
                )
            after = latest_flow(session, flow.name, project)
            result = RegisteredFlow(
                flow.name, flow_id, after["version"] if after else 0,
                changed=before is None or before["id"] != flow_id, labels=sorted(set(labels)),
            )
            results.append(result)
            on_done(result)
    return results


# --- flow runs ---------------------------------------------------------------------------------


@dataclass
class SubmittedRun:
    label: str
    flow_run_id: str
    url: str
    parameters: dict = field(repr=False, default_factory=dict)


def resolve_flow(session: Session, name: str, project: str) -> dict:
    flow = latest_flow(session, name, project)
    if flow is None:
        option = "" if project == session.config.project else f" --project {project}"
        raise ServerError(f"flow {name!r} is not registered in project {project!r} at "
                          f"{redact_url(session.config.api_url)}; run `simmate-k8s register"
                          f"{option}`")
    return flow


def run_settings(flow: dict, extra_labels: list[str], preset: str | None):
    """(labels, run_config) for create_flow_run; (None, None) keeps the registered ones."""
    from prefect.run_configs import KubernetesRun
    from prefect.serialization.run_config import RunConfigSchema

    base = list((flow.get("flow_group") or {}).get("labels") or [])
    registered = RunConfigSchema().load(flow["run_config"]) if flow.get("run_config") else None
    if not base and registered is not None:
        base = sorted(registered.labels)
    labels = sorted({*base, *extra_labels}) if extra_labels or preset else None
    if not preset:
        return labels, None
    if registered is not None and not isinstance(registered, KubernetesRun):
        raise ServerError(f"--preset needs a KubernetesRun; flow {flow['name']!r} was registered "
                          f"with {type(registered).__name__}")
    settings = {}
    if registered is not None:
        settings = {name: getattr(registered, name) for name in (
            "image", "env", "cpu_limit", "cpu_request", "memory_limit", "memory_request",
            "service_account_name", "image_pull_secrets", "image_pull_policy")}
    run_config = KubernetesRun(
        job_template_path=f"agent://{JOB_TEMPLATE_DIR}/{preset}.yaml", labels=labels, **settings)
    return labels, run_config


def submit(session: Session, flow: dict, runs: list[tuple[str, dict]], *, labels, run_config,
           run_name: str | None, idempotency_key: str | None, concurrency: int = 8,
           on_done: Callable[[SubmittedRun], None] = lambda r: None) -> list[SubmittedRun]:
    """Create one flow run per (label, parameters), concurrently; results in input order.

    A label that is a batch id names the run after it (``run_name`` overrides)."""
    from pathlib import Path

    def create(index: int, label: str, parameters: dict) -> SubmittedRun:
        name = numbered(run_name, index, len(runs))
        if name is None and label != flow["name"]:
            name = Path(label).stem  # e.g. the batch's first input, Cu_fcc_rattled
        key = numbered(idempotency_key, index, len(runs)) or uuid.uuid4().hex
        flow_run_id = session.client.create_flow_run(
            flow_id=flow["id"], parameters=parameters, labels=labels, run_config=run_config,
            run_name=name, idempotency_key=key,
        )
        return SubmittedRun(label, flow_run_id, session.flow_run_url(flow_run_id), parameters)

    submitted: list[SubmittedRun | None] = [None] * len(runs)
    with api_errors(session.config), ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = {pool.submit(create, i, label, params): i
                   for i, (label, params) in enumerate(runs)}
        for future in as_completed(futures):
            run = future.result()
            submitted[futures[future]] = run
            on_done(run)
    return submitted


def check_run_ids(run_ids) -> list[str]:
    ids = []
    for run_id in run_ids:
        try:
            ids.append(str(uuid.UUID(run_id)))
        except ValueError:
            raise InputError(f"{run_id!r} is not a flow run id (a UUID, as printed by "
                             "`simmate-k8s submit`)") from None
    return ids


_RUN_FIELDS = {
    "id": True, "name": True, "state": True, "state_message": True, "start_time": True,
    "end_time": True, "updated": True, "flow": {"name": True, "version": True},
}


def flow_runs(session: Session, run_ids: list[str]) -> list[dict]:
    """Flow runs in the given order; ServerError naming any id the server does not know."""
    query = {"query": {with_args("flow_run", {"where": {"id": {"_in": run_ids}}}): _RUN_FIELDS}}
    found = {run["id"]: run for run in session.query(query).flow_run}
    missing = [run_id for run_id in run_ids if run_id not in found]
    if missing:
        raise ServerError(f"no flow run {', '.join(missing)} at "
                          f"{redact_url(session.config.api_url)}")
    return [found[run_id] for run_id in run_ids]


# --- following runs ----------------------------------------------------------------------------

FINISHED = {"Success", "Failed", "Cancelled", "TimedOut", "TriggerFailed", "Skipped"}
SUCCEEDED = {"Success", "Skipped"}


@dataclass
class Event:
    flow_run_id: str
    timestamp: str
    kind: str  # "state" or "log"
    level: str
    message: str


class Follower:
    """Polls one flow run for new states and logs.

    Logs are paged by their insert time (``created``) and de-duplicated by id, so a log
    that arrives late with an earlier timestamp is still shown.
    """

    def __init__(self, session: Session, flow_run_id: str, states: bool = True):
        self.session = session
        self.flow_run_id = flow_run_id
        self.want_states = states
        self.seen_states = 0
        self.seen_logs: set[str] = set()
        self.cursor: str | None = None
        self.state: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def poll(self) -> list[Event]:
        log_where = {"created": {"_gte": self.cursor}} if self.cursor else {}
        query = {"query": {with_args("flow_run", {"where": {"id": {"_eq": self.flow_run_id}}}): {
            "id": True, "state": True,
            with_args("states", {"order_by": {EnumValue("timestamp"): EnumValue("asc")}}): {
                "timestamp": True, "state": True, "message": True},
            with_args("logs", {"where": log_where,
                               "order_by": {EnumValue("created"): EnumValue("asc")}}): {
                "id": True, "created": True, "timestamp": True, "level": True, "name": True,
                "message": True},
        }}}
        result = self.session.query(query).flow_run
        if not result:
            raise ServerError(f"no flow run {self.flow_run_id} at "
                              f"{redact_url(self.session.config.api_url)}")
        run = result[0]
        events = []
        if self.want_states:
            for state in run.states[self.seen_states:]:
                message = f"Entered state <{state.state}>" + (
                    f": {state.message}" if state.message else "")
                events.append(Event(self.flow_run_id, state.timestamp, "state", "INFO", message))
            self.seen_states = len(run.states)
        for log in run.logs:
            if log.id in self.seen_logs:
                continue
            self.seen_logs.add(log.id)
            self.cursor = log.created
            events.append(Event(self.flow_run_id, log.timestamp, "log", log.level or "INFO",
                                log.message or ""))
        self.state = run.state
        return events


def follow(session: Session, run_ids: list[str], on_event: Callable[[Event], None],
           states: bool = True, until_finished: bool = True) -> dict[str, str]:
    """Stream states/logs of flow runs until all are finished (or once if not
    ``until_finished``); returns {flow_run_id: final state}."""
    followers = [Follower(session, run_id, states) for run_id in run_ids]
    while True:
        for follower in followers:
            if follower.finished:
                continue
            for event in follower.poll():
                on_event(event)
        if not until_finished or all(f.finished for f in followers):
            return {f.flow_run_id: f.state for f in followers}
        time.sleep(poll_interval())

