"""templates/networkpolicy.yaml: ingress denied to every pod of the release, then exactly the
callers each component needs.

The callers are not retyped here: they are derived from the rendered pods themselves (a pod
needs a component when the component's Service name appears in its env, args or the Secrets its
env reads), so a new pod or a new connection without a policy fails this test.
"""

from __future__ import annotations

import base64
import re

import pytest

from tests.chart.helpers import RELEASE, find, job_templates, pod_templates, render_chart
from tests.chart.test_kubernetes_schemas import EVERYTHING_ON

COMPONENT = "app.kubernetes.io/component"

# Callers no env can show: the browser's UI pod is listed by the issue as apollo's caller, Dask
# workers are reached by the scheduler and by each other and by clients on random ports.
IMPLICIT = {
    "apollo": {"ui"},
    "dask-worker": {"dask-scheduler", "dask-worker", "flow-run", "test"},
    # The operator gives workers the scheduler address (DASK_SCHEDULER_ADDRESS) at pod creation.
    "dask-scheduler": {"dask-worker"},
}


def policies(docs) -> dict[str, dict]:
    """component -> its allow policy (the default-deny one under the key 'default-deny')."""
    return {
        doc["metadata"]["labels"][COMPONENT]: doc for doc in docs if doc["kind"] == "NetworkPolicy"
    }


def admitted(policy) -> tuple[set[str], list[dict], set[int]]:
    """(components of this release admitted, other peers, ports of the first rule)."""
    if not policy["spec"]["ingress"]:
        return set(), [], set()
    rule = policy["spec"]["ingress"][0]
    assert rule["from"], "a rule without `from` admits every source"
    components, others = set(), []
    for peer in rule["from"]:
        labels = peer.get("podSelector", {}).get("matchLabels", {})
        if labels.get("app.kubernetes.io/instance") == RELEASE and set(peer) == {"podSelector"}:
            components.add(labels[COMPONENT])
        else:
            others.append(peer)
    return components, others, {port["port"] for port in rule.get("ports", [])}


def pods(docs):
    return [pod for doc in docs for pod in pod_templates(doc)]


def servers(docs) -> dict[str, tuple[str, set[int]]]:
    """component -> (Service host name, target ports), the operator-made scheduler included."""
    found = {}
    for doc in docs:
        if doc["kind"] == "Service" and COMPONENT in doc["spec"].get("selector", {}):
            ports = {p["port"] for p in doc["spec"]["ports"]}
            found[doc["spec"]["selector"][COMPONENT]] = (doc["metadata"]["name"], ports)
    address = find(docs, "ConfigMap", "-job-templates")["data"]["scheduler-address"]
    host = address.split("://", 1)[1].split(".", 1)[0]
    cluster = find(docs, "DaskCluster")
    ports = {
        p["containerPort"] for p in cluster["spec"]["scheduler"]["spec"]["containers"][0]["ports"]
    }
    found["dask-scheduler"] = (host, ports)
    found["dask-worker"] = ("", set())  # no Service: reached at the address it registers
    return found


def text_of(pod_spec, docs) -> str:
    """Everything a pod's containers are told: env values, Secret values they read, args."""
    secrets = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "Secret"}
    parts = []
    for container in pod_spec.get("initContainers", []) + pod_spec["containers"]:
        parts += [str(a) for a in container.get("args", []) + container.get("command", [])]
        for variable in container.get("env", []):
            if variable["name"].endswith("HOST"):  # a bare host name: PGHOST, hasura's
                parts.append(f"//{variable['value']}")
            elif "value" in variable:
                parts.append(str(variable["value"]))
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["key"] in secrets.get(ref["name"], {}):
                parts.append(base64.b64decode(secrets[ref["name"]][ref["key"]]).decode())
    return "\n".join(parts)


def addresses(host: str, told: str) -> bool:
    """The text addresses this Service by a URL or host:port. A bare name (e.g. the Deployment a
    hook restarts through the Kubernetes API) is not an address."""
    name = re.escape(host)
    url = rf"(//|@){name}(?![-a-z0-9])|(?<![-.a-z0-9/@]){name}(\.[-.a-z0-9]+)?:[0-9]+"
    return bool(re.search(url, told))


def needed_callers(docs) -> dict[str, set[str]]:
    """server component -> components of pods whose configuration names its Service."""
    hosts = servers(docs)
    callers: dict[str, set[str]] = {component: set() for component in hosts}
    for _, metadata, spec in pods(docs):
        caller = metadata.get("labels", {}).get(COMPONENT)
        told = text_of(spec, docs)
        for component, (host, _) in hosts.items():
            if host and caller != component and addresses(host, told):
                callers[component].add(caller)
    return callers


@pytest.fixture(scope="module")
def docs():
    return render_chart(EVERYTHING_ON)


