"""A stand-in for Prefect Server v1's GraphQL API (apollo), for contract tests.

Prefect Server cannot run on the test machines (its images need a registry), so this is a local
HTTP endpoint. What it checks is Prefect's: every request is validated by graphql-core against a
schema written from Prefect Server v1's published sources in PrefectHQ/server, each part below
naming its file and commit: Prefect's own mutations, inputs and payloads as
src/prefect_server/graphql/schema/*.graphql declare them, and the query side as Hasura generates
it for the tables services/hasura/migrations/metadata.yaml tracks, with the columns, types and
nullability the alembic migrations give them. An unknown operation, field, argument, enum value
or type, a null where the schema says non-null, a value of the wrong type (also in variables) is
refused with GraphQL's own error and HTTP 400, as apollo refuses it, and recorded in
``unexpected``, which the fixture turns into a test failure.

What it does is ours, not Prefect's: a small in-memory model keeping the semantics the tests rely
on. One tenant; project names are unique ("Uniqueness violation."); flows are versioned per
project + name, a new version archives the previous one, and an idempotency key equal to the flow
group's last key returns the existing flow; flow runs start Scheduled, check required parameters,
take labels from the flow when none are given, and an idempotency key returns the run created
with it; register_agent returns the agent with the same name, type, core version and labels, and
get_runs_in_queue stamps the asking agent's last_queried (PrefectHQ/server
src/prefect_server/api/agents.py@f7cf3fdc1a1c58c89df0af9ac27edba5b594cb7b).

Modelled: only what the project sends (simmate_k8s.server, .agent and .doctor; Prefect 1's Client
for register/submit and a flow runner's state and log calls; Prefect 1's KubernetesAgent). Not
modelled, so refused as unknown: Hasura's *_by_pk and *_aggregate fields and its insert, update
and delete mutations, the relationships no query follows, and Prefect's other mutations.
"""

from __future__ import annotations

import json
import operator
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import graphql

from tests.support.http import JsonHandler, StandIn

