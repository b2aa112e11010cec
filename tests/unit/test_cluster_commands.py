"""The commands' shape: one module per noun behind lazy imports, option groups, and the
one-line refusal of the other backend's options (before any request is sent)."""

import inspect
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from simmate_k8s.cli import COMMANDS, cli
from tests.support.postgres import free_port

RUN_ID = "6f1e7c34-0c8b-4d53-9a50-0d4d1d5d5e11"
HEAVY = ("prefect", "kubernetes", "dask", "distributed", "sqlalchemy")


@pytest.mark.parametrize("args", [["--help"], ["submit", "--help"], ["status", "--help"],
                                  ["logs", "--help"], ["register", "--help"],
                                  ["config", "--help"], ["run", "--help"], ["flows", "--help"],
                                  ["results", "--help"], ["db", "--help"],
                                  ["db", "check", "--help"]])
def test_help_imports_neither_prefect_nor_kubernetes(args):
    """Each command module imports only click at the top: help costs no Prefect, no Kubernetes
    client, no Dask."""
    code = ("import sys\n"
            "from simmate_k8s.cli import cli\n"
            "try:\n"
            f"    cli.main({args!r}, prog_name='simmate-k8s')\n"
            "except SystemExit as exit:\n"
            "    assert exit.code == 0, exit.code\n"
            f"print('LOADED', sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Usage: simmate-k8s" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "LOADED []"


def test_every_command_resolves():
    context = click.Context(cli)
    for name in COMMANDS:
        assert isinstance(cli.get_command(context, name), click.Command), name


def test_option_groups_keep_the_commands_small():
    """Related options reach a command as one dataclass (prefect, job), not one parameter
    each."""
    context = click.Context(cli)
    for name in ("submit", "status", "logs", "register"):
        parameters = inspect.signature(cli.get_command(context, name).callback).parameters
        assert len(parameters) <= 12, (name, list(parameters))
    submit = inspect.signature(cli.get_command(context, "submit").callback).parameters
    assert {"prefect", "job"} <= set(submit)
    assert not {"namespace", "labels", "concurrency", "dry_run"} & set(submit)


def test_run_gets_its_options_in_groups():
    """`run` takes batching, target (with the HPC options) and output as one object each; the
    command line still names each option on its own."""
    from simmate_k8s.commands.options import (
        BatchOptions,
        ComputeTarget,
        OutputOptions,
        compute_target_options,
        output_options,
        run_batch_options,
    )

    run = cli.get_command(click.Context(cli), "run")
    parameters = inspect.signature(run.callback).parameters
    assert len(parameters) <= 8, list(parameters)
    assert {"batching", "target", "output"} <= set(parameters)
    assert not {"batch_size", "workers", "jobs", "as_json"} & set(parameters)
    seen = {}

    @click.command()
    @run_batch_options
    @compute_target_options
    @output_options
    def probe(**groups):
        seen.update(groups)

    result = CliRunner().invoke(probe, [
        "--batch-size", "3", "--batch-id", "b1", "--chunk-size", "2", "-w", "3",
        "--cluster", "slurm", "--jobs", "2", "--walltime", "02:00:00", "--json"])
    assert result.exit_code == 0, result.output
    assert seen["batching"] == BatchOptions(batch_size=3, rerun=False, chunk_size=2,
                                            batch_id="b1")
    assert seen["output"] == OutputOptions(as_json=True, verbose=False)
    target = seen["target"]
    assert isinstance(target, ComputeTarget)
    assert (target.workers, target.address, target.cluster_system) == (3, None, "slurm")
    assert (target.hpc.jobs, target.hpc.walltime) == (2, "02:00:00")


@pytest.fixture
def nowhere(tmp_path):
    """No Prefect Server and no kubeconfig: any request would fail with another message."""
    return {"PREFECT__CLOUD__API": f"http://127.0.0.1:{free_port()}/graphql",
            "KUBECONFIG": str(tmp_path / "missing"), "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
            "HOME": str(tmp_path)}


JOB_ONLY = " (the image of Prefect runs is set by `register --image`)"


@pytest.mark.parametrize("args, message", [
    (["status", RUN_ID, "-n", "lab"], "--namespace: only with --backend job"),
    (["status", RUN_ID, "--backend", "prefect", "--release", "lab-a"],
     "--release: only with --backend job"),
    (["logs", RUN_ID, "--context", "kind", "--namespace", "lab", "-f"],
     "--namespace, --context: only with --backend job"),
    (["submit", "smoke", "--namespace", "x"], f"--namespace: only with --backend job{JOB_ONLY}"),
    (["submit", "smoke", "--dry-run", "--image", "simmate-k8s:0.1.0", "--release", "lab-a"],
     f"--release, --image, --dry-run: only with --backend job{JOB_ONLY}"),
    (["submit", "smoke", "--backend", "job", "--label", "gpu", "--idempotency-key", "k",
      "--project", "p"], "--label, --project, --idempotency-key: only with --backend prefect"),
    # given explicitly, even with its default value
    (["submit", "smoke", "--backend", "job", "--concurrency", "8"],
     "--concurrency: only with --backend prefect"),
])
def test_the_other_backend_s_options_are_refused_in_one_line(nowhere, args, message):
    result = CliRunner().invoke(cli, args, env=nowhere)
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stdout == ""
    assert result.stderr == f"Error: {message}\n"
