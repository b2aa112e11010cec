"""Prefect Server v1: images, hasura secret wiring, migration hook, probes, ingress, databases."""

import jmespath
import pytest

from tests.chart.helpers import RenderError, find, kinds, render_chart


def env(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def container(doc):
    return doc["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize(
    "component, image",
    [
        ("hasura", "hasura/graphql-engine:v2.1.1"),
        ("graphql", "prefecthq/server:core-1.4.1"),
        ("towel", "prefecthq/server:core-1.4.1"),
        ("apollo", "prefecthq/apollo:core-1.4.1"),
        ("ui", "prefecthq/ui:core-1.4.1"),
    ],
)
def test_pinned_images(default_docs, component, image):
    assert container(find(default_docs, "Deployment", f"-{component}"))["image"] == image


def test_one_version_knob_with_per_component_override():
    docs = render_chart(
        {"prefectServer": {"version": "core-1.4.0", "ui": {"image": {"tag": "core-1.3.0"}}}}
    )
    assert container(find(docs, "Deployment", "-apollo"))["image"].endswith(":core-1.4.0")
    assert container(find(docs, "Deployment", "-ui"))["image"].endswith(":core-1.3.0")


@pytest.mark.parametrize("component", ["graphql", "towel"])
def test_admin_secret_reaches_graphql_and_towel(default_docs, component):
    ref = env(container(find(default_docs, "Deployment", f"-{component}")))[
        "PREFECT_SERVER__HASURA__ADMIN_SECRET"
    ]
    assert ref["secretKeyRef"] == {"name": "rel-simmate-hasura", "key": "admin-secret"}


def test_admin_secret_is_set_in_hasura(default_docs):
    variables = env(container(find(default_docs, "Deployment", "-hasura")))
    assert variables["HASURA_GRAPHQL_ADMIN_SECRET"]["secretKeyRef"]["name"] == "rel-simmate-hasura"
    assert (
        "$(PREFECT_DB_PASSWORD)@rel-simmate-postgresql:5432/prefect"
        in variables["HASURA_GRAPHQL_DATABASE_URL"]
    )


def test_existing_admin_secret_is_used_and_none_generated():
    docs = render_chart(
        {"prefectServer": {"hasura": {"adminSecret": {"existingSecret": "mine", "key": "s"}}}}
    )
    assert env(container(find(docs, "Deployment", "-towel")))[
        "PREFECT_SERVER__HASURA__ADMIN_SECRET"
    ]["secretKeyRef"] == {"name": "mine", "key": "s"}
    assert not [
        d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].endswith("-hasura")
    ]


def test_migration_is_a_hook_job_not_an_init_container(default_docs):
    job = find(default_docs, "Job", "-migration")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert container(job)["args"] == ["prefect-server", "database", "upgrade", "-y"]
    assert "PREFECT_SERVER__HASURA__ADMIN_SECRET" in env(container(job))
    assert not jmespath.search(
        "[?kind=='Deployment'].spec.template.spec.initContainers[]", default_docs
    )


def test_tenant_job_runs_after_migration_and_is_idempotent(default_docs):
    job = find(default_docs, "Job", "-tenant")
    assert int(job["metadata"]["annotations"]["helm.sh/hook-weight"]) > 0
    assert "if tenants:" in container(job)["args"][2]


def test_tenant_and_migration_can_be_switched_off():
    docs = render_chart(
        {
            "prefectServer": {
                "tenant": {"enabled": False},
                "graphql": {"migration": {"enabled": False}},
            }
        }
    )
    jobs = {d["metadata"]["name"] for d in docs if d["kind"] == "Job"}
    # the Dask and results-schema ones stay: they are not Prefect's
    assert jobs == {"rel-simmate-dask-recreate", "rel-simmate-results-schema"}


@pytest.mark.parametrize("component", ["hasura", "graphql", "apollo", "ui"])
def test_servers_have_probes(default_docs, component):
    spec = container(find(default_docs, "Deployment", f"-{component}"))
    assert spec["readinessProbe"] and spec["livenessProbe"]


def test_ui_gets_the_browser_api_url():
    docs = render_chart(
        {"prefectServer": {"ui": {"apiUrl": "https://prefect.example.com/graphql"}}}
    )
    settings = find(docs, "ConfigMap", "-ui-settings")["data"]["settings.json"]
    assert '"server_url":"https://prefect.example.com/graphql"' in settings


