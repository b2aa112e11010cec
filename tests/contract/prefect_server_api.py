"""A stand-in for Prefect Server v1's GraphQL API, for contract tests.

Prefect Server itself cannot run on the test machines (its images need a registry), so this is a
local HTTP endpoint that answers ONLY the GraphQL operations simmate-k8s sends (plus the two a
flow runner sends, used to drive runs through their states, and those Prefect 1's Kubernetes
agent sends: register_agent, hello, get_runs_in_queue, the flow-run metadata query), with the
field names, argument shapes and semantics of Prefect Server v1 (Hasura tables stitched with
Prefect's own mutations in apollo). Requests are validated against the schema subset below with
graphql-core: an unknown field, argument, type or operation is answered with HTTP 400 and
recorded in ``unexpected``, which the fixture turns into a test failure.

Semantics kept from Prefect Server: one tenant; project names are unique ("Uniqueness
violation."); flows are versioned per project + name, a new version archives the previous one,
and an idempotency key equal to the flow group's last key returns the existing flow; flow runs
start Scheduled, check required parameters, take labels from the flow when none are given, and
an idempotency key returns the run created with it.
"""

from __future__ import annotations

import json
import operator
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import graphql

SCHEMA = """
scalar uuid
scalar jsonb
scalar timestamptz
scalar UUID
scalar JSON
scalar DateTime

enum order_by { asc desc asc_nulls_first asc_nulls_last desc_nulls_first desc_nulls_last }
enum log_level { DEBUG INFO WARNING ERROR CRITICAL }

input String_comparison_exp { _eq: String _neq: String _in: [String!] _nin: [String!] }
input Boolean_comparison_exp { _eq: Boolean _neq: Boolean }
input Int_comparison_exp { _eq: Int _gt: Int _gte: Int _lt: Int _lte: Int }
input uuid_comparison_exp { _eq: uuid _neq: uuid _in: [uuid!] _nin: [uuid!] }
input timestamptz_comparison_exp {
  _eq: timestamptz _gt: timestamptz _gte: timestamptz _lt: timestamptz _lte: timestamptz
}

type tenant { id: uuid! name: String! slug: String! }

# Hasura's view of Prefect Server's agent table: PrefectHQ/server
# services/hasura/migrations/metadata.yaml tracks public.agent, and
# src/prefect_server/database/models.py (class Agent) lists its columns. register_agent makes a
# row when an agent starts; the server stamps last_queried whenever the agent asks for work.
# Prefect 1's own client reads it (prefect/backend/flow_run.py, check_for_compatible_agents).
type agent {
  id: uuid! created: timestamptz! tenant_id: uuid! agent_config_id: uuid name: String
  type: String core_version: String labels: jsonb last_queried: timestamptz
}

type project { id: uuid! name: String! description: String tenant_id: uuid! created: timestamptz! }
input project_bool_exp {
  _and: [project_bool_exp!] id: uuid_comparison_exp name: String_comparison_exp
}

type flow_group { id: uuid! name: String! labels: jsonb settings: jsonb }

type flow {
  id: uuid! name: String! version: Int archived: Boolean! created: timestamptz!
  core_version: String description: String version_group_id: String
  serialized_flow: jsonb storage: jsonb run_config: jsonb environment: jsonb settings: jsonb
  project_id: uuid! project: project! flow_group_id: uuid! flow_group: flow_group!
}
input flow_bool_exp {
  _and: [flow_bool_exp!] id: uuid_comparison_exp name: String_comparison_exp
  version: Int_comparison_exp archived: Boolean_comparison_exp project: project_bool_exp
  project_id: uuid_comparison_exp
}
input flow_order_by { version: order_by created: order_by name: order_by }

type flow_run_state {
  id: uuid! timestamp: timestamptz! state: String message: String serialized_state: jsonb
  start_time: timestamptz
}
input flow_run_state_order_by { timestamp: order_by }

type log {
  id: uuid! created: timestamptz! timestamp: timestamptz! level: String! name: String
  message: String flow_run_id: uuid task_run_id: uuid info: jsonb
}
input log_bool_exp {
  _and: [log_bool_exp!] created: timestamptz_comparison_exp timestamp: timestamptz_comparison_exp
  level: String_comparison_exp
}
input log_order_by { created: order_by timestamp: order_by }

type task_run {
  id: uuid! version: Int task_id: uuid! serialized_state: jsonb state_start_time: timestamptz
}
input task_run_bool_exp {
  _and: [task_run_bool_exp!] _or: [task_run_bool_exp!]
  state_start_time: timestamptz_comparison_exp
}

type flow_run {
  id: uuid! name: String flow_id: uuid! flow: flow! version: Int
  state: String state_message: String serialized_state: jsonb
  start_time: timestamptz end_time: timestamptz created: timestamptz! updated: timestamptz!
  scheduled_start_time: timestamptz! labels: jsonb parameters: jsonb context: jsonb
  run_config: jsonb
  states(order_by: [flow_run_state_order_by!], limit: Int): [flow_run_state!]!
  logs(where: log_bool_exp, order_by: [log_order_by!], limit: Int, offset: Int): [log!]!
  task_runs(where: task_run_bool_exp): [task_run!]!
}
input flow_run_bool_exp {
  _and: [flow_run_bool_exp!] _or: [flow_run_bool_exp!] id: uuid_comparison_exp
  name: String_comparison_exp state: String_comparison_exp flow_id: uuid_comparison_exp
  task_runs: task_run_bool_exp
}

type Query {
  hello: String
  tenant: [tenant!]!
  agent: [agent!]!
  project(where: project_bool_exp, limit: Int): [project!]!
  flow(where: flow_bool_exp, order_by: [flow_order_by!], limit: Int, offset: Int): [flow!]!
  flow_run(where: flow_run_bool_exp, limit: Int): [flow_run!]!
}

type success_payload { success: Boolean error: String }
type project_id_payload { id: UUID }
type flow_id_payload { id: UUID }
type flow_run_id_payload { id: UUID }
type set_flow_run_state_payload { id: UUID status: String message: String }
type set_flow_run_states_payload { states: [set_flow_run_state_payload!] }
type agent_id_payload { id: UUID }
type runs_in_queue_payload { flow_run_ids: [String!] }

input create_project_input { tenant_id: String! name: String! description: String }
input create_flow_from_compressed_string_input {
  serialized_flow: String! project_id: UUID! version_group_id: String
  set_schedule_active: Boolean description: String idempotency_key: String
}
input register_tasks_input { serialized_tasks: JSON! flow_id: UUID! }
input register_edges_input { serialized_edges: JSON! flow_id: UUID! }
input create_flow_run_input {
  flow_id: UUID parameters: JSON labels: [String!] context: JSON run_config: JSON
  scheduled_start_time: DateTime idempotency_key: String flow_run_name: String
  version_group_id: String
}
input set_flow_run_state_input { flow_run_id: UUID! version: Int state: JSON! }
input set_flow_run_states_input { states: [set_flow_run_state_input!]! }
input write_run_log_input {
  flow_run_id: UUID! task_run_id: UUID timestamp: DateTime message: String name: String
  level: log_level info: JSON
}
input write_run_logs_input { logs: [write_run_log_input!]! }
input register_agent_input {
  tenant_id: UUID labels: [String!] agent_config_id: UUID type: String! name: String
}
input get_runs_in_queue_input { tenant_id: UUID! before: DateTime labels: [String!] }

type Mutation {
  create_project(input: create_project_input!): project_id_payload
  create_flow_from_compressed_string(
    input: create_flow_from_compressed_string_input!
  ): flow_id_payload
  register_tasks(input: register_tasks_input!): success_payload
  register_edges(input: register_edges_input!): success_payload
  create_flow_run(input: create_flow_run_input!): flow_run_id_payload
  "Sent by flow runners, not by simmate-k8s: the tests use it to drive runs."
  set_flow_run_states(input: set_flow_run_states_input!): set_flow_run_states_payload
  "Sent by flow runners, not by simmate-k8s: the tests use it to write run logs."
  write_run_logs(input: write_run_logs_input!): success_payload
  "Sent by Prefect's agent (simmate_k8s.agent): at start, and on every poll."
  register_agent(input: register_agent_input!): agent_id_payload
  get_runs_in_queue(input: get_runs_in_queue_input!): runs_in_queue_payload
}
"""