# --- Prefect's own GraphQL service ---------------------------------------------------------------
# The mutations, inputs and payloads the project's operations use, with the names, types and
# nullability of PrefectHQ/server's schema files (descriptions left out), file by file.
PREFECT_SDL = """
# PrefectHQ/server src/prefect_server/graphql/schema/scalars.graphql
#   @6a4c3d01e1dadcda0a3ba72400bb092a8898be71
scalar JSON
scalar DateTime
scalar UUID

# PrefectHQ/server src/prefect_server/graphql/schema/schema.graphql
#   @2074c3f25a0e7978f1f498069da32eb063200818: the root types (Query.hello is the agent's "is it
#   up"), the shared payloads, enum log_level
type Query { hello: String }
type Mutation
type success_payload { success: Boolean error: String }
type flow_id_payload { id: UUID }
enum log_level { DEBUG INFO WARNING ERROR CRITICAL }

# PrefectHQ/server src/prefect_server/graphql/schema/projects.graphql
#   @6a4c3d01e1dadcda0a3ba72400bb092a8898be71 (Client.create_project)
extend type Mutation { create_project(input: create_project_input!): project_id_payload }
input create_project_input { tenant_id: String! name: String! description: String }
type project_id_payload { id: UUID }

# PrefectHQ/server src/prefect_server/graphql/schema/flows.graphql
#   @ae3a6f8aa2941d6ea80917d969cf750ce22afd14 (Client.register)
extend type Mutation {
  register_tasks(input: register_tasks_input!): success_payload
  register_edges(input: register_edges_input!): success_payload
  create_flow_from_compressed_string(
    input: create_flow_from_compressed_string_input!
  ): flow_id_payload
}
input register_tasks_input { serialized_tasks: JSON! flow_id: UUID! }
input register_edges_input { serialized_edges: JSON! flow_id: UUID! }
input create_flow_from_compressed_string_input {
  serialized_flow: String! project_id: UUID! version_group_id: String
  set_schedule_active: Boolean description: String idempotency_key: String
}

# PrefectHQ/server src/prefect_server/graphql/schema/runs.graphql
#   @773179c953d9365bfd59410488e06589cc678330 (Client.create_flow_run; the agent's poll)
extend type Mutation {
  create_flow_run(input: create_flow_run_input!): flow_run_id_payload
  get_runs_in_queue(input: get_runs_in_queue_input!): runs_in_queue_payload
}
input create_flow_run_input {
  flow_id: UUID parameters: JSON labels: [String!] run_config: JSON context: JSON
  scheduled_start_time: DateTime idempotency_key: String flow_run_name: String
  version_group_id: String
}
input get_runs_in_queue_input { tenant_id: UUID! before: DateTime labels: [String!] }
type flow_run_id_payload { id: UUID }
type runs_in_queue_payload { flow_run_ids: [String!] }

# PrefectHQ/server src/prefect_server/graphql/schema/states.graphql
#   @fef85a11edfd04536e11a77a75ebcd68b54ef493 (a flow runner's and the agent's state changes)
extend type Mutation {
  set_flow_run_states(input: set_flow_run_states_input!): set_flow_run_states_payload
}
input set_flow_run_states_input { states: [set_flow_run_state_input!]! }
input set_flow_run_state_input { flow_run_id: UUID! version: Int state: JSON! }
type set_flow_run_state_payload { id: UUID status: String message: String }
type set_flow_run_states_payload { states: [set_flow_run_state_payload!] }

# PrefectHQ/server src/prefect_server/graphql/schema/logs.graphql
#   @6a4c3d01e1dadcda0a3ba72400bb092a8898be71 (a flow runner's logs)
extend type Mutation { write_run_logs(input: write_run_logs_input!): success_payload }
input write_run_log_input {
  flow_run_id: UUID! task_run_id: UUID timestamp: DateTime message: String name: String
  level: log_level info: JSON
}
input write_run_logs_input { logs: [write_run_log_input!]! }

# PrefectHQ/server src/prefect_server/graphql/schema/agents.graphql
#   @09b4918bc4433aa836ff78d359be29e88a670fde (the agent, at start)
extend type Mutation { register_agent(input: register_agent_input!): agent_id_payload }
input register_agent_input {
  tenant_id: UUID labels: [String!] agent_config_id: UUID type: String! name: String
}
type agent_id_payload { id: UUID }
"""

