"""Dask TLS (dask.tls): certificates, tls:// everywhere, the exposure rule.

Release `lab` in namespace `team`, so no name can come from a hard-coded `simmate`.
"""

from __future__ import annotations

import base64

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from simmate_k8s.values.command import values as values_command
from simmate_k8s.values.model import ChartValues
from simmate_k8s.values.render import ValuesError, validate
from tests.chart.helpers import CHART, RenderError, find, helm, kinds, pod_specs, render_chart

RELEASE, NAMESPACE = "lab", "team"
SERVICE = "lab-simmate-dask-scheduler"
ADDRESS = f"tls://{SERVICE}.{NAMESPACE}.svc:8786"
MOUNT = "/etc/simmate/dask-tls"
GROUPS = {"dask": {"workerGroups": [{"name": "highmem"}]}}
TLS_ENV = "DASK_DISTRIBUTED__COMM__"


def render(values=None, **kwargs):
    return render_chart(values or GROUPS, release=RELEASE, namespace=NAMESPACE, **kwargs)


@pytest.fixture(scope="module")
def docs():
    return render()


def ours(docs):
    """(label, pod spec) of this release's pods, flow-run Job templates included."""
    return [
        pod
        for d in docs
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "simmate"
        for pod in pod_specs(d)
    ]


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env") or []}


def dask_pods(docs):
    """Every pod that talks to the scheduler: the Dask pods and any pod given its address."""
    found = {}
    for label, spec in ours(docs):
        container = spec["containers"][0]
        talks = container.get("args", [])[:2] in (["dask", "scheduler"], ["dask", "worker"]) or any(
            SERVICE in str(value) for value in env_of(container).values()
        )
        if talks:
            found[label] = spec
    return found


def tls_files(spec):
    """{path in the container: Secret key} of the dask-tls volume, and the volume."""
    (volume,) = [v for v in spec.get("volumes", []) if v["name"] == "dask-tls"]
    (mount,) = [
        m for c in spec["containers"] for m in c.get("volumeMounts", []) if m["name"] == "dask-tls"
    ]
    assert mount["readOnly"] is True and mount["mountPath"] == MOUNT
    return {f"{MOUNT}/{item['path']}": item["key"] for item in volume["secret"]["items"]}, volume


def test_every_dask_talking_pod_uses_tls_with_its_own_certificate(docs):
    pods = dask_pods(docs)
    labels = " ".join(pods)
    for part in (
        "DaskCluster/lab-simmate-dask/scheduler",
        "DaskCluster/lab-simmate-dask/worker",
        "DaskWorkerGroup/lab-simmate-dask-highmem/worker",
        "Pod/lab-simmate-test",
        "default.yaml",
        "small.yaml",
        "large.yaml",
    ):
        assert part in labels, f"{part} not among {labels}"
    for label, spec in pods.items():
        container = spec["containers"][0]
        env = env_of(container)
        files, volume = tls_files(spec)
        role = "scheduler" if label.endswith("/scheduler") else "client"
        assert volume["secret"]["secretName"] == "lab-simmate-dask-tls", label
        assert volume["secret"]["defaultMode"] == 0o440 and spec["securityContext"]["fsGroup"]
        assert sorted(files.values()) == sorted(["ca.crt", f"{role}.crt", f"{role}.key"]), label
        assert env[f"{TLS_ENV}REQUIRE_ENCRYPTION"] == "True", label
        assert files[env[f"{TLS_ENV}TLS__CA_FILE"]] == "ca.crt", label
        roles = {"scheduler": ["SCHEDULER"], "client": ["CLIENT"]}[role]
        if container.get("args", [])[:2] == ["dask", "worker"]:
            roles = ["WORKER", "CLIENT"]
        for name in roles:
            assert files[env[f"{TLS_ENV}TLS__{name}__CERT"]] == f"{role}.crt", label
            assert files[env[f"{TLS_ENV}TLS__{name}__KEY"]] == f"{role}.key", label
        addresses = [
            str(v) for v in [*env.values(), *container.get("args", [])] if SERVICE in str(v)
        ]
        if role == "scheduler":
            assert container.get("args", [])[-2:] == ["--protocol", "tls"]
        else:
            assert addresses and set(addresses) == {ADDRESS}, (label, addresses)
        if container.get("args", [])[:2] == ["dask", "worker"]:
            # explicit, and set so the operator's tcp:// DASK_SCHEDULER_ADDRESS is never added
            assert (
                container.get("args", [])[2] == ADDRESS and env["DASK_SCHEDULER_ADDRESS"] == ADDRESS
            )


