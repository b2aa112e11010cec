"""`simmate-k8s run … --cluster slurm`: the scheduler lives in the command, the workers are real
SLURM jobs with the preload; same results, progress and exit codes as a local run."""

import json

from tests.conftest import EXAMPLES, result_rows, run_cli


def test_a_batch_on_slurm_jobs_started_by_run(slurm, slurm_env, pg_url):
    env = dict(slurm_env, SIMMATE_DATABASE_URL=pg_url)
    result = run_cli("run", "relaxation_emt", EXAMPLES, "--cluster", "slurm", "--jobs", "2",
                     "--interface", "lo", "--walltime", "00:30:00", "--json", env=env,
                     timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    [batch] = json.loads(result.stdout)
    assert batch["summary"]["completed"] == 4
    rows = result_rows(pg_url)
    assert len(rows) == 4 and all(row["status"] == "completed" for row in rows)
    assert not slurm.job_ids(), "run left SLURM jobs behind"
    assert pg_url.split("@")[0].split(":")[-1] not in result.stderr  # the password


def test_bad_cluster_options_submit_nothing(slurm, slurm_env):
    result = run_cli("run", "smoke", "--cluster", "slurm", "--walltime", "soon", env=slurm_env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not slurm.job_ids()