def test_ingress_with_basic_auth_and_tls():
    docs = render_chart(
        {
            "prefectServer": {
                "ingress": {
                    "enabled": True,
                    "host": "p.example.com",
                    "className": "nginx",
                    "annotations": {"cert-manager.io/cluster-issuer": "le"},
                    "basicAuth": {"enabled": True, "existingSecret": "htpasswd"},
                    "tls": [{"secretName": "p-tls", "hosts": ["p.example.com"]}],
                }
            }
        }
    )
    ingress = find(docs, "Ingress", "-prefect-server")
    assert (
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-secret"] == "htpasswd"
    )
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "le"
    paths = jmespath.search("spec.rules[0].http.paths[].[path, backend.service.name]", ingress)
    assert paths == [["/graphql", "rel-simmate-apollo"], ["/", "rel-simmate-ui"]]


def test_no_ingress_by_default(default_docs):
    assert "Ingress" not in kinds(default_docs)


def test_service_types_and_node_ports():
    docs = render_chart(
        {
            "prefectServer": {
                "apollo": {
                    "service": {"type": "NodePort", "nodePort": 30420, "annotations": {"x": "y"},
                                "allowExternal": True}
                }
            }
        }
    )
    service = find(docs, "Service", "-apollo")
    assert (
        service["spec"]["type"] == "NodePort" and service["spec"]["ports"][0]["nodePort"] == 30420
    )


def test_bundled_postgres_initialises_with_the_roles_sql_and_utc(default_docs):
    from tests.chart.helpers import CHART

    data = find(default_docs, "ConfigMap", "-postgresql-init")["data"]
    # the very file tests/integration/test_database_roles.py runs on a real PostgreSQL
    assert data == {"postgres-roles.sql": (CHART / "files" / "postgres-roles.sql").read_text()}
    statefulset = find(default_docs, "StatefulSet", "-postgresql")
    assert "timezone=UTC" in container(statefulset)["args"]
    assert (
        statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
        == "8Gi"
    )


def test_generated_secrets_are_secrets_not_configmaps(default_docs):
    import base64

    secrets = {d["metadata"]["name"]: d for d in default_docs if d["kind"] == "Secret"}
    roles = ("prefect", "owner", "writer", "reader")
    assert set(secrets) == {
        "rel-simmate-postgresql",
        *(f"rel-simmate-postgresql-{role}" for role in roles),
        "rel-simmate-hasura",
        "rel-simmate-dask-tls",
    }
    passwords = [
        base64.b64decode(secrets[name]["data"]["password"]).decode()
        for name in secrets if name.startswith("rel-simmate-postgresql")
    ]
    assert len(set(passwords)) == 5 and all(len(p) == 32 for p in passwords)
    configmaps = " ".join(str(d["data"]) for d in default_docs if d["kind"] == "ConfigMap")
    everything_else = str([d for d in default_docs if d["kind"] != "Secret"])
    for password in passwords:
        assert password not in configmaps and password not in everything_else


def test_external_database():
    docs = render_chart(
        {
            "postgresql": {"enabled": False},
            "results": {"existingSecret": "results",
                        "schema": {"existingSecret": "results-owner", "key": "owner-url"}},
            "externalDatabase": {
                "host": "db.example.com",
                "port": 25060,
                "user": "doadmin",
                "database": "prefect",
                "existingSecret": "db",
                "sslmode": "require",
            },
        }
    )
    assert "StatefulSet" not in kinds(docs)
    assert not [d for d in docs if d["kind"] == "Secret" and "postgresql" in d["metadata"]["name"]]
    variables = env(container(find(docs, "Deployment", "-graphql")))
    assert variables["PREFECT_SERVER__DATABASE__CONNECTION_URL"] == (
        "postgresql://doadmin:$(PREFECT_DB_PASSWORD)@db.example.com:25060/prefect?sslmode=require"
    )
    assert variables["PREFECT_DB_PASSWORD"]["secretKeyRef"] == {"name": "db", "key": "password"}
    worker_env = jmespath.search(
        "[?kind=='DaskCluster'] | [0].spec.worker.spec.containers[0].env", docs
    )
    assert {"name": "results", "key": "url"} in [
        e.get("valueFrom", {}).get("secretKeyRef") for e in worker_env
    ]
    schema = env(container(find(docs, "Job", "-results-schema")))
    assert schema["SIMMATE_DATABASE_URL"]["secretKeyRef"] == {
        "name": "results-owner", "key": "owner-url"}


