"""Database roles in the rendered chart: which pod reads which role's password Secret, the
results-schema hook Job, the postgres init wiring, existingSecret overrides. What the roles may do
on a real PostgreSQL is tests/integration/test_database_roles.py."""

from __future__ import annotations

import re

import pytest

from tests.chart.helpers import (
    CHART,
    ensure_dependencies,
    find,
    helm,
    hook,
    pod_templates,
    render_chart,
)
from tests.chart.test_kubernetes_schemas import EVERYTHING_ON

RELEASE = "lab"  # not the chart's name: <fullname> is lab-simmate
COMPONENT = "app.kubernetes.io/component"
ROLES = ("prefect", "owner", "writer", "reader")
SQL = (CHART / "files" / "postgres-roles.sql").read_text()


def render(values=None):
    return render_chart(values, release=RELEASE)


def generated_secret_roles(docs) -> dict[str, str]:
    """Secret name -> role, for the password Secrets the chart generated."""
    found = {}
    for doc in docs:
        if doc["kind"] == "Secret" and doc["metadata"]["name"].startswith("lab-simmate-postgresql"):
            component = doc["metadata"]["labels"][COMPONENT]
            found[doc["metadata"]["name"]] = component.removeprefix("postgresql-").replace(
                "postgresql", "superuser")
    return found


def secret_refs(pod_spec) -> set[tuple[str, str]]:
    """(Secret, key) of every secretKeyRef in the pod's containers (init containers too)."""
    refs = set()
    for container in pod_spec.get("initContainers", []) + pod_spec["containers"]:
        for variable in container.get("env", []):
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.add((ref["name"], ref["key"]))
    return refs


def roles_by_component(docs, secret_role) -> dict[str, set[str]]:
    """pod component -> the database roles whose passwords its env reads."""
    found: dict[str, set[str]] = {}
    for _, metadata, spec in (pod for doc in docs for pod in pod_templates(doc)):
        component = metadata.get("labels", {}).get(COMPONENT)
        roles = {secret_role[name] for name, _ in secret_refs(spec) if name in secret_role}
        found.setdefault(component, set()).update(roles)
    return found


@pytest.fixture(scope="module")
def docs():
    return render(EVERYTHING_ON)


def test_each_pod_reads_only_its_own_roles_password(docs):
    secret_role = generated_secret_roles(docs)
    assert sorted(secret_role.values()) == sorted(["superuser", *ROLES])
    by_component = roles_by_component(docs, secret_role)
    readers = {component: roles for component, roles in by_component.items() if roles}
    assert readers == {
        "postgresql": {"superuser", *ROLES},  # the server: makes the roles at initialisation
        "hasura": {"prefect"},
        "graphql": {"prefect"},
        "migration": {"prefect"},
        "retention": {"prefect"},
        "results-schema": {"owner"},
        "dask-worker": {"writer"},  # the default workers and the highmem group
        "flow-run": {"writer"},  # every preset's job template: the agent's and --backend job's
        "test": {"writer"},
    }


def test_no_pod_but_postgres_sees_the_superuser_password(docs):
    superuser = {("lab-simmate-postgresql", "password")}
    holders = [name for name, _, spec in (p for d in docs for p in pod_templates(d))
               if secret_refs(spec) & superuser]
    assert holders == ["StatefulSet/lab-simmate-postgresql"]
    # nor is the superuser named in any connection URL or PGUSER
    for name, _, spec in (p for d in docs for p in pod_templates(d)):
        if name.startswith("StatefulSet/"):
            continue
        for container in spec["containers"]:
            for variable in container.get("env", []):
                value = str(variable.get("value", ""))
                assert "//postgres:" not in value and not (
                    variable["name"] == "PGUSER" and value == "postgres"), (name, variable)


