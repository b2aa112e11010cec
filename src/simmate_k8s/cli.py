"""The ``simmate-k8s`` command line.

Commands live in small modules that import only click at the top; this group imports a command's
module only when that command is asked for, so ``simmate-k8s --help`` stays fast.
"""

import importlib

import click

# command name -> "module:attribute" of a click command
COMMANDS = {
    "run": "simmate_k8s.commands.run:run",
    "flows": "simmate_k8s.commands.flows:flows",
    "results": "simmate_k8s.commands.results:results",
    "db": "simmate_k8s.commands.db:db",
    "values": "simmate_k8s.values.command:values",
    "config": "simmate_k8s.commands.config:config",
    "register": "simmate_k8s.commands.register:register",
    "submit": "simmate_k8s.commands.submit:submit",
    "status": "simmate_k8s.commands.runs:status",
    "logs": "simmate_k8s.commands.runs:logs",
    "workers": "simmate_k8s.commands.workers:workers",
    "doctor": "simmate_k8s.commands.doctor:doctor",
}

# One-line help shown by `simmate-k8s --help` without importing any command module.
SHORT_HELP = {
    "run": "Run a batch of a workflow on a local Dask cluster (or an existing scheduler).",
    "flows": "List the workflows and their parameters.",
    "results": "Show, filter and export what is in the results database.",
    "db": "Results database commands (check, upgrade).",
    "values": "Write validated Helm values for a target (kind, minikube, gke, digitalocean).",
    "config": "Where Prefect Server lives (set / show).",
    "register": "Register every workflow with Prefect Server.",
    "submit": "Submit flow runs to Prefect Server (or as Kubernetes Jobs).",
    "status": "Show the state of flow runs (or of Jobs: --backend job).",
    "logs": "Show the logs of a flow run (or of a Job: --backend job).",
    "workers": "Dask workers as HPC batch jobs (slurm, pbs, sge, lsf, htcondor).",
    "doctor": "Check cluster, scheduler, workers, databases and Prefect; say what to fix.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if not error.name or not module_name.startswith(error.name):
                raise
            return None  # the command's module is not part of this build
        return getattr(module, attribute)

    def invoke(self, ctx):
        # Domain code raises SimmateError; here, and only here, it becomes a one-line CLI error.
        from simmate_k8s.errors import SimmateError, UserError

        try:
            return super().invoke(ctx)
        except SimmateError as error:
            raise UserError(str(error)) from None

    def format_commands(self, ctx, formatter):
        rows = [(name, SHORT_HELP[name]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="simmate-k8s")
def cli():
    """Run Simmate-style workflows with Prefect 1 and Dask: locally, or on Kubernetes."""


def main():
    cli(prog_name="simmate-k8s")