def test_job_templates_and_notes_give_the_tls_address(docs):
    assert find(docs, "ConfigMap", "-job-templates")["data"]["scheduler-address"] == ADDRESS
    notes = helm("install", "--dry-run=client", RELEASE, str(CHART), "-n", NAMESPACE).stdout
    notes = notes.split("NOTES:", 1)[1]
    assert f"Scheduler: {ADDRESS}" in notes and "tcp://" not in notes


def test_the_autoscaler_path_stays_plain_http(docs):
    """The operator asks /api/v1/adaptive_target and /retire_workers on `http-dashboard`."""
    scheduler = find(docs, "DaskCluster", "-dask")["spec"]["scheduler"]
    container = scheduler["spec"]["containers"][0]
    assert {p["name"]: p["port"] for p in scheduler["service"]["ports"]} == {
        "tcp-comm": 8786,
        "http-dashboard": 8787,
    }
    assert (
        "'distributed.http.scheduler.api'"
        in env_of(container)["DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES"]
    )
    assert not [name for name in env_of(container) if "DASHBOARD" in name]  # no HTTPS there
    assert container["readinessProbe"]["httpGet"]["port"] == "http-dashboard"


def certificates(docs):
    secret = find(docs, "Secret", "-dask-tls")
    assert secret["type"] == "Opaque"
    return {key: base64.b64decode(value) for key, value in secret["data"].items()}


def test_the_generated_certificates_are_signed_by_the_release_ca(docs):
    pem = certificates(docs)
    assert set(pem) == {"ca.crt", "scheduler.crt", "scheduler.key", "client.crt", "client.key"}
    ca = x509.load_pem_x509_certificate(pem["ca.crt"])
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for role in ("scheduler", "client"):
        cert = x509.load_pem_x509_certificate(pem[f"{role}.crt"])
        cert.verify_directly_issued_by(ca)
        key = serialization.load_pem_private_key(pem[f"{role}.key"], password=None)
        assert key.public_key().public_numbers() == cert.public_key().public_numbers()
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert (
            ExtendedKeyUsageOID.CLIENT_AUTH in usages and ExtendedKeyUsageOID.SERVER_AUTH in usages
        )
    names = (
        x509.load_pem_x509_certificate(pem["scheduler.crt"])
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value.get_values_for_type(x509.DNSName)
    )
    assert names == [
        SERVICE,
        f"{SERVICE}.team",
        f"{SERVICE}.team.svc",
        f"{SERVICE}.team.svc.cluster.local",
    ]


def _checksums():
    """(DaskCluster annotation, pre-upgrade hook's SPEC_CHECKSUM) of one fresh render."""
    import yaml

    out = helm("template", RELEASE, str(CHART), "-n", NAMESPACE).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    cluster = find(docs, "DaskCluster", "-dask")["metadata"]["annotations"][
        "simmate-k8s.io/spec-checksum"
    ]
    job = find(docs, "Job", "-dask-recreate")["spec"]["template"]["spec"]["containers"][0]
    return cluster, env_of(job)["SPEC_CHECKSUM"]


def test_one_ca_per_render_and_a_new_ca_recreates_the_dask_pods():
    first, second = _checksums(), _checksums()
    assert first[0] == first[1] and second[0] == second[1]  # one CA for the whole render
    assert first[0] != second[0]  # a new CA (deleted Secret) -> the hook re-creates the pods