def test_prefect_server_can_be_switched_off():
    docs = render_chart(
        {"prefectServer": {"enabled": False}, "agent": {"apiUrl": "http://prefect:4200/graphql"}}
    )
    names = [d["metadata"]["name"] for d in docs]
    assert not [n for n in names if n.endswith(("-hasura", "-graphql", "-apollo", "-ui", "-towel"))]
    assert "http://prefect:4200/graphql" in str(find(docs, "Deployment", "-agent"))


def test_labels_follow_the_conventions(default_docs):
    for doc in default_docs:
        labels = doc["metadata"].get("labels", {})
        if labels.get("app.kubernetes.io/part-of") != "simmate":
            continue
        assert {
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
            "app.kubernetes.io/managed-by",
            "app.kubernetes.io/version",
            "helm.sh/chart",
        } <= set(labels)
        selector = jmespath.search("spec.selector.matchLabels", doc)
        if selector:
            assert set(selector) == {
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/component",
            }


def test_apollo_is_restarted_after_every_migration(default_docs):
    """G: apollo reads hasura's schema once; a hook after the migration restarts it."""
    migration = find(default_docs, "Job", "-migration")
    restart = find(default_docs, "Job", "-apollo-restart")
    tenant = find(default_docs, "Job", "-tenant")
    weight = {
        name: int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
        for name, job in (("migration", migration), ("restart", restart), ("tenant", tenant))
    }
    assert weight["migration"] < weight["restart"] < weight["tenant"]
    assert restart["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert migration["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    spec = restart["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["args"][3] == "restart-deployment"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DEPLOYMENT"] == find(default_docs, "Deployment", "-apollo")["metadata"]["name"]
    assert spec["serviceAccountName"] == "rel-simmate-apollo-restart"


def test_apollo_restart_may_patch_only_apollo(default_docs):
    role = find(default_docs, "Role", "-apollo-restart")
    assert role["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["deployments"],
            "resourceNames": ["rel-simmate-apollo"],
            "verbs": ["get", "patch"],
        }
    ]
    binding = find(default_docs, "RoleBinding", "-apollo-restart")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    # ordinary objects: they exist before post-install hooks run
    assert "annotations" not in role["metadata"]


def test_no_apollo_restart_without_migration():
    docs = render_chart({"prefectServer": {"graphql": {"migration": {"enabled": False}}}})
    assert not [d for d in docs if d["metadata"]["name"].endswith("-apollo-restart")]


# --- hasura: no anonymous admin -----------------------------------------------------------------


def values_cli(tmp_path, values):
    """`simmate-k8s values -f FILE` in-process (the click path the command runs)."""
    import yaml
    from click.testing import CliRunner

    from simmate_k8s.cli import cli

    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return CliRunner().invoke(cli, ["values", "-f", str(path)])


def test_hasura_has_no_unauthorized_role_by_default(default_docs):
    """Without one, hasura refuses every request that lacks the admin secret."""
    assert "HASURA_GRAPHQL_UNAUTHORIZED_ROLE" not in env(
        container(find(default_docs, "Deployment", "-hasura"))
    )


def test_unauthorized_role_can_be_a_role_without_permissions():
    docs = render_chart({"prefectServer": {"hasura": {"unauthorizedRole": "anonymous"}}})
    variables = env(container(find(docs, "Deployment", "-hasura")))
    assert variables["HASURA_GRAPHQL_UNAUTHORIZED_ROLE"] == "anonymous"


@pytest.mark.parametrize("role", ["admin", "admin\nx", "a b", "x" * 64])
def test_admin_or_odd_unauthorized_roles_are_refused(tmp_path, role):
    values = {"prefectServer": {"hasura": {"unauthorizedRole": role}}}
    with pytest.raises(RenderError) as error:
        render_chart(values)
    assert "unauthorizedRole" in str(error.value)
    result = values_cli(tmp_path, values)
    assert result.exit_code == 2 and "unauthorizedRole" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("component", ["graphql", "towel"])
def test_prefect_s_python_services_send_the_admin_secret(default_docs, component):
    variables = env(container(find(default_docs, "Deployment", f"-{component}")))
    assert variables["PREFECT_SERVER__HASURA__HOST"] == "rel-simmate-hasura"
    assert variables["PREFECT_SERVER__HASURA__ADMIN_SECRET"]["secretKeyRef"]["name"] == (
        "rel-simmate-hasura"
    )