# --- Hasura's generated query side --------------------------------------------------------------
# Tables and relationships: PrefectHQ/server services/hasura/migrations/metadata.yaml
#   @17ba36c5d8e97e1e89ca5819244fa637564a6174 (Hasura v2 metadata: every table below is tracked,
#   relationships by foreign key).
# Columns, in table order, from PrefectHQ/server services/postgres/alembic/versions/, by revision:
#   72e2cd3e0469 2020-06-24T092037_initial_database_migration.py
#                @fef85a11edfd04536e11a77a75ebcd68b54ef493: the tables
#   c4d792bdd05e 2020-06-24T103113_add_flow_run_idempotency_key.py
#                @6a4c3d01e1dadcda0a3ba72400bb092a8898be71: + flow_run.idempotency_key
#   c1f317aa658c 2020-08-08T205817_remove_state_id_foreign_keys.py
#                @7dcb4f3d2753abec1958d67b8070c41cd57071d2: - flow_run/task_run.state_id
#   6611fd0ccc73 2020-09-02T203435_simplify_run_state_update_triggers.py
#                @4d7b584e2c50276dd081a0f0a6361210067a3d78: - flow_run.duration,
#                task_run.duration, task_run.run_count
#   70528cee0d2b 2020-09-04T095858_add_agent_persistence.py
#                @43a4dfc58949a761b708167a4dfa8ba89e73924b: + agent, + flow_run.agent_id
#   e148cf9f1e5b 2020-09-03T095523_add_task_run_name.py
#                @673617f815e7950d093c05643b3b1bc0f307acdb: + task_run.name
#   850b76d44332 2020-09-21T145318_add_flow_run_config.py
#                @7f16636c4fe13987bbfded5f24ee40190f81933e: + flow.run_config
#   24f10aeee83e 2020-09-30T123806_add_label_column_to_flow_runs.py
#                @0697eef1fee77568992cd1064e0e8bc31000ffa2: + flow_run.labels (NOT NULL)
#   7ca57ea2fdff 2020-12-28T150027_add_run_config_to_flow_runs.py
#                @3c63ecacb97be0dc530c1eccbed9bb20dc7a5a0b: + flow_run/flow_group.run_config
#   9116e81c6dc2 2021-01-20T132230_add_description_to_flow_group_table.py
#                @2da211580d5eb059478209f9f9fd4b5ea8c7655e: + flow_group.description
#   d2b731ef9bb7 2021-04-14T121700_allow_flow_project_id_to_be_nullable.py
#                @5fd34e30add909ed95ac0891d26f4c3754355824: flow.project_id nullable
#   e0e276cd1ec9 2021-04-19T133758_add_flow_serialized_hash.py
#                @844bedece83e208db1cfe414aff6534793fd70eb: + flow.serialized_hash
# Not applied: 5ac0d20cce89 (2020-08-17T220757_remove_updated_and_created_columns_on_.py
# @bde77ba6b09f81f1afe8ddf205edb1a13375319b, dropping log.created/updated) revises c1f317aa658c,
# as 6611fd0ccc73 does, and no migration revises it: a dead branch, not in the single-head chain
# (tests/database/test_migrations.py's test_alembic_single_head), so `log` keeps both columns.
# Types as Hasura v2 names them (uuid, timestamptz, jsonb; varchar -> String, integer -> Int);
# "!" where the column is NOT NULL.


@dataclass(frozen=True)
class Table:
    columns: dict[str, str]  # name -> Hasura type
    objects: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (table, column)
    arrays: dict[str, str] = field(default_factory=dict)  # name -> table


def _columns(text: str) -> dict[str, str]:
    words = text.split()
    return dict(zip(words[::2], words[1::2], strict=True))


TABLES = {
    "tenant": Table(_columns("""
        id uuid! created timestamptz! name String! slug String! info jsonb settings jsonb!
        updated timestamptz!""")),
    "agent": Table(_columns("""
        id uuid! created timestamptz! updated timestamptz! tenant_id uuid! agent_config_id uuid
        name String type String core_version String labels jsonb! last_queried timestamptz""")),
    "project": Table(_columns("""
        id uuid! tenant_id uuid created timestamptz! name String! description String
        updated timestamptz!""")),
    "flow_group": Table(_columns("""
        id uuid! tenant_id uuid created timestamptz! updated timestamptz! name String
        labels jsonb schedule jsonb settings jsonb! default_parameters jsonb! run_config jsonb
        description String""")),
    "flow": Table(_columns("""
        id uuid! tenant_id uuid created timestamptz! version Int name String!
        description String environment jsonb parameters jsonb project_id uuid archived Boolean!
        version_group_id String storage jsonb core_version String updated timestamptz!
        settings jsonb! serialized_flow jsonb schedule jsonb is_schedule_active Boolean!
        flow_group_id uuid! run_config jsonb serialized_hash String"""),
        objects={"project": ("project", "project_id"),
                 "flow_group": ("flow_group", "flow_group_id")}),
    "flow_run": Table(_columns("""
        id uuid! tenant_id uuid created timestamptz! flow_id uuid! parameters jsonb
        scheduled_start_time timestamptz! auto_scheduled Boolean! heartbeat timestamptz
        start_time timestamptz end_time timestamptz version Int! state String
        state_timestamp timestamptz state_message String state_result jsonb
        state_start_time timestamptz serialized_state jsonb name String context jsonb
        times_resurrected Int updated timestamptz! idempotency_key String agent_id uuid
        labels jsonb! run_config jsonb"""),
        objects={"flow": ("flow", "flow_id")},
        arrays={"states": "flow_run_state", "logs": "log", "task_runs": "task_run"}),
    "flow_run_state": Table(_columns("""
        id uuid! tenant_id uuid flow_run_id uuid! timestamp timestamptz! state String!
        message String result jsonb start_time timestamptz serialized_state jsonb!
        created timestamptz! updated timestamptz! version Int""")),
    "log": Table(_columns("""
        flow_run_id uuid tenant_id uuid task_run_id uuid timestamp timestamptz! name String
        level String message String info jsonb id uuid! created timestamptz!
        updated timestamptz! is_loaded_from_archive Boolean""")),
    "task_run": Table(_columns("""
        id uuid! tenant_id uuid created timestamptz! flow_run_id uuid! task_id uuid!
        map_index Int! version Int! heartbeat timestamptz start_time timestamptz
        end_time timestamptz state String state_timestamp timestamptz state_message String
        state_result jsonb state_start_time timestamptz serialized_state jsonb cache_key String
        updated timestamptz! name String""")),
}
QUERY_ROOTS = ("tenant", "agent", "project", "flow", "flow_run")  # the tables queried directly


