"""``simmate-k8s workers slurm|pbs|sge|lsf|htcondor``: Dask workers as HPC batch jobs.

Only click (and the option decorator of :mod:`simmate_k8s.hpc`, which imports nothing heavier)
is imported at module level; dask-jobqueue and distributed are imported when a command runs.
"""

from __future__ import annotations

import sys
import time

import click

from simmate_k8s.errors import SimmateError, UserError
from simmate_k8s.hpc import SYSTEMS, hpc_options


class _OneLineErrors(click.Command):
    """Bad options print one ``Error: ...`` line (exit 2), not click's usage block."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as error:
            raise UserError(error.format_message()) from None


@click.group()
def workers():
    """Add compute: Dask workers as batch jobs on an HPC cluster.

    \b
    Each job runs a Dask worker with the results-database preload
    (--preload simmate_k8s.preload) that joins a scheduler: one started in
    this process (its address is printed; point `simmate-k8s run ...
    --address` at it) or an existing one (--scheduler, e.g. the chart's).
    Workers retire before their walltime and new jobs replace them; every
    job is cancelled when the command ends (Ctrl-C, SIGTERM, SIGHUP).

    \b
    The results-database URL never goes into a job script or the job's
    stored environment: set SIMMATE_DATABASE_URL_FILE to a file only you
    can read (chmod 600) holding the URL, or set SIMMATE_DATABASE_URL and a
    0600 copy is written for the jobs (removed when the command ends).
    """


EXAMPLES = {
    "slurm": """
      simmate-k8s workers slurm --jobs 4 --queue short --walltime 02:00:00
      simmate-k8s workers slurm --adapt 0:20 --cores 1 --memory 4GB --job-cpu 4 \\
          --job-mem 8GB --module python/3.11 --sbatch-option=--constraint=intel
      simmate-k8s workers slurm --jobs 2 --scheduler tls://dask.example.org:8786 \\
          --tls-ca-file ca.pem --tls-cert tls.crt --tls-key tls.key
      simmate-k8s workers slurm --jobs 2 --dry-run          # print the job script""",
    "pbs": """
      simmate-k8s workers pbs --jobs 4 --queue workq --walltime 02:00:00
      simmate-k8s workers pbs --jobs 2 --job-option '-l place=scatter' --dry-run""",
    "sge": """
      simmate-k8s workers sge --jobs 4 --queue all.q --job-option '-pe smp 4'
      simmate-k8s workers sge --jobs 2 --dry-run""",
    "lsf": """
      simmate-k8s workers lsf --jobs 4 --queue normal --walltime 02:00:00
      simmate-k8s workers lsf --jobs 2 --dry-run""",
    "htcondor": """
      simmate-k8s workers htcondor --jobs 4 --disk 2GB
      simmate-k8s workers htcondor --jobs 2 --job-option 'requirements = (OpSys == "LINUX")' \\
          --dry-run""",
}


def _make_command(system: str) -> click.Command:
    label = SYSTEMS[system][3]
    submit = SYSTEMS[system][2]
    help_text = f"""Dask workers as {label} jobs ({submit}), until Ctrl-C.

    By default one job runs one Dask worker process with --cores threads and
    a --memory limit; the job asks for --job-cpu CPUs and --job-mem memory
    (the tutorial's picture: 1 core and 1 process per worker, the job
    asking for more). Workers retire before the walltime (--lifetime,
    --lifetime-stagger) and are replaced by new jobs, so a long batch never
    loses a task to a walltime kill.

    \b
    Examples:{EXAMPLES[system]}
    """

    @click.command(name=system, cls=_OneLineErrors, help=help_text,
                   short_help=f"Dask workers as {label} jobs.")
    @hpc_options(system=system)
    def command(hpc):
        _run(system, hpc)

    return command


def _echo(message: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {message}")


def _run(system: str, options) -> None:
    from simmate_k8s import hpc

    try:
        if options.dry_run:
            click.echo(hpc.job_script(system, options), nl=False)
            return
        failure = _serve(system, options)
    except SimmateError as error:
        raise UserError(str(error)) from None
    if failure:
        click.echo(f"Error: {failure}", err=True)
        sys.exit(1)


def _serve(system: str, options) -> str | None:
    """Run the jobs until interrupted; returns a failure message, or None after Ctrl-C."""
    from simmate_k8s import hpc

    with hpc.job_session(system, options, on_event=_echo) as session:
        cluster = session.cluster
        where = "joined" if options.scheduler else "started here"
        click.echo(f"Dask scheduler: {session.scheduler_address} ({where})")
        dashboard = getattr(cluster, "dashboard_link", None) if not options.scheduler else None
        if dashboard:
            click.echo(f"Dashboard: {dashboard}")
        click.echo(f"Jobs: {session.plan.summary()}")
        click.echo(f"Job ids: {', '.join(session.job_ids) or '(adaptive: none yet)'}")
        click.echo(f"Job logs: {session.log_directory}")
        click.echo(f"Results: {session.handoff.note}")
        click.echo("Ctrl-C cancels the jobs.")
        try:
            while cluster.failure is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            _echo(f"stopping: cancelling {len(session.job_ids)} job(s)")
            failure = None
        else:
            failure = cluster.failure
            _echo(f"stopping: cancelling {len(session.job_ids)} job(s)")
    _echo("all jobs cancelled")
    return failure


for _system in SYSTEMS:
    workers.add_command(_make_command(_system))