def test_urls_name_their_role_and_come_after_the_password(docs):
    """Kubernetes expands $(SIMMATE_DB_PASSWORD) only from a variable defined earlier."""
    seen = {}
    for name, metadata, spec in (p for d in docs for p in pod_templates(d)):
        for container in spec["containers"]:
            names = [v["name"] for v in container.get("env", [])]
            values = {v["name"]: v.get("value") for v in container.get("env", [])}
            for url_name, password in (("SIMMATE_DATABASE_URL", "SIMMATE_DB_PASSWORD"),
                                       ("PREFECT_SERVER__DATABASE__CONNECTION_URL",
                                        "PREFECT_DB_PASSWORD"),
                                       ("HASURA_GRAPHQL_DATABASE_URL", "PREFECT_DB_PASSWORD")):
                if url_name in names:
                    assert names.index(password) < names.index(url_name), name
                    url = values[url_name]
                    assert f"$({password})@lab-simmate-postgresql:5432/" in url, url
                    seen[metadata["labels"][COMPONENT]] = url.split("//")[1].split(":")[0]
    assert seen == {"hasura": "prefect", "graphql": "prefect", "migration": "prefect",
                    "results-schema": "simmate_owner", "dask-worker": "simmate_writer",
                    "flow-run": "simmate_writer", "test": "simmate_writer"}


def test_postgres_initialises_with_every_variable_the_sql_reads(docs):
    statefulset = find(docs, "StatefulSet", "-postgresql")
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    env = {v["name"]: v.get("value", v.get("valueFrom")) for v in container["env"]}
    wanted = set(re.findall(r"\\getenv \w+ (\w+)", SQL))
    assert {name for name in env if name.startswith("SIMMATE_PG_")} == wanted
    assert env["POSTGRES_USER"] == "postgres" and env["POSTGRES_DB"] == "postgres"
    assert env["SIMMATE_PG_PREFECT_DB"] == "prefect"
    assert env["SIMMATE_PG_RESULTS_DB"] == "simmate_results"
    assert env["SIMMATE_PG_WRITER_ROLE"] == "simmate_writer"
    assert env["SIMMATE_PG_WRITER_PASSWORD"] == {
        "secretKeyRef": {"name": "lab-simmate-postgresql-writer", "key": "password"}}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["init"] == "/docker-entrypoint-initdb.d"
    assert find(docs, "ConfigMap", "-postgresql-init")["data"] == {"postgres-roles.sql": SQL}


