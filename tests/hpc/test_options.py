"""Options and job scripts of every queue system (no queue system needed: --dry-run and the
functions behind it)."""

from __future__ import annotations

import os
import stat

import pytest

from simmate_k8s import hpc
from simmate_k8s.hpc import HpcError, HpcOptions
from tests.conftest import run_cli

PASSWORD = "pw-Secret-4711"
URL = f"postgresql://simmate:{PASSWORD}@db.example.org:5432/results"


@pytest.mark.parametrize(("text", "seconds"), [
    ("01:00:00", 3600), ("1-00:00:00", 86400), ("2-03:04:05", 183845), ("1-12", 129600),
    ("90", 5400), ("90s", 90), ("45m", 2700), ("2h", 7200), ("1d", 86400), ("100:00:00", 360000),
])
def test_durations(text, seconds):
    assert hpc.parse_duration(text, "--walltime") == seconds


@pytest.mark.parametrize("text", ["10:00", "1h30", "abc", "", "00:00:00", "01:61:00", "-1",
                                  "1-25:00:00", "1.5h"])
def test_bad_durations(text):
    with pytest.raises(HpcError, match="--walltime"):
        hpc.parse_duration(text, "--walltime")


@pytest.mark.parametrize("walltime", [60, 600, 3600, 4 * 3600, 48 * 3600])
def test_lifetime_ends_before_the_walltime(walltime):
    lifetime, stagger = hpc.worker_lifetime(walltime)
    assert 0 < stagger < lifetime
    # latest retirement + a minute-ish of start-up and hand-over still fits
    assert lifetime + stagger <= walltime - min(0.1 * walltime, 600) * 0.99
    assert lifetime + stagger >= 0.7 * walltime  # not wastefully early


def test_one_hour_jobs():
    assert hpc.worker_lifetime(3600) == (3060, 180)


@pytest.mark.parametrize(("options", "message"), [
    (HpcOptions(jobs=0), "--jobs 0"),
    (HpcOptions(adapt=(3, 1)), "--adapt 3:1"),
    (HpcOptions(adapt=(0, 0)), "--adapt 0:0"),
    (HpcOptions(jobs=2, adapt=(0, 2)), "choose one"),
    (HpcOptions(memory="4"), "--memory '4'"),
    (HpcOptions(memory="many"), "--memory"),
    (HpcOptions(job_mem="1GB", memory="2GB"), "--job-mem 1GB is less"),
    (HpcOptions(cores=2, job_cpu=1), "--job-cpu 1 is less"),
    (HpcOptions(cores=3, processes=2), "--processes 2"),
    (HpcOptions(walltime="10:00"), "--walltime"),
    (HpcOptions(walltime="00:10:00", lifetime="15m"), "outlive"),
    (HpcOptions(lifetime="1m", lifetime_stagger="2m"), "--lifetime-stagger"),
    (HpcOptions(queue="a b"), "--queue"),
    (HpcOptions(modules=("gcc; rm -rf ~",)), "--module"),
    (HpcOptions(job_options=("--x\n--y",)), "--job-option"),
    (HpcOptions(scheduler="localhost:8786"), "--scheduler"),
    (HpcOptions(scheduler="tls://h:8786"), "tls://"),
    (HpcOptions(tls_ca_file="/nonexistent"), "go together"),
])
def test_bad_options(options, message):
    with pytest.raises(HpcError, match=message.replace("(", r"\(")):
        hpc.validate("slurm", options)


def test_system_specific_refusals():
    with pytest.raises(HpcError, match="HTCondor has no queues"):
        hpc.validate("htcondor", HpcOptions(queue="short"))
    with pytest.raises(HpcError, match="SGE"):
        hpc.validate("sge", HpcOptions(job_cpu=4))
    with pytest.raises(HpcError, match="command = value"):
        hpc.validate("htcondor", HpcOptions(job_options=("getenv true",)))
    with pytest.raises(HpcError, match="for SLURM"):
        hpc.options_from_click({"sbatch_options": ("--exclusive",)}, "pbs")


def test_derived_plan():
    plan = hpc.validate("slurm", HpcOptions(jobs=3, cores=4, processes=2, memory="8GiB",
                                            job_cpu=8, walltime="2h"))
    assert (plan.minimum_jobs, plan.maximum_jobs, plan.job_cpu) == (3, 3, 8)
    assert plan.job_mem_bytes == plan.memory_bytes == 8 * 2**30
    assert plan.lifetime_seconds + plan.stagger_seconds < 7200
    assert "3 SLURM jobs" in plan.summary() and "2 workers x 2 threads" in plan.summary()


def _script(system, env, **options):
    return hpc.job_script(system, HpcOptions(**options), env=env)


@pytest.fixture
def url_env(tmp_path):
    return {"SIMMATE_DATABASE_URL": URL, "XDG_DATA_HOME": str(tmp_path / "data"),
            "PATH": os.environ["PATH"], "SIMMATE_DB_CONNECT_TIMEOUT": "45"}


COMMON = dict(jobs=2, queue="short", cores=2, processes=2, memory="4GB", job_cpu=4,
              job_mem="8GB", walltime="02:00:00", modules=("python/3.11", "gcc/12"),
              prologue=("source ~/venv/bin/activate",), account="matsci")