def test_every_pod_of_the_release_is_under_the_default_deny(docs):
    deny = policies(docs)["default-deny"]
    assert deny["spec"]["policyTypes"] == ["Ingress"] and deny["spec"]["ingress"] == []
    selector = deny["spec"]["podSelector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/instance": RELEASE}
    all_pods = pods(docs)
    assert len(all_pods) >= 15
    for name, metadata, _ in all_pods:
        assert selector.items() <= metadata.get("labels", {}).items(), name
    # The operator subchart's pod too (it serves nothing to other pods).
    operator = find(docs, "Deployment", "-dask-kubernetes-operator")
    assert selector.items() <= operator["spec"]["template"]["metadata"]["labels"].items()


def test_each_component_admits_exactly_the_components_that_call_it(docs):
    needed = needed_callers(docs)
    # The derivation itself works: these connections are known from the chart's design.
    assert {"hasura", "dask-worker", "flow-run", "test"} <= needed["postgresql"]
    assert {"agent", "flow-run", "test", "tenant"} <= needed["apollo"]
    assert {"flow-run", "test"} <= needed["dask-scheduler"]
    by_component = policies(docs)
    hosts = servers(docs)
    assert set(by_component) - {"default-deny"} == set(hosts), "a policy per serving component"
    for component, (_, ports) in hosts.items():
        components, _, policy_ports = admitted(by_component[component])
        expected = needed.get(component, set()) | IMPLICIT.get(component, set())
        assert components == expected, component
        if component != "dask-worker":  # workers: every port (random comm port)
            assert policy_ports == ports, component


def test_the_peer_table(docs):
    """The same policies, written out: what docs/chart.md's Security model states."""
    table = {c: admitted(p)[0] for c, p in policies(docs).items() if c != "default-deny"}
    assert table == {
        "postgresql": {"hasura", "graphql", "migration", "retention", "results-schema",
                       "dask-worker", "flow-run", "test"},
        "hasura": {"graphql", "apollo", "towel", "migration"},
        "graphql": {"apollo"},
        "apollo": {"ui", "agent", "flow-run", "test", "tenant"},
        "ui": set(),
        "dask-scheduler": {"dask-worker", "flow-run", "test"},
        "dask-worker": {"dask-scheduler", "dask-worker", "flow-run", "test"},
    }  # fmt: skip


def test_outside_peers_come_from_values(docs):
    by_component = policies(docs)
    _, scheduler_peers, scheduler_ports = admitted(by_component["dask-scheduler"])
    assert scheduler_peers == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "dask-kubernetes-operator"}}}
    ], "the operator, in this namespace only"
    assert scheduler_ports == {8786, 8787}
    # Prometheus (PodMonitor on in EVERYTHING_ON) reaches the metrics port and nothing else.
    metrics = by_component["dask-scheduler"]["spec"]["ingress"][1]
    assert metrics["ports"] == [{"port": 8787, "protocol": "TCP"}]
    assert metrics["from"][0]["namespaceSelector"] == {}
    ingress_controller = {
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}},
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
    }
    for component in ("apollo", "ui"):
        assert admitted(by_component[component])[1] == [ingress_controller], component
    assert admitted(by_component["postgresql"])[1] == []


def test_without_ingress_or_podmonitor_nobody_outside_is_admitted():
    by_component = policies(render_chart())
    assert admitted(by_component["apollo"])[1] == []
    assert by_component["ui"]["spec"]["ingress"] == [], "nobody: `from` left out would mean all"
    assert len(by_component["dask-scheduler"]["spec"]["ingress"]) == 1


def test_extra_peers_are_added_to_their_component():
    extra = {
        "apollo": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
        "postgresql": [
            {"namespaceSelector": {"matchLabels": {"team": "analysis"}},
             "podSelector": {"matchLabels": {"role": "notebook"}}}
        ],
    }  # fmt: skip
    by_component = policies(render_chart({"networkPolicy": {"extraPeers": extra}}))
    assert admitted(by_component["apollo"])[1] == extra["apollo"]
    assert admitted(by_component["postgresql"])[1] == extra["postgresql"]
    # A peer given without namespaceSelector stays in this namespace (never `{}` = everywhere).
    operator_peer = admitted(by_component["dask-scheduler"])[1][0]
    assert "namespaceSelector" not in operator_peer


def test_network_policies_can_be_turned_off():
    docs = render_chart({"networkPolicy": {"enabled": False}})
    assert not [d for d in docs if d["kind"] == "NetworkPolicy"]


def test_flow_run_pods_carry_the_label_the_policies_admit():
    templates = job_templates(render_chart())
    for preset, job in templates.items():
        assert job["spec"]["template"]["metadata"]["labels"][COMPONENT] == "flow-run", preset
