"""Option groups of the commands: small decorators that add a related set of options and hand
them to the command as one dataclass, and the `--backend` choice that opens a
:mod:`simmate_k8s.backends` backend after refusing the other backend's options.

Only click is imported here (the backends are imported when one is opened, the HPC options when
`run` is).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import ClassVar

import click
from click.core import ParameterSource

from simmate_k8s.errors import UserError

BACKENDS = ("prefect", "job")


@dataclass(frozen=True)
class _Group:
    backend: ClassVar[str]  # the --backend that takes these options
    # the options set on the command line, in declaration order: what the other backend refuses
    given: tuple[str, ...] = ()
    hint: str = field(default="", repr=False)  # added to that refusal


@dataclass(frozen=True)
class PrefectOptions(_Group):
    """How flow runs are made on Prefect Server."""

    backend = "prefect"
    labels: tuple[str, ...] = ()
    project: str | None = None
    idempotency_key: str | None = None
    concurrency: int = 8


@dataclass(frozen=True)
class JobTarget(_Group):
    """Which cluster, namespace and release Jobs go to (and, for submit, how they are made)."""

    backend = "job"
    namespace: str | None = None
    context: str | None = None
    release: str | None = None
    image: str | None = None
    job_templates: str | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class BatchOptions:
    """How the inputs are split into batches (one flow run each) and resumed."""

    batch_size: int | None = None
    rerun: bool = False
    chunk_size: int | None = None  # `run` only
    batch_id: str | None = None  # `run` only


@dataclass(frozen=True)
class ComputeTarget:
    """Where `run` computes: a local Dask cluster, an existing scheduler, or HPC batch jobs."""

    workers: int = 2
    address: str | None = None
    cluster_system: str = "local"
    hpc: object = None  # simmate_k8s.hpc.HpcOptions


@dataclass(frozen=True)
class OutputOptions:
    as_json: bool = False
    verbose: bool = False


def _group(cls, keyword: str, options: list[tuple[tuple[str, ...], str, dict]], hint: str = ""):
    """A decorator adding ``options`` — (flags, field of ``cls``, click.option keywords) — to a
    command, which gets them as one ``cls`` instance under ``keyword``."""
    def decorate(function):
        @functools.wraps(function)
        def command(*args, **kwargs):
            values = {name: kwargs.pop(name) for _, name, _ in options}
            if issubclass(cls, _Group):  # a backend's group: which of its options were given
                context = click.get_current_context()
                values["given"] = tuple(
                    flags[0] for flags, name, _ in options
                    if context.get_parameter_source(name) in (
                        ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT))
                values["hint"] = hint
            kwargs[keyword] = cls(**values)
            return function(*args, **kwargs)

        for flags, name, settings in reversed(options):
            command = click.option(*flags, name, **settings)(command)
        return command
    return decorate


_BATCH = [
    (("--batch-size",), "batch_size", {
        "type": click.IntRange(1, 1_000_000), "default": None,
        "help": "At most this many inputs per flow run (one batch each) "
                "[default: all inputs in one flow run]."}),
    (("--rerun",), "rerun", {"is_flag": True,
                             "help": "Compute again even what is already completed."}),
]

# `submit`: what splits and resumes a batch
batch_options = _group(BatchOptions, "batching", _BATCH)

# `run`: the same, and how the batch is computed here
run_batch_options = _group(BatchOptions, "batching", [
    *_BATCH,
    (("--chunk-size",), "chunk_size", {
        "type": click.IntRange(1, 100_000), "default": None,
        "help": "Items per Prefect task [default: 1, more when there are over "
                "50 items per worker]."}),
    (("--batch-id",), "batch_id", {
        "metavar": "ID", "help": "Name the batch (one flow run) [default: a new UUID]."}),
])

_TARGET = [
    (("--workers", "-w"), "workers", {
        "type": click.IntRange(1, 512), "default": 2, "show_default": True,
        "help": "Worker processes of the local Dask cluster."}),
    (("--address",), "address", {
        "envvar": "SIMMATE_DASK_ADDRESS", "metavar": "tcp://HOST:PORT",
        "help": "Use this Dask scheduler instead of a local cluster "
                "[env SIMMATE_DASK_ADDRESS]. Its workers need the preload. A tls:// "
                "scheduler needs DASK_DISTRIBUTED__COMM__TLS__CA_FILE, "
                "..._TLS__CLIENT__CERT and ..._TLS__CLIENT__KEY."}),
    (("--cluster",), "cluster_system", {
        "default": "local", "show_default": True,
        "type": click.Choice(["local", "slurm", "pbs", "sge", "lsf", "htcondor"]),
        "help": "Where the workers run: a local cluster, or batch jobs of a queue system "
                "(the scheduler lives in this process; options below as for "
                "`simmate-k8s workers`)."}),
]


def compute_target_options(function):
    """`run`: --workers, --address, --cluster and the HPC job options, as one ComputeTarget."""
    from simmate_k8s.hpc import hpc_options  # click and the standard library only

    @functools.wraps(function)
    def command(*args, target, hpc, **kwargs):
        return function(*args, target=dataclasses.replace(target, hpc=hpc), **kwargs)

    command = hpc_options(system=None, join=False, dry_run=False, pass_as="hpc")(command)
    return _group(ComputeTarget, "target", _TARGET)(command)


output_options = _group(OutputOptions, "output", [
    (("--json",), "as_json", {"is_flag": True, "help": "Print the outcome as JSON."}),
    (("--verbose", "-v"), "verbose", {"is_flag": True, "help": "Show Prefect's task logs."}),
])


def flow_arguments(function):
    """FLOW, its INPUTs and --param KEY=VALUE: what `run` and `submit` both compute."""
    for decorator in reversed((
        click.argument("flow_name", metavar="FLOW"),
        click.argument("inputs", nargs=-1, metavar="[INPUT]..."),
        click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
                     help="Set a workflow parameter (see `simmate-k8s flows`); repeatable."),
    )):
        function = decorator(function)
    return function


PROJECT_HELP = "Prefect project [default: `config set project`, or simmate]."


def project_option(function):
    return click.option("--project", metavar="NAME", help=PROJECT_HELP)(function)


prefect_options = _group(PrefectOptions, "prefect", [
    (("--label",), "labels", {"multiple": True, "metavar": "LABEL",
                              "help": "[prefect] Add an agent label to the runs; repeatable."}),
    (("--project",), "project", {"metavar": "NAME", "help": f"[prefect] {PROJECT_HELP}"}),
    (("--idempotency-key",), "idempotency_key", {
        "metavar": "KEY",
        "help": "[prefect] Submitting again with the same key returns the same run "
                "(batches use KEY-1, KEY-2, ...)."}),
    (("--concurrency",), "concurrency", {
        "type": click.IntRange(1, 64), "default": 8, "show_default": True,
        "help": "[prefect] Flow runs created at once."}),
])


def _target_options(what: str, release_default: str | None, release_help: str):
    return [
        (("--namespace", "-n"), "namespace", {
            "metavar": "NS", "help": f"[job] Namespace of the {what} [default: the kube "
                                     "context's]."}),
        (("--context",), "context", {
            "metavar": "NAME", "help": "[job] kubeconfig context [default: the current one]."}),
        (("--release",), "release", {
            "default": release_default, "show_default": release_default is not None,
            "metavar": "NAME", "help": release_help}),
    ]


# `status` and `logs`: where the Jobs are
job_target_options = _group(JobTarget, "job", _target_options(
    "Jobs", None, "[job] Only Jobs of this Helm release [default: any]."))

# `submit`: where the Jobs go, and how they are made
job_submit_options = _group(JobTarget, "job", [
    *_target_options("release", "simmate", "[job] Helm release whose job templates (and "
                                           "Dask scheduler) make and run the Jobs."),
    (("--image",), "image", {
        "metavar": "IMAGE",
        "help": "[job] Project image [default: the release's, from its job template]."}),
    (("--job-templates",), "job_templates", {
        "metavar": "FILE",
        "help": "[job] The release's job-templates ConfigMap as YAML (`kubectl get configmap -l "
                "app.kubernetes.io/component=job-templates -o yaml`) instead of reading it from "
                "the cluster; with --dry-run no cluster is needed."}),
    (("--dry-run",), "dry_run", {
        "is_flag": True, "help": "[job] Print the objects as YAML instead of creating them."}),
], hint=" (the image of Prefect runs is set by `register --image`)")


def backend_option(help: str):
    return click.option("--backend", type=click.Choice(BACKENDS), default="prefect",
                        show_default=True, help=help)


def open_backend(name: str, *, prefect: PrefectOptions | None = None,
                 job: JobTarget | None = None):
    """The backend ``--backend NAME`` names; the other backend's options, if any were given,
    are refused in one line."""
    for group in (prefect, job):
        if group is not None and group.backend != name and group.given:
            raise UserError(f"{', '.join(group.given)}: only with --backend {group.backend}"
                            f"{group.hint}")
    from simmate_k8s import backends

    if name == "job":
        job = job or JobTarget()
        return backends.job(namespace=job.namespace, context=job.context, release=job.release,
                            image=job.image, job_templates=job.job_templates)
    prefect = prefect or PrefectOptions()
    return backends.prefect(project=prefect.project, labels=prefect.labels,
                            idempotency_key=prefect.idempotency_key,
                            concurrency=prefect.concurrency)