def test_apollo_reaches_hasura_only_through_the_proxy_that_adds_the_secret(default_docs):
    """apollo's hasura client sends no secret (PrefectHQ/server services/apollo/src/executors.js):
    it talks to the sidecar on 127.0.0.1, which adds the secret from the release's Secret."""
    from tests.chart.helpers import CHART

    pod = find(default_docs, "Deployment", "-apollo")["spec"]["template"]["spec"]
    apollo, proxy = pod["containers"]
    assert env(apollo)["HASURA_API_URL"] == "http://127.0.0.1:3001/v1alpha1/graphql"
    assert proxy["name"] == "hasura-proxy" and proxy["image"] == apollo["image"]
    variables = env(proxy)
    assert variables["HASURA_UPSTREAM"] == "http://rel-simmate-hasura:3000"
    assert variables["HASURA_GRAPHQL_ADMIN_SECRET"]["secretKeyRef"] == {
        "name": "rel-simmate-hasura",
        "key": "admin-secret",
    }
    assert proxy["readinessProbe"] and proxy["livenessProbe"] and proxy["resources"]["limits"]
    assert proxy["securityContext"]["readOnlyRootFilesystem"] is True
    script = find(default_docs, "ConfigMap", "-hasura-proxy")["data"]["hasura-proxy.js"]
    assert script == (CHART / "files" / "hasura-proxy.js").read_text()
    (volume,) = [v for v in pod["volumes"] if v["name"] == "hasura-proxy"]
    assert volume["configMap"]["name"] == "rel-simmate-hasura-proxy"


# --- ingress auth ---------------------------------------------------------------------------------

INGRESS_AUTH = (
    "prefectServer.ingress needs auth: basicAuth (className nginx) or authProvidedElsewhere"
)
BASIC = {"enabled": True, "existingSecret": "htpasswd"}


def ingress_values(**ingress):
    return {"prefectServer": {"ingress": {"enabled": True, "host": "p.example.com", **ingress}}}


@pytest.mark.parametrize(
    "ingress",
    [
        {"className": "gce", "basicAuth": BASIC},  # nginx annotations that gce ignores
        {"className": "gce"},
        {"className": "", "basicAuth": BASIC},  # the cluster default: unknown class
        {"basicAuth": BASIC},
        {"className": "nginx"},  # no auth at all
        {"className": "traefik", "annotations": {"x": "y"}},
    ],
    ids=["gce-basic", "gce", "default-class-basic", "no-class-basic", "nginx-no-auth", "traefik"],
)
def test_ingress_without_enforced_auth_is_refused(tmp_path, ingress):
    values = ingress_values(**ingress)
    with pytest.raises(RenderError) as error:
        render_chart(values)
    assert INGRESS_AUTH in str(error.value) and "1 problem(s)" in str(error.value)
    result = values_cli(tmp_path, values)
    assert result.exit_code == 2 and INGRESS_AUTH in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "ingress",
    [
        {"className": "nginx", "basicAuth": BASIC},
        {"className": "gce", "authProvidedElsewhere": True},
        {"className": "", "authProvidedElsewhere": True},
        {"className": "nginx-internal", "basicAuth": BASIC, "authProvidedElsewhere": True},
    ],
)
def test_ingress_with_auth_renders(tmp_path, ingress):
    values = ingress_values(**ingress)
    ing = find(render_chart(values), "Ingress", "-prefect-server")
    annotations = ing["metadata"].get("annotations", {})
    if ingress.get("basicAuth"):
        assert annotations["nginx.ingress.kubernetes.io/auth-secret"] == "htpasswd"
    else:
        assert not any(k.startswith("nginx.ingress") for k in annotations)
    assert ing["spec"].get("ingressClassName", "") == ingress["className"]
    assert values_cli(tmp_path, values).exit_code == 0


def test_ingress_class_and_auth_secret_are_quoted():
    """YAML-significant names stay strings (and cannot add keys)."""
    values = ingress_values(
        className="123",
        authProvidedElsewhere=True,
        basicAuth={"enabled": True, "existingSecret": "true"},
    )
    ing = find(render_chart(values), "Ingress", "-prefect-server")
    assert ing["spec"]["ingressClassName"] == "123"
    assert ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-secret"] == "true"