FINISHED = {"Success", "Failed", "Cancelled", "TimedOut", "TriggerFailed", "Skipped"}


class ApiError(Exception):
    """A refusal the real server also gives (answered as a GraphQL error, HTTP 200)."""


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _uuid(value):
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise graphql.GraphQLError(f'invalid input syntax for type uuid: "{value}"') from None


def _build_schema() -> graphql.GraphQLSchema:
    schema = graphql.build_schema(SCHEMA)
    for name in ("uuid", "UUID"):
        scalar = schema.type_map[name]
        scalar.parse_value = _uuid
        scalar.parse_literal = lambda node, _vars=None: _uuid(getattr(node, "value", node))
    return schema


# --- Hasura-style filtering --------------------------------------------------------------------


def _comparable(value):
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


_OPERATORS = {"_eq": operator.eq, "_neq": operator.ne, "_gt": operator.gt,
              "_gte": operator.ge, "_lt": operator.lt, "_lte": operator.le}


def _compare(value, condition: dict) -> bool:
    value = _comparable(value)
    for op, expected in condition.items():
        if op in ("_in", "_nin"):
            inside = value in [_comparable(e) for e in expected]
            if inside != (op == "_in"):
                return False
            continue
        expected = _comparable(expected)
        if value is None and op != "_neq":
            return False
        if not _OPERATORS[op](value, expected):
            return False
    return True