@pytest.mark.parametrize(("system", "directives"), [
    ("slurm", ["#SBATCH -p short", "#SBATCH -A matsci", "#SBATCH --cpus-per-task=4",
               "#SBATCH --mem=7630M", "#SBATCH -t 02:00:00", "#SBATCH --exclusive"]),
    ("pbs", ["#PBS -q short", "#PBS -A matsci", "#PBS -l select=1:ncpus=4:mem=7630mb",
             "#PBS -l walltime=02:00:00", "#PBS --exclusive"]),
    ("sge", ["#$ -q short", "#$ -P matsci", "#$ -l h_rt=02:00:00", "#$ --exclusive"]),
    ("lsf", ["#BSUB -q short", '#BSUB -P "matsci"', "#BSUB -n 4", "#BSUB -W 02:00",
             "#BSUB --exclusive"]),
])
def test_job_scripts(system, directives, url_env):
    options = dict(COMMON, job_options=("--exclusive",))
    if system == "sge":
        options.pop("job_cpu"), options.pop("job_mem")
    script = _script(system, url_env, **options)
    for line in directives:
        assert line in script.splitlines(), (line, script)
    _check_worker_command(script)


def test_htcondor_submit_file(url_env):
    options = dict(COMMON, job_options=('requirements = (OpSys == "LINUX")',), disk="2GB")
    options.pop("queue")
    script = _script("htcondor", url_env, **options)
    lines = script.splitlines()
    for line in ("RequestCpus = 4", "RequestMemory = 7630", "accounting_group = matsci",
                 'requirements = (OpSys == "LINUX")', "MY.DaskWorkerDisk = 2000000000"):
        assert line in lines, (line, script)
    _check_worker_command(script)


def _check_worker_command(script: str):
    assert PASSWORD not in script and "postgresql://" not in script
    assert "module load python/3.11" in script and "module load gcc/12" in script
    assert "source ~/venv/bin/activate" in script
    assert "unset SIMMATE_DATABASE_URL" in script
    assert "export SIMMATE_DATABASE_URL_FILE=" in script
    assert "export SIMMATE_DB_CONNECT_TIMEOUT=45" in script
    assert "--preload simmate_k8s.preload" in script
    assert "--nthreads 1" in script and "--nworkers 2" in script  # 2 processes x 1 thread
    assert "--lifetime 6300s --lifetime-stagger 300s" in script  # 2 h: 1 h 45 min +/- 5 min
    assert hpc.DRY_RUN_SCHEDULER in script


def test_default_is_one_process_one_thread(url_env):
    script = _script("slurm", url_env)
    assert "#SBATCH --cpus-per-task=1" in script
    assert "--nthreads 1" in script and "--nworkers" not in script
    assert "#SBATCH -t 01:00:00" in script and "--lifetime 3060s" in script


def test_user_url_file_must_be_private(tmp_path):
    url_file = tmp_path / "db-url"
    url_file.write_text(URL + "\n")
    env = {"SIMMATE_DATABASE_URL_FILE": str(url_file), "XDG_DATA_HOME": str(tmp_path)}
    url_file.chmod(0o644)
    with pytest.raises(HpcError, match="chmod 600"):
        _script("slurm", env)
    url_file.chmod(0o600)
    script = _script("slurm", env)
    assert f"export SIMMATE_DATABASE_URL_FILE={url_file}" in script
    assert PASSWORD not in script


def test_written_url_file_is_private(tmp_path):
    handoff = hpc.database_handoff({"SIMMATE_DATABASE_URL": URL, "OTHER": "1"}, tmp_path / "w")
    assert stat.S_IMODE(handoff.url_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "w").stat().st_mode) == 0o700
    assert handoff.url_file.read_text().strip() == URL
    assert "SIMMATE_DATABASE_URL" not in handoff.submit_env
    assert handoff.submit_env["SIMMATE_DATABASE_URL_FILE"] == str(handoff.url_file)
    assert PASSWORD not in handoff.note
    handoff.cleanup()
    assert not handoff.url_file.exists()


def test_dry_run_command(cli_env):
    """The CLI prints the script, submits nothing (no sbatch is even needed)."""
    env = dict(cli_env, SIMMATE_DATABASE_URL=URL, PATH="/usr/bin:/bin")
    result = run_cli("workers", "slurm", "--jobs", "2", "--module", "python/3.11",
                     "--sbatch-option=--constraint=intel", "--dry-run", env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("#!/usr/bin/env bash")
    assert "#SBATCH --constraint=intel" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    assert not (cli_env_path := os.path.join(cli_env["XDG_DATA_HOME"], "simmate-k8s")) or \
        not os.path.exists(cli_env_path)  # nothing written


def test_help_documents_every_option(cli_env):
    result = run_cli("workers", "slurm", "--help", env=cli_env, timeout=60)
    assert result.returncode == 0
    for option in ("--jobs", "--adapt", "--queue", "--cores", "--processes", "--memory",
                   "--job-cpu", "--job-mem", "--walltime", "--lifetime", "--lifetime-stagger",
                   "--module", "--prologue", "--job-option", "--sbatch-option", "--scheduler",
                   "--interface", "--python", "--name", "--log-directory", "--dry-run",
                   "--tls-ca-file", "--tls-cert", "--tls-key", "--account", "--disk"):
        assert option in result.stdout, option
    pbs = run_cli("workers", "pbs", "--help", env=cli_env, timeout=60)
    assert "--job-option" in pbs.stdout and "--sbatch-option" not in pbs.stdout