def test_existing_secret_is_used_and_nothing_is_generated():
    docs = render({"dask": {**GROUPS["dask"], "tls": {"existingSecret": "lab-dask-certs"}}})
    assert not [d for d in docs if d["kind"] == "Secret" and "dask-tls" in d["metadata"]["name"]]
    assert "Certificate" not in kinds(docs)
    for label, spec in dask_pods(docs).items():
        files, volume = tls_files(spec)
        assert volume["secret"]["secretName"] == "lab-dask-certs", label
        role = "scheduler" if label.endswith("/scheduler") else "client"
        assert files[f"{MOUNT}/tls.key"] == f"{role}.key"


def test_cert_manager_issues_the_two_certificates():
    issuer = {"name": "lab-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    docs = render({"dask": {"tls": {"certManager": {"issuerRef": issuer}, "validityDays": 90}}})
    assert not [d for d in docs if d["kind"] == "Secret" and "dask-tls" in d["metadata"]["name"]]
    scheduler = find(docs, "Certificate", "-dask-tls-scheduler")["spec"]
    client = find(docs, "Certificate", "-dask-tls-client")["spec"]
    assert scheduler["secretName"] == "lab-simmate-dask-tls-scheduler"
    assert scheduler["dnsNames"][-1] == f"{SERVICE}.team.svc.cluster.local"
    assert client["secretName"] == "lab-simmate-dask-tls-client" and "dnsNames" not in client
    for spec in (scheduler, client):
        assert spec["issuerRef"] == issuer and spec["duration"] == "2160h"
        assert {"server auth", "client auth"} <= set(spec["usages"])
    for label, spec in dask_pods(docs).items():
        files, volume = tls_files(spec)
        role = "scheduler" if label.endswith("/scheduler") else "client"
        assert volume["secret"]["secretName"] == f"lab-simmate-dask-tls-{role}", label
        assert sorted(files.values()) == ["ca.crt", "tls.crt", "tls.key"]


def test_tls_off_is_plain_tcp_everywhere():
    docs = render({"dask": {"tls": {"enabled": False}}})
    assert not [d for d in docs if "dask-tls" in d["metadata"]["name"]]
    for label, spec in dask_pods(docs).items():
        container = spec["containers"][0]
        assert "--protocol" not in container.get("args", [])
        assert not [v for v in spec.get("volumes", []) if v["name"] == "dask-tls"], label
        assert not [n for n in env_of(container) if n.startswith(TLS_ENV)], label
    assert find(docs, "ConfigMap", "-job-templates")["data"]["scheduler-address"] == (
        f"tcp://{SERVICE}.team.svc:8786"
    )


EXPOSED = "dask.scheduler.service NodePort/LoadBalancer needs dask.tls.enabled and allowExternal"
REFUSED = [
    ({"scheduler": {"service": {"type": "LoadBalancer"}}}, EXPOSED),
    ({"scheduler": {"service": {"type": "NodePort"}}}, EXPOSED),
    (
        {
            "tls": {"enabled": False},
            "scheduler": {"service": {"type": "NodePort", "allowExternal": True}},
        },
        EXPOSED,
    ),
    (
        {"tls": {"existingSecret": "x", "certManager": {"issuerRef": {"name": "ca"}}}},
        "dask.tls.existingSecret and dask.tls.certManager.issuerRef are both set: choose one",
    ),
]


@pytest.mark.parametrize("dask, message", REFUSED)
def test_helm_and_the_model_refuse_the_same(dask, message):
    with pytest.raises(RenderError) as helm_error:
        render({"dask": dask})
    assert message in str(helm_error.value)
    with pytest.raises(ValuesError) as model_error:
        validate({"dask": dask})
    assert message in str(model_error.value)


def test_values_command_refuses_an_exposed_scheduler_in_one_line():
    result = CliRunner().invoke(
        values_command, ["--set", "dask.scheduler.service.type=LoadBalancer"]
    )
    assert result.exit_code == 2 and EXPOSED in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_exposure_with_tls_and_the_explicit_value_renders():
    service = {"type": "LoadBalancer", "allowExternal": True}
    docs = render({"dask": {"scheduler": {"service": service}}})
    assert find(docs, "DaskCluster", "-dask")["spec"]["scheduler"]["service"]["type"] == (
        "LoadBalancer"
    )
    ChartValues.model_validate({"dask": {"scheduler": {"service": service}}})