def matches(row: dict, where: dict | None) -> bool:
    for key, condition in (where or {}).items():
        if key == "_and":
            if not all(matches(row, c) for c in condition):
                return False
            continue
        if key == "_or":
            if not any(matches(row, c) for c in condition):
                return False
            continue
        value = row[key]
        if callable(value):  # a relationship: nested boolean expression
            related = value(None)
            if isinstance(related, list):  # array relationship: some related row matches
                if not any(matches(r, condition) for r in related):
                    return False
            elif not matches(related, condition):
                return False
        elif not _compare(value, condition):
            return False
    return True


def order(rows: list[dict], order_by, limit=None, offset=None) -> list[dict]:
    specs = order_by if isinstance(order_by, list) else [order_by] if order_by else []
    for spec in reversed(specs):
        for key, direction in reversed(list(spec.items())):
            rows = sorted(rows, key=lambda r, k=key: _comparable(r[k]),
                          reverse=direction.startswith("desc"))
    rows = rows[offset or 0:]
    return rows[:limit] if limit is not None else rows


# --- the server's state ------------------------------------------------------------------------


class PrefectServerState:
    def __init__(self):
        self.lock = threading.RLock()
        self.tenant = {"id": str(uuid.uuid4()), "name": "default", "slug": "default"}
        self.agents: list[dict] = []  # rows as an agent's register_agent and polls leave them
        self.projects: dict[str, dict] = {}
        self.flow_groups: dict[str, dict] = {}
        self.flows: dict[str, dict] = {}
        self.flow_runs: dict[str, dict] = {}
        self.states: dict[str, list[dict]] = {}
        self.logs: dict[str, list[dict]] = {}
        self.run_keys: dict[str, str] = {}  # flow run idempotency key -> flow run id
        self.agents: list[dict] = []  # register_agent inputs

    # views: rows with relationships as callables, as the GraphQL resolvers expect them
    def project_view(self, project):
        return dict(project)

    def flow_view(self, flow):
        return {**flow,
                "project": lambda info: self.project_view(self.projects[flow["project_id"]]),
                "flow_group": lambda info: dict(self.flow_groups[flow["flow_group_id"]])}

    def flow_run_view(self, run):
        run_id = run["id"]

        def states(info, order_by=None, limit=None):
            return order(self.states[run_id], order_by, limit)

        def logs(info, where=None, order_by=None, limit=None, offset=None):
            rows = [log for log in self.logs[run_id] if matches(log, where)]
            return order(rows, order_by, limit, offset)

        def task_runs(info, where=None):  # none: the agent tests' flows are never retried
            return []

        return {**run, "flow": lambda info: self.flow_view(self.flows[run["flow_id"]]),
                "states": states, "logs": logs, "task_runs": task_runs}

    # queries
    def q_hello(self, info):
        return "hello"

    def q_tenant(self, info):
        return [dict(self.tenant)] if self.tenant else []  # None: a server before its tenant job

    def q_agent(self, info):
        return [dict(agent) for agent in self.agents]

    def add_agent(self, name: str, last_queried: datetime | None) -> dict:
        """The row a Prefect 1 agent leaves: registered at start, stamped when it polls."""
        row = {"id": str(uuid.uuid4()), "created": _now(), "tenant_id": self.tenant["id"],
               "agent_config_id": None, "name": name, "type": "KubernetesAgent",
               "core_version": "1.4.1", "labels": [],
               "last_queried": last_queried.isoformat() if last_queried else None}
        self.agents.append(row)
        return row

    def q_project(self, info, where=None, limit=None):
        rows = [self.project_view(p) for p in self.projects.values()]
        return order([r for r in rows if matches(r, where)], None, limit)

    def q_flow(self, info, where=None, order_by=None, limit=None, offset=None):
        rows = [self.flow_view(f) for f in self.flows.values()]
        return order([r for r in rows if matches(r, where)], order_by, limit, offset)

    def q_flow_run(self, info, where=None, limit=None):
        rows = [self.flow_run_view(r) for r in self.flow_runs.values()]
        return order([r for r in rows if matches(r, where)], None, limit)

    # mutations
    def m_create_project(self, info, input):
        if input["tenant_id"] != self.tenant["id"]:
            raise ApiError("Unauthorized")
        if any(p["name"] == input["name"] for p in self.projects.values()):
            raise ApiError("Uniqueness violation.")
        project_id = str(uuid.uuid4())
        self.projects[project_id] = {"id": project_id, "name": input["name"],
                                     "description": input.get("description"),
                                     "tenant_id": self.tenant["id"], "created": _now()}
        return {"id": project_id}

    def m_create_flow_from_compressed_string(self, info, input):
        from prefect.utilities.graphql import decompress

        serialized = decompress(input["serialized_flow"])
        if input["project_id"] not in self.projects:
            raise ApiError("Invalid project.")
        name = serialized["name"]
        group = next((g for g in self.flow_groups.values()
                      if g["project_id"] == input["project_id"] and g["name"] == name), None)
        key = input.get("idempotency_key")
        if group is None:
            group = {"id": str(uuid.uuid4()), "name": name, "project_id": input["project_id"],
                     "labels": None, "settings": {"idempotency_key": key}}
            self.flow_groups[group["id"]] = group
        else:
            if key and group["settings"].get("idempotency_key") == key:
                current = [f for f in self.flows.values()
                           if f["flow_group_id"] == group["id"] and not f["archived"]]
                if current:
                    return {"id": max(current, key=lambda f: f["version"])["id"]}
            group["settings"]["idempotency_key"] = key
        versions = [f for f in self.flows.values() if f["flow_group_id"] == group["id"]]
        for previous in versions:
            previous["archived"] = True
        flow_id = str(uuid.uuid4())
        self.flows[flow_id] = {
            "id": flow_id, "name": name, "version": 1 + max((f["version"] for f in versions),
                                                             default=0),
            "archived": False, "created": _now(), "core_version": serialized.get("__version__"),
            "description": input.get("description"), "version_group_id": group["id"],
            "serialized_flow": serialized, "storage": serialized.get("storage"),
            "run_config": serialized.get("run_config"), "environment": None, "settings": {},
            "project_id": input["project_id"], "flow_group_id": group["id"],
            "parameters": serialized.get("parameters", []), "tasks": [], "edges": [],
        }
        return {"id": flow_id}

    def m_register_tasks(self, info, input):
        self.flows[input["flow_id"]]["tasks"].extend(input["serialized_tasks"])
        return {"success": True, "error": None}

    def m_register_edges(self, info, input):
        self.flows[input["flow_id"]]["edges"].extend(input["serialized_edges"])
        return {"success": True, "error": None}

    def m_create_flow_run(self, info, input):
        from prefect.engine.state import Scheduled

        key = input.get("idempotency_key")
        if key and key in self.run_keys:
            return {"id": self.run_keys[key]}
        flow = self.flows.get(input.get("flow_id"))
        if flow is None:
            raise ApiError("Invalid flow id.")
        if flow["archived"]:
            raise ApiError(f"Flow {flow['id']} is archived.")
        parameters = input.get("parameters") or {}
        required = {p["name"] for p in flow["parameters"] if p.get("required")}
        if required - set(parameters):
            raise ApiError(f"Flow run is missing required parameters: {required - set(parameters)}")
        labels = input.get("labels")
        if labels is None:
            group = self.flow_groups[flow["flow_group_id"]]
            labels = group["labels"] or (flow["run_config"] or {}).get("labels") or []
        run_id = str(uuid.uuid4())
        now = _now()
        state = Scheduled(message="Flow run scheduled.")
        self.flow_runs[run_id] = {
            "id": run_id, "name": input.get("flow_run_name") or f"run-{run_id[:8]}",
            "flow_id": flow["id"], "version": 1, "state": "Scheduled",
            "state_message": state.message, "serialized_state": state.serialize(),
            "start_time": None, "end_time": None, "created": now, "updated": now,
            "scheduled_start_time": input.get("scheduled_start_time") or now,
            "labels": labels, "parameters": parameters, "context": input.get("context"),
            "run_config": input.get("run_config"), "idempotency_key": key,
        }
        self.states[run_id] = [{"id": str(uuid.uuid4()), "timestamp": now, "state": "Scheduled",
                                "message": state.message, "serialized_state": state.serialize(),
                                "start_time": None}]
        self.logs[run_id] = []
        if key:
            self.run_keys[key] = run_id
        return {"id": run_id}

    def m_set_flow_run_states(self, info, input):
        payloads = []
        for item in input["states"]:
            run = self.flow_runs.get(item["flow_run_id"])
            if run is None:
                raise ApiError("State update failed: flow run not found")
            serialized = item["state"]
            name, now = serialized["type"], _now()
            run.update(state=name, state_message=serialized.get("message"),
                       serialized_state=serialized, updated=now, version=run["version"] + 1)
            if name == "Running" and run["start_time"] is None:
                run["start_time"] = now
            if name in FINISHED:
                run["end_time"] = now
            self.states[run["id"]].append({
                "id": str(uuid.uuid4()), "timestamp": now, "state": name,
                "message": serialized.get("message"), "serialized_state": serialized,
                "start_time": None})
            payloads.append({"id": run["id"], "status": "SUCCESS", "message": None})
        return {"states": payloads}

    def m_register_agent(self, info, input):
        if input.get("tenant_id") not in (None, self.tenant["id"]):
            raise ApiError("Unauthorized")
        self.agents.append({"id": str(uuid.uuid4()), **input})
        return {"id": self.agents[-1]["id"]}

    def m_get_runs_in_queue(self, info, input):
        """Scheduled runs due before ``before`` whose labels the agent has (all of them)."""
        if input["tenant_id"] != self.tenant["id"]:
            raise ApiError("Unauthorized")
        before = _comparable(input.get("before") or _now())
        labels = set(input.get("labels") or [])
        due = [run["id"] for run in self.flow_runs.values()
               if run["state"] == "Scheduled" and set(run["labels"] or []) <= labels
               and _comparable(run["scheduled_start_time"]) <= before]
        return {"flow_run_ids": due}

    def m_write_run_logs(self, info, input):
        for log in input["logs"]:
            if log["flow_run_id"] not in self.logs:
                raise ApiError("Invalid flow run id.")
            time.sleep(0.000_01)  # distinct insert times, as in the database
            self.logs[log["flow_run_id"]].append({
                "id": str(uuid.uuid4()), "created": _now(),
                "timestamp": log.get("timestamp") or _now(), "level": log.get("level") or "INFO",
                "name": log.get("name"), "message": log.get("message"),
                "flow_run_id": log["flow_run_id"], "task_run_id": log.get("task_run_id"),
                "info": log.get("info")})
        return {"success": True, "error": None}


