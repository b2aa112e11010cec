"""The chart's Dask TLS, outside Kubernetes: certificates, env and args exactly as rendered.

``helm template`` renders the TLS Secret and the pods; this writes the Secret's items into
folders the way the kubelet mounts them, and hands out each container's env and args with only
the addresses (and ports) replaced by local ones, never retyped.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from tests.chart.helpers import find, job_templates, render_chart

RELEASE, NAMESPACE = "lab", "team"
MOUNT = "/etc/simmate/dask-tls"
SHOW = [
    "templates/dask/tls.yaml",
    "templates/dask/daskcluster.yaml",
    "templates/agent/job-templates.yaml",
]


@dataclass
class Pod:
    spec: dict

    @property
    def container(self) -> dict:
        return self.spec["containers"][0]

    def env(self, replace: dict[str, str]) -> dict[str, str]:
        """Plain-value env (Secret-backed entries left out), with ``replace`` applied."""
        return {
            e["name"]: _replace(e["value"], replace)
            for e in self.container.get("env") or []
            if "value" in e
        }

    def args(self, replace: dict[str, str]) -> list[str]:
        return [_replace(arg, replace) for arg in self.container["args"]]


def _replace(text: str, replace: dict[str, str]) -> str:
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


class ChartTls:
    """One render: its Secret and the scheduler, worker and flow-run pods."""

    def __init__(self) -> None:
        docs = render_chart(show_only=SHOW, release=RELEASE, namespace=NAMESPACE)
        secret = find(docs, "Secret", "-dask-tls")
        self.data = {key: base64.b64decode(value) for key, value in secret["data"].items()}
        cluster = find(docs, "DaskCluster", "-dask")["spec"]
        self.scheduler = Pod(cluster["scheduler"]["spec"])
        self.worker = Pod(cluster["worker"]["spec"])
        self.flow_run = Pod(job_templates(docs)["default.yaml"]["spec"]["template"]["spec"])
        self.service = f"{cluster_name(docs)}-scheduler"
        # the address every pod is given, e.g. tls://lab-simmate-dask-scheduler.team.svc:8786
        self.address = f"tls://{self.service}.{NAMESPACE}.svc:8786"

    def mount(self, pod: Pod, directory: Path, owner: int | None = None) -> Path:
        """Write the pod's dask-tls volume into ``directory`` as the kubelet would."""
        (volume,) = [v for v in pod.spec["volumes"] if v["name"] == "dask-tls"]
        directory.mkdir(parents=True, exist_ok=True)
        mode = volume["secret"]["defaultMode"]
        for item in volume["secret"]["items"]:
            path = directory / item["path"]
            path.write_bytes(self.data[item["key"]])
            if owner is not None:  # the pod's fsGroup
                os.chown(path, owner, owner)
            path.chmod(mode)
        return directory


def cluster_name(docs: list[dict]) -> str:
    return find(docs, "DaskCluster", "-dask")["metadata"]["name"]


def assert_tls_scheduler_refuses_strangers(address: str, port: int, ca_file: str) -> None:
    """A TLS scheduler on 127.0.0.1:port refuses a plain client, a TLS client without a client
    certificate (the refusal comes with the first read under TLS 1.3) and a certificate from
    another CA."""
    import socket
    import ssl

    import pytest
    from distributed import Client
    from distributed.security import Security

    with pytest.raises((OSError, TimeoutError)):
        Client(f"tcp://127.0.0.1:{port}", timeout=3)
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = False
    with pytest.raises((ssl.SSLError, ConnectionError)):  # noqa: SIM117
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw) as tls:
                tls.sendall(b"\0" * 8)
                if not tls.recv(1):
                    raise ConnectionError("closed")
    with pytest.raises((OSError, TimeoutError)):
        Client(address, timeout=3, security=Security.temporary())
