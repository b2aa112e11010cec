"""The release's Prefect agent: Prefect 1's KubernetesAgent that runs only what the release allows.

Prefect 1's agent builds a flow-run Job from whatever the flow run's ``KubernetesRun`` says: its
own job template (any pod: extra containers, volumes that mount the namespace's Secrets), any
service account, any image, any environment. Anyone who reaches the Prefect API could so make the
agent start any pod. This agent refuses such runs before a Job exists: the flow run is marked
Failed with a one-line reason (Prefect's agent does that with the message of any error raised
while deploying). Allowed is what the CLI sends: the release's job templates
(``agent:///etc/simmate/job-templates/<preset>.yaml``), the release's image(s), its image pull
Secrets, no service account, no environment, and flows stored as modules of the image.

Run in the chart's agent pod as ``python -m simmate_k8s.agent`` (docs/chart.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TEMPLATES_DIR = "/etc/simmate/job-templates"
FLOW_MODULES = ("simmate_k8s.flows.library",)  # what `simmate-k8s register` stores (Module)
PRESET = re.compile(r"[a-z]([-a-z0-9]{0,30}[a-z0-9])?")


class RunRefused(Exception):
    """A flow run whose run config the release does not allow (the message is the reason)."""


@dataclass(frozen=True)
class Policy:
    """What the release allows a flow run to ask for."""

    templates_dir: Path
    images: frozenset[str]
    pull_secrets: frozenset[str] = frozenset()
    flow_modules: frozenset[str] = frozenset(FLOW_MODULES)

    def template_path(self, job_template_path: str | None) -> Path | None:
        """The release template a run config names (None: the agent's default), or raise."""
        if job_template_path is None:
            return None
        directory = str(self.templates_dir).rstrip("/")
        match = re.fullmatch(
            rf"agent://{re.escape(directory)}/(?P<preset>[^/]+)\.yaml", job_template_path
        )
        if not match or not PRESET.fullmatch(match["preset"]):
            raise RunRefused(
                f"job_template_path {job_template_path!r} is not one of the release's job "
                f"templates (agent://{directory}/<preset>.yaml)"
            )
        path = self.templates_dir / f"{match['preset']}.yaml"
        if not path.is_file():
            presets = ", ".join(sorted(p.stem for p in self.templates_dir.glob("*.yaml")))
            raise RunRefused(
                f"job template preset {match['preset']!r} is not in this release "
                f"(presets: {presets})"
            )
        return path


def check_run_config(policy: Policy, run_config, storage: dict | None) -> None:
    """Raise RunRefused (one line: what was refused and why) unless the release allows it.

    ``run_config`` is a ``KubernetesRun``; ``storage`` the flow's serialized storage."""
    if run_config.job_template is not None:
        raise RunRefused(
            "run config brings its own job_template: flow runs use the release's job "
            f"templates only ({policy.templates_dir}, choose one with --preset)"
        )
    policy.template_path(run_config.job_template_path)
    if run_config.service_account_name is not None:
        raise RunRefused(
            f"run config sets service_account_name {run_config.service_account_name!r}: "
            "flow-run pods run without a Kubernetes API identity"
        )
    if run_config.image is not None and run_config.image not in policy.images:
        raise RunRefused(
            f"run config image {run_config.image!r} is not allowed by the release "
            f"(allowed: {', '.join(sorted(policy.images))}; see agent.allowedImages)"
        )
    foreign = sorted(set(run_config.image_pull_secrets or ()) - policy.pull_secrets)
    if foreign:
        raise RunRefused(
            f"run config image_pull_secrets {', '.join(foreign)} are not the release's "
            "imagePullSecrets: a pull Secret is a credential the release did not grant"
        )
    if run_config.env:
        raise RunRefused(
            f"run config sets environment variables ({', '.join(sorted(run_config.env))}): "
            "they change what the image runs (e.g. PYTHONWARNINGS, SIMMATE_DASK_ADDRESS); "
            "flow-run Jobs take their environment from the release's job templates"
        )
    kind = (storage or {}).get("type")
    module = (storage or {}).get("module")
    if kind != "Module" or module not in policy.flow_modules:
        where = f"Module {module!r}" if kind == "Module" else f"{kind or 'no'} storage"
        raise RunRefused(
            f"flow stored as {where}: the release runs flows from its image's modules only "
            f"({', '.join(sorted(policy.flow_modules))}, as `simmate-k8s register` stores them)"
        )


def _agent_class():
    from prefect.agent.kubernetes import KubernetesAgent
    from prefect.run_configs import KubernetesRun

    class ReleaseAgent(KubernetesAgent):
        """KubernetesAgent that builds Jobs only from what ``policy`` allows."""

        def __init__(self, policy: Policy, **kwargs):
            super().__init__(**kwargs)
            self.policy = policy

        def generate_job_spec(self, flow_run) -> dict:
            # deploy_flow calls this before it creates the Job: a refusal creates nothing, and
            # Prefect's agent marks the run Failed with the message.
            run_config = self._get_run_config(flow_run, KubernetesRun)
            check_run_config(self.policy, run_config, flow_run.flow.storage)
            job = super().generate_job_spec(flow_run)
            # The image the Job really gets (storage or template may also name one).
            pod = job["spec"]["template"]["spec"]
            images = {
                c.get("image") for c in pod.get("containers", []) + pod.get("initContainers", [])
            }
            if not images <= self.policy.images:
                raise RunRefused(
                    f"the Job would run image(s) {', '.join(sorted(map(str, images)))}, not "
                    f"allowed by the release (allowed: {', '.join(sorted(self.policy.images))})"
                )
            if "serviceAccountName" in pod:
                raise RunRefused("the Job would set a service account; the release sets none")
            return job

    return ReleaseAgent


def build_agent(
    policy: Policy,
    *,
    namespace: str,
    labels: Iterable[str],
    job_template: str | None = None,
    agent_address: str | None = None,
    max_polls: int | None = None,
    delete_finished_jobs: bool = True,
):
    """The release agent (Prefect's KubernetesAgent, refusing what ``policy`` does not allow)."""
    return _agent_class()(
        policy,
        namespace=namespace,
        labels=list(labels),
        job_template_path=job_template or str(policy.templates_dir / "default.yaml"),
        agent_address=agent_address,
        max_polls=max_polls,
        delete_finished_jobs=delete_finished_jobs,
    )


def parse_args(argv: list[str] | None = None):
    """The entry point's options (the chart's agent Deployment passes them)."""
    import argparse
    import os

    parser = argparse.ArgumentParser(
        prog="python -m simmate_k8s.agent",
        description="Prefect 1 Kubernetes agent that runs only what the release allows.",
    )
    parser.add_argument("--namespace", default=os.environ.get("NAMESPACE", "default"))
    parser.add_argument("--label", action="append", default=[], dest="labels")
    parser.add_argument("--templates-dir", default=TEMPLATES_DIR)
    parser.add_argument("--job-template", help="Default template [TEMPLATES_DIR/default.yaml].")
    parser.add_argument(
        "--allowed-image",
        action="append",
        default=[],
        dest="images",
        required=True,
        help="An image flow-run Jobs may run (repeat).",
    )
    parser.add_argument(
        "--allowed-pull-secret",
        action="append",
        default=[],
        dest="pull_secrets",
        help="An image pull Secret run configs may name.",
    )
    parser.add_argument("--agent-address", help="Health API address, e.g. http://0.0.0.0:8080.")
    args = parser.parse_args(argv)
    args.policy = Policy(
        Path(args.templates_dir), frozenset(args.images), frozenset(args.pull_secrets)
    )
    return args


def main(argv: list[str] | None = None) -> None:
    import os

    args = parse_args(argv)
    build_agent(
        args.policy,
        namespace=args.namespace,
        labels=args.labels,
        job_template=args.job_template,
        agent_address=args.agent_address,
        delete_finished_jobs=os.environ.get("DELETE_FINISHED_JOBS", "True") == "True",
    ).start()


if __name__ == "__main__":
    main()