# --- the HTTP endpoint -------------------------------------------------------------------------


class PrefectServerEndpoint:
    """``with PrefectServerEndpoint() as api: api.url`` -> http://127.0.0.1:PORT/graphql"""

    def __init__(self):
        self.schema = _build_schema()
        self.state = PrefectServerState()
        self.calls: list[str] = []  # "query:flow", "mutation:create_flow_run", ...
        self.headers: list[dict] = []  # request headers, in order
        self.unexpected: list[str] = []  # contract violations: the test fails on any
        self.on_flow_run_created = None  # callable(flow_run_id), e.g. a scripted agent
        self.delays: dict[str, float] = {}  # call -> seconds to wait before answering
        self.in_flight = self.max_in_flight = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/graphql"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def count(self, call: str) -> int:
        return self.calls.count(call)

    def _root(self, operation: str) -> dict:
        state = self.state
        prefix = "q_" if operation == "query" else "m_"
        return {name[2:]: getattr(state, name) for name in dir(state) if name.startswith(prefix)}

    def answer(self, body: dict, headers: dict) -> tuple[int, dict]:
        query, variables = body.get("query"), body.get("variables")
        if isinstance(variables, str):
            variables = json.loads(variables)
        try:
            document = graphql.parse(query or "")
        except graphql.GraphQLError as error:
            return self._reject(f"syntax: {error.message}\n{query}")
        errors = graphql.validate(self.schema, document)
        if errors:
            return self._reject("; ".join(e.message for e in errors) + f"\n{query}")
        operation = document.definitions[0].operation.value
        calls = [f"{operation}:{selection.name.value}" for definition in document.definitions
                 for selection in definition.selection_set.selections]
        delay = max((self.delays.get(call, 0) for call in calls), default=0)
        if delay:  # a slow server: shows whether the client sends requests concurrently
            with self.state.lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            time.sleep(delay)
            with self.state.lock:
                self.in_flight -= 1
        with self.state.lock:
            self.headers.append(headers)
            self.calls.extend(calls)
            result = graphql.execute(self.schema, document, root_value=self._root(operation),
                                     variable_values=variables)
        payload = {"data": result.data}
        if result.errors:
            for error in result.errors:
                if not isinstance(error.original_error, ApiError | None):
                    self.unexpected.append(f"server error {error!r} for\n{query}")
            payload["errors"] = [error.formatted for error in result.errors]
        if operation == "mutation" and self.on_flow_run_created and result.data:
            created = (result.data.get("create_flow_run") or {}).get("id")
            if created:
                self.on_flow_run_created(created)
        return 200, payload

    def _reject(self, message: str) -> tuple[int, dict]:
        self.unexpected.append(message)
        return 400, {"errors": [{"message": message.splitlines()[0]}]}

    def _handler(self):
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                if self.path.rstrip("/") != "/graphql":
                    status, payload = endpoint._reject(f"POST {self.path}: not the GraphQL path")
                else:
                    try:
                        body = json.loads(self.rfile.read(length) or b"{}")
                    except ValueError:
                        body = {}
                    status, payload = endpoint.answer(body, dict(self.headers))
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                status, payload = endpoint._reject(f"GET {self.path}: only POST is used")
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler
