"""Dask workers as batch jobs on HPC queue systems, through dask-jobqueue.

One set of options (:class:`HpcOptions`, the click decorator :func:`hpc_options`) describes the
jobs for every system: SLURM, PBS, SGE, LSF and HTCondor. Each job runs ``dask worker`` with the
project's preload (``--preload simmate_k8s.preload``: one pooled connection to the results
database per worker) and joins either a scheduler that lives in this process (dask-jobqueue's
default) or an existing one (``--scheduler``, e.g. the chart's).

Walltime: every worker retires itself before its job's walltime (``--lifetime`` with a
``--lifetime-stagger``, derived from ``--walltime`` unless given), so a walltime kill never takes
a task with it: the scheduler moves the worker's results away and reschedules what it was
running, and a new job replaces the old one (:class:`_KeepJobs`). Saving is idempotent, so a
recomputed task still leaves one row.

Secrets: the results-database URL holds a password. It never goes into a job script or into the
environment the queue system stores with a job: the jobs get ``SIMMATE_DATABASE_URL_FILE``, the
path of a file only the user can read (the user's own, or one written here with mode 0600), and
the submit command runs without ``SIMMATE_DATABASE_URL`` in its environment.

Only the standard library and click are imported at module level (``simmate-k8s --help`` stays
fast); dask-jobqueue and distributed are imported when a cluster is built.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import secrets
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import click

from simmate_k8s.errors import SimmateError, install_extra

PRELOAD = "simmate_k8s.preload"
URL_ENV = "SIMMATE_DATABASE_URL"
URL_FILE_ENV = "SIMMATE_DATABASE_URL_FILE"

# system -> (dask_jobqueue module, cluster class, submit command, what people call it)
SYSTEMS = {
    "slurm": ("dask_jobqueue.slurm", "SLURMCluster", "sbatch", "SLURM"),
    "pbs": ("dask_jobqueue.pbs", "PBSCluster", "qsub", "PBS"),
    "sge": ("dask_jobqueue.sge", "SGECluster", "qsub", "SGE"),
    "lsf": ("dask_jobqueue.lsf", "LSFCluster", "bsub", "LSF"),
    "htcondor": ("dask_jobqueue.htcondor", "HTCondorCluster", "condor_submit", "HTCondor"),
}

DEATH_TIMEOUT = 60  # s a worker waits for a vanished scheduler before it exits (and its job ends)
GONE_GRACE = 2.0  # s a job's workers may be missing before the job counts as ended
DRY_RUN_SCHEDULER = "tcp://SCHEDULER-ADDRESS:PORT"


class HpcError(SimmateError):
    """Options that cannot make a job, or a queue system that refused one (one line)."""


# --- options ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HpcOptions:
    """What each job asks for and how its workers behave; the same for every queue system."""

    jobs: int | None = None  # a fixed number of jobs (default 1 unless adapt is set)
    adapt: tuple[int, int] | None = None  # (minimum, maximum) jobs, scaled with the load
    queue: str | None = None  # partition (SLURM) / queue (PBS, SGE, LSF)
    account: str | None = None
    cores: int = 1  # threads of Dask workers per job (split over `processes`)
    processes: int = 1  # Dask worker processes per job
    memory: str = "2GiB"  # Dask memory limit per job (split over `processes`)
    job_cpu: int | None = None  # CPUs the job asks for [default: cores]
    job_mem: str | None = None  # memory the job asks for [default: memory]
    walltime: str = "01:00:00"
    lifetime: str | None = None  # worker lifetime [default: derived from walltime]
    lifetime_stagger: str | None = None
    modules: tuple[str, ...] = ()  # `module load NAME` lines
    prologue: tuple[str, ...] = ()  # shell lines run before the worker starts
    job_options: tuple[str, ...] = ()  # extra directives (#SBATCH ..., #PBS ..., ...)
    scheduler: str | None = None  # join this scheduler instead of starting one here
    interface: str | None = None  # network interface for the scheduler and the workers
    python: str | None = None  # the Python on the compute nodes [default: this one]
    name: str = "simmate-worker"  # job name
    log_directory: str | None = None
    disk: str = "1GB"  # HTCondor only: disk per job
    tls_ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class JobPlan:
    """Checked options, with everything derived from them."""

    system: str
    options: HpcOptions
    walltime_seconds: int
    lifetime_seconds: int
    stagger_seconds: int
    memory_bytes: int
    job_cpu: int
    job_mem_bytes: int
    minimum_jobs: int
    maximum_jobs: int

    @property
    def label(self) -> str:
        return SYSTEMS[self.system][3]

    @property
    def submit_command(self) -> str:
        return SYSTEMS[self.system][2]

    @property
    def adaptive(self) -> bool:
        return self.options.adapt is not None

    def summary(self) -> str:
        """One line for people: the jobs and their workers."""
        o = self.options
        if self.adaptive:
            count = f"{self.minimum_jobs} to {self.maximum_jobs} {self.label} jobs (adaptive)"
        else:
            count = f"{self.maximum_jobs} {self.label} job{'s' * (self.maximum_jobs != 1)}"
        workers = (f"{o.processes} worker{'s' * (o.processes != 1)} x "
                   f"{o.cores // o.processes} thread{'s' * (o.cores // o.processes != 1)}")
        return (f"{count}, each {self.job_cpu} CPU / {_format_bytes(self.job_mem_bytes)} for "
                f"{format_duration(self.walltime_seconds)} ({workers}); workers retire after "
                f"{format_duration(self.lifetime_seconds)} +/- "
                f"{format_duration(self.stagger_seconds)} and are replaced")


def parse_duration(text: str, option: str) -> int:
    """Seconds in ``[D-]HH:MM:SS``, ``D-HH[:MM]``, ``NN`` + s/m/h/d, or plain minutes (SLURM)."""
    raw = (text or "").strip()
    example = f"{option} {text!r}: expected HH:MM:SS, D-HH:MM:SS, minutes, or e.g. 90s, 45m, 2h"
    match = re.fullmatch(r"(\d+)\s*([smhd])", raw, re.IGNORECASE)
    if match:
        value = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[
            match.group(2).lower()]
    elif re.fullmatch(r"\d+", raw):
        value = int(raw) * 60
    else:
        match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", raw)
        if not match:
            raise HpcError(example)
        days, hours, minutes, seconds = match.groups()
        if days is None and (minutes is None or seconds is None):
            # "MM:SS" in SLURM, "HH:MM" elsewhere: too easy to get wrong
            raise HpcError(example)
        if any(part is not None and int(part) >= 60 for part in (minutes, seconds)) or (
                days is not None and int(hours) >= 24):
            raise HpcError(f"{option} {text!r}: minutes and seconds go up to 59, hours after "
                           "a day up to 23")
        value = (int(days or 0) * 86400 + int(hours) * 3600 + int(minutes or 0) * 60
                 + int(seconds or 0))
    if value <= 0:
        raise HpcError(f"{option} {text!r}: must be more than 0")
    return value


def format_duration(seconds: int) -> str:
    """``HH:MM:SS`` (``D-HH:MM:SS`` from a day on): what SLURM, PBS and SGE all read."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


