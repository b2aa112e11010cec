"""Bad combinations: helm fails with one aggregated message, in the model's words."""

import pytest

from simmate_k8s.values.model import ChartValues
from simmate_k8s.values.render import ValuesError, validate
from tests.chart.helpers import RenderError, render_chart

BAD = [
    (
        {"networkPolicy": {"extraPeers": {"apollo": [
            {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {"matchLabels": {"a": "b"}}}]}}},
        "networkPolicy peers need podSelector/namespaceSelector or ipBlock, not both",
    ),
    (
        {"networkPolicy": {"daskOperator": {"podSelector": None}}},
        "networkPolicy peers need podSelector/namespaceSelector or ipBlock, not both",
    ),
    (
        {"dask-kubernetes-operator": {"kopfArgs": ["--all-namespaces"]}},
        "rbac.cluster and kopfArgs --all-namespaces must agree",
    ),
    (
        {"externalDatabase": {"host": "db.example.com", "existingSecret": "db"}},
        "postgresql.enabled and externalDatabase.host are both set",
    ),
    ({"postgresql": {"enabled": False}}, "prefectServer needs a database"),
    (
        {
            "postgresql": {"enabled": False},
            "externalDatabase": {"host": "db"},
            "results": {"existingSecret": "r", "schema": {"enabled": False}},
        },
        "externalDatabase.host needs externalDatabase.existingSecret",
    ),
    (
        {
            "postgresql": {"enabled": False},
            "prefectServer": {"enabled": False},
            "agent": {"apiUrl": "http://x/graphql"},
        },
        "the results DB needs postgresql.enabled",
    ),
    ({"dask": {"autoscaler": {"minimum": 5, "maximum": 2}}}, "dask.autoscaler.minimum is larger"),
    ({"prefectServer": {"enabled": False}}, "agent.enabled without prefectServer.enabled"),
    (
        {"postgresql": {"roles": {"writer": {"name": "simmate_owner"}}}},
        "postgresql.username and the postgresql.roles names must all differ",
    ),
    (
        {"postgresql": {"username": "prefect"}},
        "postgresql.username and the postgresql.roles names must all differ",
    ),
    (
        {"results": {"existingSecret": "results"}},
        "results.existingSecret needs results.schema.existingSecret or schema.enabled=false",
    ),
    (
        {"postgresql": {"resultsDatabase": "prefect"}},
        "postgresql.resultsDatabase must differ from postgresql.database",
    ),
    ({"agent": {"jobPresets": {"default": None}}}, "agent.jobPresets must contain `default`"),
    (
        {"dask": {"workerGroups": [{"name": "a"}, {"name": "a"}]}},
        "dask.workerGroups names must be unique",
    ),
    (
        {"prefectServer": {"ingress": {"enabled": True, "authProvidedElsewhere": True}}},
        "prefectServer.ingress.enabled needs",
    ),
    (
        {
            "prefectServer": {
                "ingress": {
                    "enabled": True,
                    "host": "h",
                    "className": "nginx",
                    "basicAuth": {"enabled": True},
                }
            }
        },
        "basicAuth.enabled needs basicAuth.existingSecret",
    ),
    (
        {"prefectServer": {"ingress": {"enabled": True, "host": "h", "className": "gce"}}},
        "prefectServer.ingress needs auth: basicAuth (className nginx) or authProvidedElsewhere",
    ),
    # B: a start above the autoscaler's minimum is scaled away before the workers register.
    (
        {"dask": {"worker": {"replicas": 1}, "autoscaler": {"minimum": 0, "maximum": 4}}},
        "dask.worker.replicas must be empty or equal dask.autoscaler.minimum (autoscaler on)",
    ),
    (
        {"image": {"repository": ""}},
        "image.repository is not set: set --set image.repository=REGISTRY/simmate-k8s",
    ),
    (
        {
            "prefectServer": {"enabled": False, "retention": {"enabled": True}},
            "agent": {"apiUrl": "http://prefect.example.com/graphql"},
        },
        "prefectServer.retention.enabled needs prefectServer.enabled",
    ),
    (
        {"dask": {"scheduler": {"service": {"type": "LoadBalancer", "allowExternal": True}},
                  "tls": {"enabled": False}}},
        "dask.scheduler.service NodePort/LoadBalancer needs dask.tls.enabled and allowExternal",
    ),
    (
        {"prefectServer": {"apollo": {"service": {"type": "NodePort"}}}},
        "prefectServer.apollo.service NodePort/LoadBalancer needs allowExternal",
    ),
    (
        {"prefectServer": {"ui": {"service": {"type": "LoadBalancer"}}}},
        "prefectServer.ui.service NodePort/LoadBalancer needs allowExternal",
    ),
    (
        {"dask": {"tls": {"existingSecret": "x", "certManager": {"issuerRef": {"name": "ca"}}}}},
        "dask.tls.existingSecret and dask.tls.certManager.issuerRef are both set: choose one",
    ),
]


@pytest.mark.parametrize("values, message", BAD, ids=[m for _, m in BAD])
def test_helm_and_model_reject_the_same_combination(values, message):
    with pytest.raises(RenderError) as helm_error:
        render_chart(values)
    assert message in str(helm_error.value)
    with pytest.raises(ValuesError) as model_error:
        validate(values)
    assert message in str(model_error.value)


def test_all_problems_come_in_one_message():
    values = {
        "dask": {"autoscaler": {"minimum": 5, "maximum": 2}},
        "prefectServer": {"ingress": {"enabled": True, "authProvidedElsewhere": True}},
    }
    with pytest.raises(RenderError) as error:
        render_chart(values)
    text = str(error.value)
    assert "2 problem(s)" in text and "autoscaler" in text and "ingress" in text


def test_model_rules_and_template_rules_are_the_same_list():
    """Every rule of combination_problems has a twin in _validate.tpl (same words)."""
    import inspect
    import re

    from simmate_k8s.values import model
    from tests.chart.helpers import CHART

    python_rules = set(re.findall(r'problems\.append\(\s*"([^"]+)"', inspect.getsource(model)))
    template = (CHART / "templates" / "_validate.tpl").read_text()
    template_rules = set(re.findall(r'append \$problems "([^"]+)"', template))
    assert python_rules == template_rules and len(python_rules) == len({w for _, w in BAD}) + 1


def test_defaults_are_valid():
    ChartValues()


@pytest.mark.parametrize(
    "values",
    [
        {"dask": {"worker": {"replicas": 2}, "autoscaler": {"minimum": 2, "maximum": 4}}},
        {"dask": {"worker": {"replicas": 3}, "autoscaler": {"enabled": False}}},
        {"dask": {"worker": {"replicas": None}}},
    ],
)
def test_replicas_that_cannot_fight_the_autoscaler_are_accepted(values):
    render_chart(values)
    validate(values)


@pytest.mark.parametrize("profile", ["gke", "digitalocean"])
def test_helm_refuses_a_cloud_profile_without_registry(profile):
    """The profile file itself, as skaffold or `helm -f` would pass it."""
    from simmate_k8s.values.render import load_profile

    with pytest.raises(RenderError) as error:
        render_chart(load_profile(profile))
    assert "image.repository is not set: set --set image.repository=REGISTRY/simmate-k8s" in str(
        error.value
    )