def _comparison(scalar: str) -> str:
    """Hasura v2's ``<scalar>_comparison_exp`` (its regex and jsonb-cast operators left out)."""
    ops = [f"{op}: {scalar}" for op in ("_eq", "_gt", "_gte", "_lt", "_lte", "_neq")]
    ops += [f"_in: [{scalar}!]", f"_nin: [{scalar}!]", "_is_null: Boolean"]
    if scalar == "String":
        ops += [f"{op}: String" for op in ("_like", "_nlike", "_ilike", "_nilike", "_similar",
                                           "_nsimilar")]
    if scalar == "jsonb":
        ops += ["_contained_in: jsonb", "_contains: jsonb", "_has_key: String",
                "_has_keys_all: [String!]", "_has_keys_any: [String!]"]
    return f"input {scalar}_comparison_exp {{ {' '.join(ops)} }}"


def _list_args(table: str) -> str:
    return (f"(distinct_on: [{table}_select_column!], limit: Int, offset: Int, "
            f"order_by: [{table}_order_by!], where: {table}_bool_exp)")


def _hasura_sdl(tables: dict[str, Table]) -> str:
    """The types Hasura generates for ``tables``: ``<table>`` (jsonb columns take ``path``; an
    object relationship is non-null when its foreign-key column is NOT NULL), ``<table>_bool_exp``,
    ``<table>_order_by``, ``<table>_select_column``, and the list root fields of QUERY_ROOTS."""
    scalars = sorted({t.rstrip("!") for table in tables.values() for t in table.columns.values()})
    parts = ["scalar uuid", "scalar timestamptz", "scalar jsonb",
             "enum order_by { asc asc_nulls_first asc_nulls_last desc desc_nulls_first "
             "desc_nulls_last }", *map(_comparison, scalars)]
    for name, table in tables.items():
        fields = [f"{c}(path: String): {t}" if t.startswith("jsonb") else f"{c}: {t}"
                  for c, t in table.columns.items()]
        fields += [f"{rel}: {target}{'!' if table.columns[column].endswith('!') else ''}"
                   for rel, (target, column) in table.objects.items()]
        fields += [f"{rel}{_list_args(target)}: [{target}!]!"
                   for rel, target in table.arrays.items()]
        related = {rel: target for rel, (target, _) in table.objects.items()} | table.arrays
        where = [f"_and: [{name}_bool_exp!]", f"_not: {name}_bool_exp", f"_or: [{name}_bool_exp!]"]
        where += [f"{c}: {t.rstrip('!')}_comparison_exp" for c, t in table.columns.items()]
        where += [f"{rel}: {target}_bool_exp" for rel, target in related.items()]
        order = [f"{c}: order_by" for c in table.columns]
        order += [f"{rel}: {target}_order_by" for rel, (target, _) in table.objects.items()]
        parts += [f"type {name} {{ {' '.join(fields)} }}",
                  f"input {name}_bool_exp {{ {' '.join(where)} }}",
                  f"input {name}_order_by {{ {' '.join(order)} }}",
                  f"enum {name}_select_column {{ {' '.join(table.columns)} }}"]
    roots = " ".join(f"{name}{_list_args(name)}: [{name}!]!" for name in QUERY_ROOTS)
    parts.append(f"extend type Query {{ {roots} }}")
    return "\n".join(parts)


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


def _timestamp(value):
    try:
        datetime.fromisoformat(str(value))
    except ValueError:
        raise graphql.GraphQLError(
            f'invalid input syntax for type timestamp with time zone: "{value}"') from None
    return value


def build_schema(tables: dict[str, Table] = TABLES) -> graphql.GraphQLSchema:
    schema = graphql.build_schema(PREFECT_SDL + _hasura_sdl(tables))
    for names, parse in ((("uuid", "UUID"), _uuid), (("timestamptz", "DateTime"), _timestamp)):
        for name in names:
            scalar = schema.type_map[name]
            scalar.parse_value = parse
            scalar.parse_literal = (
                lambda node, _vars=None, parse=parse: parse(getattr(node, "value", node)))
    return schema


def _row(table: str, **values) -> dict:
    """A row as PostgreSQL stores it: every column (None unless given), each NOT NULL one set.
    Keys starting with ``_`` are the stand-in's own bookkeeping, not columns."""
    columns = TABLES[table].columns
    unknown = [key for key in values if key not in columns and not key.startswith("_")]
    row = dict.fromkeys(columns) | values
    empty = [name for name, type_ in columns.items() if type_.endswith("!") and row[name] is None]
    assert not unknown and not empty, f"{table}: no columns {unknown}, NOT NULL {empty} empty"
    return row


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
        if op == "_is_null":
            if (value is None) != expected:
                return False
            continue
        if op in ("_in", "_nin"):
            inside = value in [_comparable(e) for e in expected]
            if inside != (op == "_in"):
                return False
            continue
        if op not in _OPERATORS:  # valid Hasura, but this model does not filter with it
            raise NotImplementedError(f"the stand-in does not implement {op}")
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
        if key == "_not":
            if matches(row, condition):
                return False
            continue
        value = row[key]
        if callable(value):  # a relationship: nested boolean expression
            related = value(None)
            if isinstance(related, list):  # array relationship: some related row matches
                if not any(matches(r, condition) for r in related):
                    return False
            elif related is None or not matches(related, condition):
                return False
        elif not _compare(value, condition):
            return False
    return True


def select(rows, where=None, order_by=None, limit=None, offset=None) -> list[dict]:
    """Hasura's list arguments (``distinct_on`` is not modelled: a TypeError here)."""
    rows = [r for r in rows if matches(r, where)]
    for spec in reversed(order_by or []):
        for key, direction in reversed(list(spec.items())):
            rows = sorted(rows, key=lambda r, k=key: _comparable(r[k]),
                          reverse=direction.startswith("desc"))
    rows = rows[offset or 0:]
    return rows[:limit] if limit is not None else rows


# --- the server's state ------------------------------------------------------------------------