_SIZE = re.compile(r"\d+(\.\d+)?\s*([kmgtp]i?b?|b)", re.IGNORECASE)


def parse_memory(text: str, option: str) -> int:
    """Bytes in a size with a unit: 4GB, 4 GiB, 4G, 500MB, 1.5GB (4 alone is refused)."""
    raw = (text or "").strip()
    if not _SIZE.fullmatch(raw):
        raise HpcError(f"{option} {text!r}: expected a size with a unit, e.g. 4GB, 4GiB or 500MB")
    from dask.utils import parse_bytes

    value = parse_bytes(raw)
    if value < 64 * 2**20:
        raise HpcError(f"{option} {text!r}: at least 64MiB")
    return value


def _format_bytes(n: int) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            value = n / size
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{n}B"


def worker_lifetime(walltime: int) -> tuple[int, int]:
    """(lifetime, stagger) in seconds for jobs of ``walltime`` seconds.

    Each worker retires at lifetime +/- stagger (uniform), so the workers of jobs started
    together do not all leave at once; the margin left before the walltime covers the worker's
    start-up (imports, the database connection) and the graceful hand-over: 10 % of the
    walltime, at least 25 % of it up to a minute, at most 10 minutes. The stagger is 5 % of the
    walltime, at most 5 minutes. One hour: 51 min +/- 3 min.
    """
    margin = min(max(0.10 * walltime, min(60.0, 0.25 * walltime)), 600.0)
    stagger = min(0.05 * walltime, 300.0)
    lifetime = walltime - margin - stagger
    return max(1, int(lifetime)), int(stagger)


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
_WORD = re.compile(r"[^\s'\"`$;&|<>\\]+")


def _one_line(values, option: str) -> None:
    for value in values:
        if "\n" in value or "\r" in value or not value.strip():
            raise HpcError(f"{option} {value!r}: must be one non-empty line")