def test_the_schema_job_migrates_as_the_owner_before_the_other_hooks(docs):
    job = find(docs, "Job", "-results-schema")
    annotations = job["metadata"]["annotations"]
    assert hook(job) == "post-install,post-upgrade"
    weights = {doc["metadata"]["labels"][COMPONENT]: int(
        doc["metadata"]["annotations"]["helm.sh/hook-weight"])
        for doc in docs if doc["kind"] == "Job" and hook(doc).startswith("post-install")}
    assert weights["results-schema"] == min(weights.values()) < weights["migration"]
    assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
    spec = job["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert container["args"] == ["simmate-k8s", "db", "upgrade"]
    assert container["image"] == "simmate-k8s:0.1.0"
    assert spec["automountServiceAccountToken"] is False and "serviceAccountName" not in spec
    assert job["spec"]["backoffLimit"] == 10


def test_existing_secrets_replace_the_generated_ones():
    roles = {role: {"existingSecret": f"team-{role}", "passwordKey": f"{role}-pw"}
             for role in ROLES}
    docs = render({"postgresql": {"existingSecret": "team-root", "passwordKey": "root",
                                  "roles": roles}})
    assert not [d for d in docs if d["kind"] == "Secret" and "postgresql" in d["metadata"]["name"]]
    every_ref = {ref for d in docs for _, _, spec in pod_templates(d) for ref in secret_refs(spec)}
    assert {ref for ref in every_ref if ref[0].startswith("team-")} == {
        ("team-root", "root"), *((f"team-{r}", f"{r}-pw") for r in ROLES)}
    worker = find(docs, "DaskCluster")["spec"]["worker"]["spec"]["containers"][0]
    assert ("team-writer", "writer-pw") in secret_refs({"containers": [worker]})
    postgres = find(docs, "StatefulSet", "-postgresql")["spec"]["template"]["spec"]
    assert secret_refs(postgres) == {("team-root", "root"),
                                     *((f"team-{r}", f"{r}-pw") for r in ROLES)}


def test_one_role_from_an_existing_secret_the_others_generated():
    docs = render({"postgresql": {"roles": {"reader": {"existingSecret": "analysts"}}}})
    generated = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    assert "lab-simmate-postgresql-reader" not in generated
    assert {"lab-simmate-postgresql", "lab-simmate-postgresql-writer"} <= generated
    postgres = find(docs, "StatefulSet", "-postgresql")["spec"]["template"]["spec"]
    assert ("analysts", "password") in secret_refs(postgres)


def test_custom_role_names_reach_the_init_and_the_urls():
    docs = render({"postgresql": {"username": "root", "roles": {
        "writer": {"name": "lab_writer"}, "prefect": {"name": "lab_prefect"}}}})
    env = {v["name"]: v.get("value") for v in find(docs, "StatefulSet", "-postgresql")[
        "spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POSTGRES_USER"] == "root" and env["SIMMATE_PG_WRITER_ROLE"] == "lab_writer"
    worker = find(docs, "DaskCluster")["spec"]["worker"]["spec"]["containers"][0]
    url = {v["name"]: v.get("value") for v in worker["env"]}["SIMMATE_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://lab_writer:$(SIMMATE_DB_PASSWORD)@")
    hasura = find(docs, "Deployment", "-hasura")["spec"]["template"]["spec"]["containers"][0]
    assert {v["name"]: v.get("value") for v in hasura["env"]}[
        "HASURA_GRAPHQL_DATABASE_URL"].startswith("postgresql://lab_prefect:")


def test_an_external_results_database_takes_both_urls_from_secrets():
    docs = render({"results": {"existingSecret": "results-writer",
                               "schema": {"existingSecret": "results-owner"}}})
    worker = find(docs, "DaskCluster")["spec"]["worker"]["spec"]["containers"][0]
    assert secret_refs({"containers": [worker]}) >= {("results-writer", "url")}
    assert "SIMMATE_DB_PASSWORD" not in {v["name"] for v in worker["env"]}
    job = find(docs, "Job", "-results-schema")["spec"]["template"]["spec"]
    assert secret_refs(job) == {("results-owner", "url")}


@pytest.mark.parametrize("results", [{}, {"existingSecret": "r"}])
def test_the_schema_job_can_be_switched_off(results):
    off = render({"results": {**results, "schema": {"enabled": False}}})
    jobs = {d["metadata"]["name"] for d in off if d["kind"] == "Job"}
    assert jobs and "lab-simmate-results-schema" not in jobs  # the other hooks stay


# Every generated secret given instead: what a `helm template` pipeline (Argo CD) needs.
ALL_EXISTING = {
    "postgresql": {"existingSecret": "db-superuser",
                   "roles": {role: {"existingSecret": f"db-{role}"} for role in ROLES}},
    "prefectServer": {"hasura": {"adminSecret": {"existingSecret": "hasura-admin"}}},
    "dask": {"tls": {"existingSecret": "dask-tls"}},
}


def _template(values_file) -> str:
    return helm("template", RELEASE, str(CHART), "-n", "sim", "-f", str(values_file)).stdout


def test_with_every_existing_secret_a_render_draws_nothing_random(tmp_path):
    """Argo CD renders with `helm template` on every sync, where lookup finds nothing: with the
    existingSecret values, two renders are identical and hold no Secret at all."""
    import json

    ensure_dependencies()
    given, defaults = tmp_path / "given.yaml", tmp_path / "defaults.yaml"
    given.write_text(json.dumps(ALL_EXISTING))
    defaults.write_text("{}")
    first, second = _template(given), _template(given)
    assert first == second
    assert "kind: Secret" not in first
    assert _template(defaults) != _template(defaults), "generated values differ per render"