class PrefectServerState:
    def __init__(self):
        self.lock = threading.RLock()
        now = _now()
        self.tenant = _row("tenant", id=str(uuid.uuid4()), created=now, name="default",
                           slug="default", settings={}, updated=now)
        self.agents: list[dict] = []  # rows as register_agent and the agents' polls leave them
        self.projects: dict[str, dict] = {}
        self.flow_groups: dict[str, dict] = {}
        self.flows: dict[str, dict] = {}
        self.flow_runs: dict[str, dict] = {}
        self.states: dict[str, list[dict]] = {}
        self.logs: dict[str, list[dict]] = {}
        self.run_keys: dict[str, str] = {}  # flow run idempotency key -> flow run id

    # views: rows with relationships as callables, as the GraphQL resolvers expect them
    def flow_view(self, flow):
        project = self.projects.get(flow["project_id"])
        return {**flow, "project": lambda info: dict(project) if project else None,
                "flow_group": lambda info: dict(self.flow_groups[flow["flow_group_id"]])}

    def flow_run_view(self, run):
        run_id = run["id"]

        def states(info, **args):
            return select(self.states[run_id], **args)

        def logs(info, **args):
            return select(self.logs[run_id], **args)

        def task_runs(info, **args):  # none: the agent tests' flows are never retried
            return []

        return {**run, "flow": lambda info: self.flow_view(self.flows[run["flow_id"]]),
                "states": states, "logs": logs, "task_runs": task_runs}

    # queries
    def q_hello(self, info):
        return "hello"

    def q_tenant(self, info, **args):
        return select([dict(self.tenant)] if self.tenant else [], **args)  # None: no tenant job

    def q_agent(self, info, **args):
        return select([dict(agent) for agent in self.agents], **args)

    def q_project(self, info, **args):
        return select([dict(p) for p in self.projects.values()], **args)

    def q_flow(self, info, **args):
        return select([self.flow_view(f) for f in self.flows.values()], **args)

    def q_flow_run(self, info, **args):
        return select([self.flow_run_view(r) for r in self.flow_runs.values()], **args)

    def add_agent(self, name: str, last_queried: datetime | None) -> dict:
        """An agent row as a test wants it (registered at start, stamped when it polls)."""
        now = _now()
        row = _row("agent", id=str(uuid.uuid4()), created=now, updated=now,
                   tenant_id=self.tenant["id"], name=name, type="KubernetesAgent",
                   core_version="1.4.1", labels=[],
                   last_queried=last_queried.isoformat() if last_queried else None)
        self.agents.append(row)
        return row

    # mutations
    def m_create_project(self, info, input):
        if input["tenant_id"] != self.tenant["id"]:
            raise ApiError("Unauthorized")
        if any(p["name"] == input["name"] for p in self.projects.values()):
            raise ApiError("Uniqueness violation.")
        project_id, now = str(uuid.uuid4()), _now()
        self.projects[project_id] = _row(
            "project", id=project_id, tenant_id=self.tenant["id"], created=now,
            name=input["name"], description=input.get("description"), updated=now)
        return {"id": project_id}

    def m_create_flow_from_compressed_string(self, info, input):
        from prefect.utilities.graphql import decompress

        serialized = decompress(input["serialized_flow"])
        if input["project_id"] not in self.projects:
            raise ApiError("Invalid project.")
        name, now = serialized["name"], _now()
        group = next((g for g in self.flow_groups.values()
                      if g["_project_id"] == input["project_id"] and g["name"] == name), None)
        key = input.get("idempotency_key")
        if group is None:
            group = _row("flow_group", id=str(uuid.uuid4()), tenant_id=self.tenant["id"],
                         created=now, updated=now, name=name, settings={"idempotency_key": key},
                         default_parameters={}, _project_id=input["project_id"])
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
        self.flows[flow_id] = _row(
            "flow", id=flow_id, tenant_id=self.tenant["id"], created=now,
            version=1 + max((f["version"] for f in versions), default=0), name=name,
            description=input.get("description"), parameters=serialized.get("parameters", []),
            project_id=input["project_id"], archived=False, version_group_id=group["id"],
            storage=serialized.get("storage"), core_version=serialized.get("__version__"),
            updated=now, settings={}, serialized_flow=serialized, is_schedule_active=False,
            flow_group_id=group["id"], run_config=serialized.get("run_config"),
            _tasks=[], _edges=[])
        return {"id": flow_id}

    def m_register_tasks(self, info, input):
        self.flows[input["flow_id"]]["_tasks"].extend(input["serialized_tasks"])
        return {"success": True, "error": None}

    def m_register_edges(self, info, input):
        self.flows[input["flow_id"]]["_edges"].extend(input["serialized_edges"])
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
        run_id, now = str(uuid.uuid4()), _now()
        state = Scheduled(message="Flow run scheduled.")
        self.flow_runs[run_id] = _row(
            "flow_run", id=run_id, tenant_id=self.tenant["id"], created=now, flow_id=flow["id"],
            parameters=parameters,
            scheduled_start_time=input.get("scheduled_start_time") or now,
            auto_scheduled=False, version=1, state="Scheduled", state_timestamp=now,
            state_message=state.message, serialized_state=state.serialize(),
            name=input.get("flow_run_name") or f"run-{run_id[:8]}",
            context=input.get("context"), times_resurrected=0, updated=now,
            idempotency_key=key, labels=labels, run_config=input.get("run_config"))
        self.states[run_id] = [self._state_row(run_id, state.serialize(), 1, now)]
        self.logs[run_id] = []
        if key:
            self.run_keys[key] = run_id
        return {"id": run_id}

    def _state_row(self, run_id, serialized, version, now):
        return _row("flow_run_state", id=str(uuid.uuid4()), tenant_id=self.tenant["id"],
                    flow_run_id=run_id, timestamp=now, state=serialized["type"],
                    message=serialized.get("message"), serialized_state=serialized,
                    created=now, updated=now, version=version)

    def m_set_flow_run_states(self, info, input):
        payloads = []
        for item in input["states"]:
            run = self.flow_runs.get(item["flow_run_id"])
            if run is None:
                raise ApiError("State update failed: flow run not found")
            serialized = item["state"]
            name, now, version = serialized["type"], _now(), run["version"] + 1
            run.update(state=name, state_message=serialized.get("message"), state_timestamp=now,
                       serialized_state=serialized, updated=now, version=version)
            if name == "Running" and run["start_time"] is None:
                run["start_time"] = now
            if name in FINISHED:
                run["end_time"] = now
            self.states[run["id"]].append(self._state_row(run["id"], serialized, version, now))
            payloads.append({"id": run["id"], "status": "SUCCESS", "message": None})
        return {"states": payloads}

    def m_register_agent(self, info, input):
        if input.get("tenant_id") not in (None, self.tenant["id"]):
            raise ApiError("Unauthorized")
        core_version = info.context["headers"].get("x-prefect-core-version")
        labels = sorted(input.get("labels") or [])
        for agent in self.agents:
            if (agent["name"], agent["type"], agent["core_version"], agent["labels"]) == (
                    input.get("name"), input["type"], core_version, labels):
                return {"id": agent["id"]}
        now = _now()  # last_queried: the column's server default, now()
        self.agents.append(_row(
            "agent", id=str(uuid.uuid4()), created=now, updated=now, tenant_id=self.tenant["id"],
            agent_config_id=input.get("agent_config_id"), name=input.get("name"),
            type=input["type"], core_version=core_version, labels=labels, last_queried=now))
        return {"id": self.agents[-1]["id"]}

    def m_get_runs_in_queue(self, info, input):
        """Scheduled runs due before ``before`` whose labels the agent has (all of them)."""
        if input["tenant_id"] != self.tenant["id"]:
            raise ApiError("Unauthorized")
        agent_id = info.context["headers"].get("x-prefect-agent-id")
        for agent in self.agents:
            if agent["id"] == agent_id:
                agent["last_queried"] = _now()
        before = _comparable(input.get("before") or _now())
        labels = set(input.get("labels") or [])
        due = [run["id"] for run in self.flow_runs.values()
               if run["state"] == "Scheduled" and set(run["labels"]) <= labels
               and _comparable(run["scheduled_start_time"]) <= before]
        return {"flow_run_ids": due}

    def m_write_run_logs(self, info, input):
        for log in input["logs"]:
            if log["flow_run_id"] not in self.logs:
                raise ApiError("Invalid flow run id.")
            time.sleep(0.000_01)  # distinct insert times, as in the database
            now = _now()
            self.logs[log["flow_run_id"]].append(_row(
                "log", flow_run_id=log["flow_run_id"], tenant_id=self.tenant["id"],
                task_run_id=log.get("task_run_id"), timestamp=log.get("timestamp") or now,
                name=log.get("name"), level=log.get("level") or "INFO",
                message=log.get("message"), info=log.get("info"), id=str(uuid.uuid4()),
                created=now, updated=now, is_loaded_from_archive=False))
        return {"success": True, "error": None}