def validate(system: str, options: HpcOptions) -> JobPlan:
    """Check every option (HpcError, one line) and derive the plan; nothing is submitted."""
    if system not in SYSTEMS:
        raise HpcError(f"unknown queue system {system!r}; choose one of: {', '.join(SYSTEMS)}")
    o = options
    if o.jobs is not None and o.adapt is not None:
        raise HpcError("--jobs and --adapt: choose one (a fixed number of jobs, or MIN:MAX)")
    if o.adapt is not None:
        low, high = o.adapt
        if low < 0 or high < 1 or low > high:
            raise HpcError(f"--adapt {low}:{high}: expected MIN:MAX with 0 <= MIN <= MAX and "
                           "MAX >= 1, e.g. 0:10")
        minimum, maximum = low, high
    else:
        jobs = 1 if o.jobs is None else o.jobs
        if jobs < 1:
            raise HpcError(f"--jobs {jobs}: at least 1 (stop the command to cancel the jobs)")
        minimum = maximum = jobs
    if o.cores < 1:
        raise HpcError(f"--cores {o.cores}: at least 1")
    if o.processes < 1 or o.processes > o.cores or o.cores % o.processes:
        raise HpcError(f"--processes {o.processes}: must divide --cores {o.cores} "
                       "(each worker process gets cores/processes threads)")
    memory = parse_memory(o.memory, "--memory")
    job_cpu = o.cores if o.job_cpu is None else o.job_cpu
    if job_cpu < o.cores:
        raise HpcError(f"--job-cpu {job_cpu} is less than --cores {o.cores}: the workers "
                       "would use more CPUs than the job has")
    job_mem = memory if o.job_mem is None else parse_memory(o.job_mem, "--job-mem")
    if job_mem < memory:
        raise HpcError(f"--job-mem {o.job_mem} is less than --memory {o.memory}: the queue "
                       "system would kill the job before Dask manages its memory")
    walltime = parse_duration(o.walltime, "--walltime")
    lifetime, stagger = worker_lifetime(walltime)
    if o.lifetime is not None:
        lifetime = parse_duration(o.lifetime, "--lifetime")
        if o.lifetime_stagger is None:
            stagger = min(stagger, lifetime // 10)
    if o.lifetime_stagger is not None:
        stagger = 0 if o.lifetime_stagger.strip() in ("0", "0s") else parse_duration(
            o.lifetime_stagger, "--lifetime-stagger")
    if stagger >= lifetime:
        raise HpcError(f"--lifetime-stagger {format_duration(stagger)} must be less than "
                       f"the lifetime {format_duration(lifetime)}")
    if lifetime + stagger >= walltime:
        raise HpcError(f"workers would outlive their jobs: lifetime {format_duration(lifetime)}"
                       f" + stagger {format_duration(stagger)} >= --walltime "
                       f"{format_duration(walltime)}")
    for option, value in (("--queue", o.queue), ("--account", o.account)):
        if value is not None and not _NAME.fullmatch(value):
            raise HpcError(f"{option} {value!r}: expected a name (letters, digits, _ . + -)")
    if not _NAME.fullmatch(o.name):
        raise HpcError(f"--name {o.name!r}: expected letters, digits, _ . + -")
    for module in o.modules:
        if not _WORD.fullmatch(module):
            raise HpcError(f"--module {module!r}: expected one module name, e.g. python/3.11")
    _one_line(o.job_options, "--job-option")
    _one_line(o.prologue, "--prologue")
    if system == "htcondor":
        if o.queue is not None:
            raise HpcError("--queue: HTCondor has no queues; use --job-option "
                           "'requirements = ...' to choose machines")
        for option in o.job_options:
            if "=" not in option:
                raise HpcError(f"--job-option {option!r}: HTCondor options are 'command = "
                               "value' lines, e.g. 'requirements = (OpSys == \"LINUX\")'")
        parse_memory(o.disk, "--disk")
    if system == "sge" and (o.job_cpu is not None or o.job_mem is not None):
        raise HpcError("--job-cpu/--job-mem: SGE sites name these resources differently; use "
                       "--job-option, e.g. --job-option '-pe smp 4' --job-option '-l h_vmem=4G'")
    _check_scheduler_options(o)
    return JobPlan(system, o, walltime, lifetime, stagger, memory, job_cpu, job_mem,
                   minimum, maximum)


def _check_scheduler_options(o: HpcOptions) -> None:
    tls = [o.tls_ca_file, o.tls_cert, o.tls_key]
    if any(tls) and not all(tls):
        raise HpcError("--tls-ca-file, --tls-cert and --tls-key go together")
    for option, path in (("--tls-ca-file", o.tls_ca_file), ("--tls-cert", o.tls_cert),
                         ("--tls-key", o.tls_key)):
        if path and not Path(path).is_file():
            raise HpcError(f"{option} {path}: no such file")
    if o.scheduler is not None:
        match = re.fullmatch(r"(tcp|tls)://(\[[0-9a-fA-F:]+\]|[^:/\s]+):(\d+)", o.scheduler)
        if not match or not 0 < int(match.group(3)) < 65536:
            raise HpcError(f"--scheduler {o.scheduler!r}: expected tcp://HOST:PORT or "
                           "tls://HOST:PORT")
        if match.group(1) == "tls" and not all(tls):
            raise HpcError(f"--scheduler {o.scheduler}: tls:// needs --tls-ca-file, --tls-cert "
                           "and --tls-key (the certificates the scheduler trusts)")
        if match.group(1) == "tcp" and all(tls):
            raise HpcError(f"--scheduler {o.scheduler}: the --tls-* files need a tls:// address")


# --- checks against this machine (not for --dry-run) -----------------------------------------


def check_submit_host(plan: JobPlan, env: dict[str, str] | None = None) -> None:
    """The queue system's commands are here, the queue exists (SLURM: ``sinfo``), the network
    interface exists (for a scheduler started here)."""
    env = dict(os.environ if env is None else env)
    command = plan.submit_command
    if shutil.which(command, path=env.get("PATH")) is None:
        raise HpcError(f"{command} not found on PATH: run this on a {plan.label} login node "
                       "(or use --dry-run to see the job script)")
    queue = plan.options.queue
    if plan.system == "slurm" and queue and shutil.which("sinfo", path=env.get("PATH")):
        partitions = slurm_partitions(env)
        if queue not in partitions:
            raise HpcError(f"--queue {queue}: no such SLURM partition (have: "
                           f"{', '.join(sorted(partitions)) or 'none'})")
    interface = plan.options.interface
    if interface and plan.options.scheduler is None:
        import psutil

        names = sorted(psutil.net_if_addrs())
        if interface not in names:
            raise HpcError(f"--interface {interface}: no such network interface here "
                           f"(have: {', '.join(names)})")


def slurm_partitions(env: dict[str, str] | None = None) -> set[str]:
    result = subprocess.run(["sinfo", "--noheader", "--format=%R"], capture_output=True,
                            text=True, env=env, timeout=30)
    if result.returncode != 0:
        raise HpcError(f"sinfo failed: {_first_line(result.stderr) or result.returncode}")
    return {line.strip() for line in result.stdout.splitlines() if line.strip()}


# --- the database URL: a file, never the script or the stored environment ---------------------


@dataclass
class DatabaseHandoff:
    """How the jobs learn the results database without the password leaving this user."""

    url_file: Path | None  # what SIMMATE_DATABASE_URL_FILE says in the jobs
    written: bool  # we wrote url_file (and remove it at the end)
    submit_env: dict[str, str]  # the environment of sbatch/qsub/...: no SIMMATE_DATABASE_URL
    note: str  # one line for people

    def prologue(self) -> list[str]:
        lines = [f"unset {URL_ENV}"]
        if self.url_file is not None:
            lines.append(f"export {URL_FILE_ENV}={shlex.quote(str(self.url_file))}")
        return lines

    def cleanup(self) -> None:
        if self.written and self.url_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self.url_file.unlink()


def database_handoff(env: dict[str, str], work_dir: Path, write: bool = True) -> DatabaseHandoff:
    """Jobs get ``SIMMATE_DATABASE_URL_FILE``: the user's file (checked: mode 0600 or
    stricter), or ``work_dir/database-url`` written here (0600) from ``SIMMATE_DATABASE_URL``."""
    from simmate_k8s import database

    submit_env = {k: v for k, v in env.items() if k != URL_ENV}
    url = env.get(URL_ENV)
    if url:
        target = work_dir / "database-url"
        if write:
            work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(url + "\n")
        submit_env[URL_FILE_ENV] = str(target)
        return DatabaseHandoff(target, True, submit_env,
                               f"results database {database.redact(url)} (URL passed to the "
                               f"jobs in {target}, mode 0600)")
    path = env.get(URL_FILE_ENV)
    if path:
        target = Path(path).expanduser().resolve()
        try:
            mode = target.stat().st_mode
            url = target.read_text().strip()
        except OSError as error:
            raise HpcError(f"{URL_FILE_ENV}={path}: cannot read it "
                           f"({error.__class__.__name__})") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise HpcError(f"{URL_FILE_ENV}={path} can be read by others (mode "
                           f"{stat.S_IMODE(mode):04o}): chmod 600 {shlex.quote(str(target))}")
        if not url:
            raise HpcError(f"{URL_FILE_ENV}={path} is empty; write the database URL in it")
        submit_env[URL_FILE_ENV] = str(target)
        return DatabaseHandoff(target, False, submit_env,
                               f"results database {database.redact(url)} (from {target})")
    from simmate_k8s.settings import default_database_url

    return DatabaseHandoff(None, False, submit_env,
                           f"results database {default_database_url(env)} (the default SQLite "
                           f"file; on a multi-node cluster set {URL_FILE_ENV} to a PostgreSQL "
                           "URL file)")


# --- dask-jobqueue arguments ------------------------------------------------------------------


def _settings_prologue(env: dict[str, str]) -> list[str]:
    """Non-secret SIMMATE_* settings, for systems that do not pass the environment along."""
    return [f"export {name}={shlex.quote(value)}" for name, value in sorted(env.items())
            if name.startswith("SIMMATE_") and name not in (URL_ENV, URL_FILE_ENV)
            and re.fullmatch(r"[A-Z0-9_]+", name)]


def job_kwargs(plan: JobPlan, handoff: DatabaseHandoff, log_directory: str | None,
               env: dict[str, str]) -> dict:
    """Keyword arguments of the dask-jobqueue Job/Cluster class for ``plan.system``."""
    o = plan.options
    worker_args = [
        "--preload", PRELOAD,
        "--lifetime", f"{plan.lifetime_seconds}s",
        "--lifetime-stagger", f"{plan.stagger_seconds}s",
    ]
    prologue = [f"module load {shlex.quote(m)}" for m in o.modules]
    prologue += [*_settings_prologue(env), *handoff.prologue(), *o.prologue]
    kwargs = dict(
        cores=o.cores,
        processes=o.processes,
        memory=str(plan.memory_bytes),
        python=o.python or sys.executable,
        job_name=o.name,
        death_timeout=DEATH_TIMEOUT,
        worker_extra_args=worker_args,
        job_script_prologue=prologue,
        log_directory=log_directory,
        interface=o.interface,
    )
    directives = list(o.job_options)
    mem_mib = math.ceil(plan.job_mem_bytes / 2**20)
    if plan.system == "slurm":
        kwargs.update(queue=o.queue, account=o.account, walltime=format_duration(
            plan.walltime_seconds), job_cpu=plan.job_cpu, job_mem=f"{mem_mib}M")
    elif plan.system == "pbs":
        kwargs.update(queue=o.queue, account=o.account,
                      walltime=_hours_clock(plan.walltime_seconds),
                      resource_spec=f"select=1:ncpus={plan.job_cpu}:mem={mem_mib}mb")
    elif plan.system == "sge":
        kwargs.update(queue=o.queue, project=o.account,
                      walltime=_hours_clock(plan.walltime_seconds))
    elif plan.system == "lsf":
        minutes = math.ceil(plan.walltime_seconds / 60)
        kwargs.update(queue=o.queue, project=o.account, ncpus=plan.job_cpu,
                      mem=plan.job_mem_bytes, walltime=f"{minutes // 60:02d}:{minutes % 60:02d}")
    elif plan.system == "htcondor":
        extra = {"RequestCpus": str(plan.job_cpu), "RequestMemory": str(mem_mib)}
        if o.account:
            extra["accounting_group"] = o.account
        for option in directives:
            key, _, value = option.partition("=")
            extra[key.strip()] = value.strip()
        kwargs.update(disk=o.disk, job_extra_directives=extra)
        return kwargs
    kwargs["job_extra_directives"] = directives
    return kwargs


def _hours_clock(seconds: int) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def _security(o: HpcOptions):
    if not o.tls_ca_file:
        return None
    from distributed.security import Security

    paths = {k: str(Path(v).resolve()) for k, v in
             (("ca", o.tls_ca_file), ("cert", o.tls_cert), ("key", o.tls_key))}
    return Security(
        tls_ca_file=paths["ca"], require_encryption=True,
        tls_client_cert=paths["cert"], tls_client_key=paths["key"],
        tls_scheduler_cert=paths["cert"], tls_scheduler_key=paths["key"],
        tls_worker_cert=paths["cert"], tls_worker_key=paths["key"],
    )


def job_script(system: str, options: HpcOptions, env: dict[str, str] | None = None) -> str:
    """The job script ``system`` would get for these options (``--dry-run``): nothing written,
    nothing submitted, no scheduler started."""
    env = dict(os.environ if env is None else env)
    plan = validate(system, options)
    work_dir = jobs_directory(env, options.name, create=False)
    handoff = database_handoff(env, work_dir, write=False)
    log_directory = options.log_directory or str(work_dir / "logs")
    kwargs = job_kwargs(plan, handoff, log_directory, env)
    security = _security(options)
    if security is not None:
        kwargs.update(security=security, protocol="tls://")
    job_cls = _classes(system, handoff.submit_env)[1]
    with _no_mkdir():
        job = job_cls(scheduler=options.scheduler or DRY_RUN_SCHEDULER,
                      name=f"{options.name}-0", **kwargs)
    return job.job_script()


@contextlib.contextmanager
def _no_mkdir():
    """dask-jobqueue creates the log directory when it builds a Job; a dry run must not."""
    real = os.makedirs
    os.makedirs = lambda *args, **kwargs: None
    try:
        yield
    finally:
        os.makedirs = real


def jobs_directory(env: dict[str, str], name: str, create: bool = True) -> Path:
    """A fresh folder for this session's job logs (and the URL file, when written): under the
    user's data directory, which compute nodes see on most clusters (the home directory)."""
    data_home = Path(env.get("XDG_DATA_HOME") or Path(env.get("HOME") or Path.home())
                     / ".local" / "share")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = data_home / "simmate-k8s" / "jobs" / f"{name}-{stamp}-{os.getpid()}"
    if create:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


# --- clusters --------------------------------------------------------------------------------


@functools.cache
def _base_classes(system: str):
    import importlib
    import importlib.util

    module_name, class_name = SYSTEMS[system][:2]
    if importlib.util.find_spec("dask_jobqueue") is None:  # an extra; the image has none
        raise HpcError(f"{SYSTEMS[system][3]} workers need dask-jobqueue, which is not "
                       f"installed: {install_extra('hpc')}")
    cluster_cls = getattr(importlib.import_module(module_name), class_name)
    return cluster_cls, cluster_cls.job_cls


def _classes(system: str, submit_env: dict[str, str]):
    """(cluster class, job class) for ``system`` whose queue commands run in ``submit_env``."""
    cluster_base, job_base = _base_classes(system)
    job_cls = type(f"Simmate{job_base.__name__}", (_JobMixin, job_base),
                   {"submit_env": dict(submit_env)})
    cluster_cls = type(f"Simmate{cluster_base.__name__}", (_KeepJobs, cluster_base),
                       {"job_cls": job_cls})
    return cluster_cls, job_cls


class _JobMixin:
    """Queue commands (submit and cancel) run in ``submit_env``, never the caller's own."""

    submit_env: dict[str, str] | None = None

    @classmethod
    async def _call(cls, cmd, *, shell=False, **kwargs):
        if cls.submit_env is not None:
            kwargs.setdefault("env", cls.submit_env)
        return await super()._call(cmd, shell=shell, **kwargs)


def _external_scheduler_class():
    from distributed.deploy.spec import ProcessInterface

    class ExternalScheduler(ProcessInterface):
        """Stands for a scheduler that runs elsewhere: its address, nothing to start or stop."""

        def __init__(self, address, **_ignored):
            super().__init__()
            self.address = self.external_address = address

    return ExternalScheduler


def _joined_adaptive_class():
    from distributed.deploy.adaptive import Adaptive

    class JoinedAdaptive(Adaptive):
        """On a shared scheduler, scale down only our own workers (the most idle first)."""

        async def workers_to_close(self, target: int) -> list[str]:
            ours = self.plan
            excess = len(ours) - target
            if excess <= 0:
                return []
            ranked = await self.scheduler.workers_to_close(n=10**9, attribute="name")
            return [name for name in ranked if name in ours][:excess]

    return JoinedAdaptive


class _KeepJobs:
    """Mixed into a dask-jobqueue cluster: replace ended jobs, report what happens, and leave an
    external scheduler running when the cluster closes.

    A job has ended when all of its workers, once connected, have been gone for ``GONE_GRACE``
    seconds (lifetime reached, walltime, node failure): it is cancelled (a no-op if it is over)
    and a new job with the same worker names is submitted. dask-jobqueue itself waits for
    ``distributed.deploy.lost-worker-timeout`` and then resubmits only when a scale call comes,
    never with a fixed number of jobs, and never for jobs of several worker processes.
    """

    joined = False
    on_event: Callable[[str], None] = staticmethod(lambda message: None)

    @property
    def shutdown_scheduler(self):
        return not self.joined

    @shutdown_scheduler.setter
    def shutdown_scheduler(self, value):
        pass  # decided by `joined`

    async def _start(self):
        self._job_state = {}
        self._submitted_at = {}
        self.failure = None
        self.replaced = 0
        await super()._start()
        from tornado.ioloop import PeriodicCallback

        self._keeper = PeriodicCallback(self._keep_jobs, 500)
        self._keeper.start()

    async def _close(self):
        from distributed.core import Status

        keeper = getattr(self, "_keeper", None)
        if keeper is not None:
            keeper.stop()
        for job in list(self._created):
            if job.status == Status.created:  # its submission failed: nothing to cancel
                job.status = Status.failed  # (SpecCluster's close asserts on this)
        await super()._close()

    def _update_worker_status(self, op, msg):
        # Skip SpecCluster's lost-worker timer (it would close a replacement job that is still
        # queued under the same name); only keep scheduler_info current, tolerating workers
        # that the polling in _check_jobs already added or removed.
        workers = self.scheduler_info.setdefault("workers", {})
        if op == "add":
            workers.update(msg.pop("workers", {}))
            self.scheduler_info.update(msg)
        elif op == "remove":
            workers.pop(msg, None)

    def _members(self, name) -> set[str]:
        spec = self.worker_spec.get(name, {})
        if "group" in spec:
            return {str(name) + suffix for suffix in spec["group"]}
        return {str(name)}

    async def _keep_jobs(self):
        from distributed.core import Status

        if self.status != Status.running:
            return
        try:
            await self._check_jobs()
        except Exception as error:  # keep keeping: one failed scancel must not stop it
            self.on_event(f"could not check the jobs: {_first_line(str(error))}")

    async def _check_jobs(self):
        # Ask the scheduler, rather than trusting the worker-status stream: a scheduler keeps one
        # such stream only (distributed's "worker-status" plugin), so another cluster manager
        # joining the same scheduler silently takes it over.
        identity = await self.scheduler_comm.identity()
        self.scheduler_info["workers"] = identity.get("workers", {})
        connected = {str(info.get("name")) for info in self.scheduler_info["workers"].values()}
        now = time.monotonic()
        ended = []
        for name, job in list(self.workers.items()):
            job_id = getattr(job, "job_id", None)
            if job_id is None:
                continue
            if job_id not in self._submitted_at:
                self._submitted_at[job_id] = now
                self.on_event(f"job {job_id} submitted (worker {name})")
            state = self._job_state.setdefault(job_id, {"seen": False, "gone_since": None})
            if self._members(name) & connected:
                if not state["seen"]:
                    state["seen"] = True
                    self.on_event(f"worker {name} connected (job {job_id})")
                state["gone_since"] = None
            elif state["seen"]:
                state["gone_since"] = state["gone_since"] or now
                if now - state["gone_since"] >= GONE_GRACE and name in self.worker_spec:
                    ended.append((name, job))
        if self.system == "slurm":
            await self._check_unstarted_slurm_jobs(now)
        for name, job in ended:
            self.on_event(f"worker {name} left (job {job.job_id} ended): submitting a "
                          "replacement")
            self._job_state.pop(job.job_id, None)
            del self.workers[name]
            await job.close()
        if ended and self.failure is None:
            self.replaced += len(ended)
            try:
                await self._correct_state()
            except RuntimeError as error:
                self.failure = (f"{self.submit_command} refused a replacement job: "
                                f"{_submit_error(str(error), self.submit_command)}")
                self.on_event(self.failure)

    async def _check_unstarted_slurm_jobs(self, now: float):
        """A job that left squeue before its worker ever connected is a broken job script (a
        missing module, a wrong --python, an unreachable database): stop, do not resubmit."""
        waiting = {job.job_id: name for name, job in self.workers.items()
                   if getattr(job, "job_id", None) is not None
                   and not self._job_state.get(job.job_id, {}).get("seen")
                   and now - self._submitted_at.get(job.job_id, now) > 1}
        if not waiting or self.failure is not None:
            return
        last = getattr(self, "_last_squeue", 0.0)
        if now - last < 2:
            return
        self._last_squeue = now
        output = await self.job_cls._call(
            ["squeue", "--noheader", "--format=%i", "--jobs=" + ",".join(waiting)])
        queued = {line.strip() for line in output.splitlines() if line.strip()}
        for job_id, name in waiting.items():
            if job_id not in queued:
                log = Path(self.log_directory) / f"{self.job_name}-{job_id}.err"
                last = _last_line(log)
                said = f" (its log ends: {last})" if last else ""
                self.failure = (f"{self.label} job {job_id} (worker {name}) ended before its "
                                f"Dask worker connected{said}; see {log}")
                self.on_event(self.failure)
                return


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [line for line in lines if line]
    return lines[-1][:300] if lines else ""


def _event_logger(message: str) -> None:
    import logging

    logging.getLogger("simmate_k8s.hpc").info(message)


@dataclass
class Session:
    """What :func:`job_cluster` set up, for the command to print."""

    plan: JobPlan
    handoff: DatabaseHandoff
    work_dir: Path
    log_directory: str
    cluster: object = field(repr=False)

    @property
    def scheduler_address(self) -> str:
        return self.cluster.scheduler_address

    @property
    def job_ids(self) -> list[str]:
        return [job.job_id for job in self.cluster.workers.values()
                if getattr(job, "job_id", None)]


@contextlib.contextmanager
def job_cluster(system: str, options: HpcOptions,
                on_event: Callable[[str], None] | None = None,
                env: dict[str, str] | None = None) -> Iterator[object]:
    """A dask-jobqueue cluster of ``options`` on ``system``, closed (every job cancelled) on exit.

    The scheduler lives in this process unless ``options.scheduler`` names one to join;
    ``cluster.scheduler_address`` is what clients connect to. Raises HpcError (nothing
    submitted) for bad options or a queue system that refuses the first jobs. While it is open,
    SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread, so ending the process
    cancels the jobs too; ``cluster.simmate`` is the :class:`Session`.
    """
    with job_session(system, options, on_event=on_event, env=env) as session:
        yield session.cluster


@contextlib.contextmanager
def job_session(system: str, options: HpcOptions,
                on_event: Callable[[str], None] | None = None,
                env: dict[str, str] | None = None) -> Iterator[Session]:
    """:func:`job_cluster`, yielding the :class:`Session` (plan, handoff, logs, cluster)."""
    env = dict(os.environ if env is None else env)
    plan = validate(system, options)
    handoff = database_handoff(env, Path("/nonexistent"), write=False)  # checks before writing
    check_submit_host(plan, env)
    if options.scheduler:
        check_scheduler(options.scheduler, options)
    sigint_ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # e.g. `cmd &` in sh
    _base_classes(system)  # imports dask_jobqueue, which sets its own SIGINT handler
    work_dir = jobs_directory(env, options.name)
    handoff = database_handoff(env, work_dir)
    log_directory = options.log_directory or str(work_dir / "logs")
    with _interrupt_on_terminate(sigint=not sigint_ignored):
        cluster = None
        try:
            cluster = _start_cluster(plan, handoff, log_directory, env, on_event)
            session = Session(plan, handoff, work_dir, log_directory, cluster)
            cluster.simmate = session
            _submit_first_jobs(cluster, plan)
            yield session
        finally:
            with _signals_ignored():
                if cluster is not None:
                    _close_cluster(cluster)
                handoff.cleanup()


def _start_cluster(plan: JobPlan, handoff: DatabaseHandoff, log_directory: str,
                   env: dict[str, str], on_event):
    import warnings

    import dask

    o = plan.options
    cluster_cls, _ = _classes(plan.system, handoff.submit_env)
    cluster_cls.system = plan.system
    cluster_cls.label = plan.label
    cluster_cls.submit_command = plan.submit_command
    cluster_cls.log_directory = log_directory
    cluster_cls.on_event = staticmethod(on_event or _event_logger)
    cluster_cls.joined = o.scheduler is not None
    kwargs = job_kwargs(plan, handoff, log_directory, env)
    security = _security(o)
    name = f"{o.name}-{secrets.token_hex(2)}"  # unique worker names on a shared scheduler
    scheduler_options = {"dashboard_address": env.get("SIMMATE_DASHBOARD_ADDRESS", ":8787")}
    if o.scheduler:
        kwargs.update(scheduler_cls=_external_scheduler_class(),
                      scheduler_options={"address": o.scheduler})
    else:
        kwargs["scheduler_options"] = scheduler_options
    if security is not None:
        kwargs.update(security=security, protocol="tls://")
    with warnings.catch_warnings(), dask.config.set({"distributed.admin.tick.limit": "10s"}):
        warnings.filterwarnings("ignore", message=".*[Pp]ort.*already in use.*")
        try:
            return cluster_cls(name=name, **kwargs)
        except (RuntimeError, OSError) as error:
            what = f"join the Dask scheduler {o.scheduler}" if o.scheduler else \
                "start the Dask scheduler"
            raise HpcError(f"could not {what}: {_first_line(str(error))}") from None


def _submit_first_jobs(cluster, plan: JobPlan) -> None:
    """Submit the first (minimum) jobs and wait for the queue system's answer: a refusal is an
    HpcError here, not a log line in a background thread."""
    async def submit(jobs: int):
        while len(cluster.worker_spec) < jobs:  # what scale() does, but awaited here
            cluster.worker_spec.update(cluster.new_worker_spec())
        await cluster._correct_state()

    try:
        if plan.minimum_jobs:
            cluster.sync(submit, plan.minimum_jobs)
    except RuntimeError as error:
        raise HpcError(f"{plan.submit_command} refused the job: "
                       f"{_submit_error(str(error), plan.submit_command)}") from None
    if plan.adaptive:
        kwargs = {"minimum_jobs": plan.minimum_jobs, "maximum_jobs": plan.maximum_jobs,
                  "interval": "1s", "wait_count": 10}
        if plan.options.scheduler:
            kwargs["Adaptive"] = _joined_adaptive_class()
        cluster.adapt(**kwargs)


def _submit_error(text: str, command: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.startswith(f"{command}:") or "error" in line.lower() and "exit code" not in \
                line.lower() and not line.startswith(("Command", "stdout", "stderr")):
            return line
    return lines[0] if lines else "no message"


def _close_cluster(cluster) -> None:
    """Retire our workers from a shared scheduler (their results move to other workers), then
    cancel every job and stop the scheduler if it is ours."""
    if getattr(cluster, "joined", False):
        names = sorted(n for name in list(cluster.workers) for n in cluster._members(name))
        with contextlib.suppress(Exception):
            cluster.sync(_retire, cluster, names, callback_timeout=15)
    with contextlib.suppress(Exception):
        cluster.close(timeout=60)


async def _retire(cluster, names):
    if names:
        await cluster.scheduler_comm.retire_workers(names=names, close_workers=True,
                                                    remove=True)


def check_scheduler(address: str, options: HpcOptions, timeout: float = 10) -> None:
    """HpcError unless something accepts connections at ``address`` (a refused or unreachable
    port fails at once; distributed's own connect would retry until its timeout)."""
    import socket

    host, _, port = address.split("://", 1)[1].rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as error:
        reason = error.strerror or error.__class__.__name__
        raise HpcError(f"--scheduler {address}: no Dask scheduler answers ({reason}); check "
                       "the address and that this host may reach it") from None


@contextlib.contextmanager
def _interrupt_on_terminate(sigint: bool = True):
    """SIGINT (unless ignored), SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread,
    so `finally` cancels the jobs (dask_jobqueue's own SIGINT handler would exit instead)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, _frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if sigint else (
        signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, interrupt) for sig in signals}
    if not sigint:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def _signals_ignored():
    """While jobs are being cancelled, a second Ctrl-C must not leave some behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _first_line(text: str) -> str:
    text = (text or "").strip()
    return text.splitlines()[0].strip() if text else ""


# --- click -----------------------------------------------------------------------------------


def _parse_adapt(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", value)
    if not match:
        raise HpcError(f"--adapt {value!r}: expected MIN:MAX jobs, e.g. 0:10")
    return int(match.group(1)), int(match.group(2))


OPTION_NAMES = ("jobs", "adapt", "queue", "account", "cores", "processes", "memory", "job_cpu",
                "job_mem", "walltime", "lifetime", "lifetime_stagger", "modules", "prologue",
                "job_options", "sbatch_options", "scheduler", "interface", "python",
                "job_name", "log_directory", "disk", "tls_ca_file", "tls_cert", "tls_key",
                "dry_run")


def options_from_click(values: dict, system: str | None = None) -> HpcOptions:
    """The :class:`HpcOptions` of a command decorated with :func:`hpc_options`; the HPC keys
    are popped from ``values`` (the command's keyword arguments)."""
    got = {name: values.pop(name) for name in OPTION_NAMES if name in values}
    sbatch = tuple(got.pop("sbatch_options", ()) or ())
    if sbatch and system not in (None, "slurm"):
        raise HpcError(f"--sbatch-option is for SLURM; use --job-option with {system}")
    fields = {
        "jobs": got.get("jobs"),
        "adapt": _parse_adapt(got.get("adapt")),
        "modules": tuple(got.get("modules") or ()),
        "prologue": tuple(got.get("prologue") or ()),
        "job_options": tuple(got.get("job_options") or ()) + sbatch,
        "name": got.get("job_name") or HpcOptions.name,
        "dry_run": bool(got.get("dry_run")),
    }
    for name in ("queue", "account", "cores", "processes", "memory", "job_cpu", "job_mem",
                 "walltime", "lifetime", "lifetime_stagger", "scheduler", "interface", "python",
                 "log_directory", "disk", "tls_ca_file", "tls_cert", "tls_key"):
        if got.get(name) is not None:
            fields[name] = got[name]
    return replace(HpcOptions(), **fields)


def hpc_options(func=None, *, system: str | None = None, join: bool = True,
                dry_run: bool = True, pass_as: str | None = "hpc"):
    """Add the HPC job options to a click command.

    ``system`` adds system-specific names (``--sbatch-option`` for SLURM; with ``None`` every
    name is there and :func:`options_from_click` checks them). ``join`` adds ``--scheduler``,
    ``dry_run`` adds ``--dry-run``. With ``pass_as`` (default ``"hpc"``) the command gets one
    keyword argument of that name holding the :class:`HpcOptions` instead of the separate
    options; with ``None`` it gets them all (use :func:`options_from_click`).
    """
    if func is None:
        return functools.partial(hpc_options, system=system, join=join, dry_run=dry_run,
                                 pass_as=pass_as)
    d = HpcOptions()
    label = SYSTEMS[system][3] if system else "the queue system"
    directive = {"slurm": "#SBATCH", "pbs": "#PBS", "sge": "#$", "lsf": "#BSUB",
                 "htcondor": "submit-file"}.get(system, "#SBATCH/#PBS/...")
    decorators = [
        click.option("--jobs", "-n", type=int, default=None, metavar="N",
                     help=f"Keep N {label} jobs running [default: 1]. Jobs that end (worker "
                          "lifetime, walltime) are replaced."),
        click.option("--adapt", metavar="MIN:MAX", default=None,
                     help="Scale between MIN and MAX jobs with the scheduler's load, instead "
                          "of --jobs."),
        click.option("--queue", "-q", metavar="NAME", default=None,
                     help="Partition (SLURM) or queue (PBS, SGE, LSF) of the jobs [default: "
                          "the system's default]."),
        click.option("--account", "-A", metavar="NAME", default=None,
                     help="Account/project charged for the jobs."),
        click.option("--cores", type=int, default=d.cores, show_default=True, metavar="N",
                     help="Dask threads per job, split over --processes."),
        click.option("--processes", type=int, default=d.processes, show_default=True,
                     metavar="N",
                     help="Dask worker processes per job (each gets cores/processes threads; "
                          "set it equal to --cores for pure-Python work)."),
        click.option("--memory", default=d.memory, show_default=True, metavar="SIZE",
                     help="Dask memory limit per job (split over --processes), e.g. 4GB."),
        click.option("--job-cpu", type=int, default=None, metavar="N",
                     help="CPUs each job asks for, if more than --cores (e.g. for threaded "
                          "codes a task starts) [default: --cores]."),
        click.option("--job-mem", default=None, metavar="SIZE",
                     help="Memory each job asks for, at least --memory [default: --memory]."),
        click.option("--walltime", "-t", default=d.walltime, show_default=True,
                     metavar="HH:MM:SS",
                     help="Walltime of each job (also D-HH:MM:SS, minutes, or 90m, 2h)."),
        click.option("--lifetime", default=None, metavar="DURATION",
                     help="Workers retire after this long (then a new job replaces theirs) "
                          "[default: derived from --walltime; 1 h gives 51m]."),
        click.option("--lifetime-stagger", default=None, metavar="DURATION",
                     help="Spread of the retirement times, +/- [default: 5% of --walltime, "
                          "at most 5m]."),
        click.option("--module", "modules", multiple=True, metavar="NAME",
                     help="Add a `module load NAME` line to the job script; repeatable."),
        click.option("--prologue", multiple=True, metavar="LINE",
                     help="A shell line run before the worker starts (e.g. `source "
                          "~/venv/bin/activate`); repeatable."),
        click.option("--job-option", "job_options", multiple=True, metavar="OPTION",
                     help=f"An extra {directive} line for each job, e.g. "
                          "'--constraint=intel'; repeatable."),
    ]
    if system in (None, "slurm"):
        decorators.append(click.option(
            "--sbatch-option", "sbatch_options", multiple=True, metavar="OPTION",
            help="Same as --job-option (SLURM's name for it)."))
    if join:
        decorators.append(click.option(
            "--scheduler", metavar="tcp://HOST:PORT", default=None,
            help="Join this Dask scheduler (tcp:// or tls://, e.g. the chart's) instead of "
                 "starting one in this process."))
    decorators += [
        click.option("--interface", metavar="NAME", default=None,
                     help="Network interface of the scheduler and workers, e.g. ib0 or eth0 "
                          "[default: the host's address]."),
        click.option("--python", metavar="PATH", default=None,
                     help="Python on the compute nodes [default: this Python, "
                          f"{sys.executable}]."),
        click.option("--name", "job_name", metavar="NAME", default=d.name, show_default=True,
                     help="Job name in the queue."),
        click.option("--log-directory", metavar="DIR", default=None,
                     help="Where job output goes [default: a new folder under "
                          "~/.local/share/simmate-k8s/jobs]."),
        click.option("--disk", metavar="SIZE", default=d.disk, show_default=True,
                     help="Disk each job asks for (HTCondor only)."),
        click.option("--tls-ca-file", metavar="FILE", default=None,
                     help="CA certificate for tls:// (with --tls-cert and --tls-key; the files "
                          "must be readable on the compute nodes)."),
        click.option("--tls-cert", metavar="FILE", default=None,
                     help="Certificate of this process and the workers, for tls://."),
        click.option("--tls-key", metavar="FILE", default=None,
                     help="Private key of --tls-cert."),
    ]
    if dry_run:
        decorators.append(click.option(
            "--dry-run", is_flag=True,
            help="Print the job script and exit: nothing is submitted."))
    wrapped = func
    if pass_as:
        @functools.wraps(func)
        def wrapped(*args, **kwargs):
            try:
                kwargs[pass_as] = options_from_click(kwargs, system)
            except HpcError as error:
                raise _user_error(error) from None
            return func(*args, **kwargs)
    for decorator in reversed(decorators):
        wrapped = decorator(wrapped)
    return wrapped


def _user_error(error: Exception):
    from simmate_k8s.errors import UserError

    return UserError(str(error))