# --- the HTTP endpoint -------------------------------------------------------------------------


class PrefectServerEndpoint(StandIn):
    """``with PrefectServerEndpoint() as api: api.url`` -> http://127.0.0.1:PORT/graphql"""

    def __init__(self):
        self.schema = build_schema()
        self.state = PrefectServerState()
        self.calls: list[str] = []  # "query:flow", "mutation:create_flow_run", ...
        self.headers: list[dict] = []  # request headers, in order
        self.unexpected: list[str] = []  # contract violations: the test fails on any
        self.on_flow_run_created = None  # callable(flow_run_id), e.g. a scripted agent
        self.delays: dict[str, float] = {}  # call -> seconds to wait before answering
        self.in_flight = self.max_in_flight = 0
        super().__init__(self._handler())

    @property
    def url(self) -> str:
        return f"{super().url}/graphql"

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
            return self.refuse([error], query)
        errors = graphql.validate(self.schema, document)
        if errors:
            return self.refuse(errors, query)
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
            result = graphql.execute(
                self.schema, document, root_value=self._root(operation),
                context_value={"headers": {k.lower(): v for k, v in headers.items()}},
                variable_values=variables)
            # No path: the request itself is wrong (a variable of the wrong type, a null where
            # the schema says non-null): nothing ran.
            if any(error.path is None for error in result.errors or []):
                return self.refuse(result.errors, query)
            self.headers.append(headers)
            self.calls.extend(calls)
        payload = {"data": result.data}
        if result.errors:
            for error in result.errors:
                if not isinstance(error.original_error, ApiError):
                    self.unexpected.append(f"server error {error!r} for\n{query}")
            payload["errors"] = [error.formatted for error in result.errors]
        if operation == "mutation" and self.on_flow_run_created and result.data:
            created = (result.data.get("create_flow_run") or {}).get("id")
            if created:
                self.on_flow_run_created(created)
        return 200, payload

    def refuse(self, errors, query: str | None = None) -> tuple[int, dict]:
        """HTTP 400 with GraphQL's errors, as apollo answers a request its schema does not
        allow; recorded as a contract violation."""
        if isinstance(errors, str):
            errors = [graphql.GraphQLError(errors)]
        self.unexpected.append("; ".join(e.message for e in errors) + f"\n{query or ''}")
        return 400, {"errors": [{**e.formatted, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}}
                                for e in errors]}

    def _handler(self):
        endpoint = self

        class Handler(JsonHandler):
            def do_POST(self):
                body = self.body()
                if self.path.rstrip("/") != "/graphql":
                    return self.reply(*endpoint.refuse(f"POST {self.path}: not the GraphQL path"))
                try:
                    request = json.loads(body or b"{}")
                except ValueError:
                    request = {}
                self.reply(*endpoint.answer(request, dict(self.headers)))

            def do_GET(self):
                self.reply(*endpoint.refuse(f"GET {self.path}: only POST is used"))

        return Handler
