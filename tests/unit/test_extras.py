"""The optional parts of pyproject.toml (``chart``, ``hpc``) that the image leaves out: without
them the commands that need them say which extra to install, in one line. (The container tests
run the same commands in the image, where they really are not installed.)"""

import subprocess
import sys

from simmate_k8s import doctor

# None in sys.modules makes an import fail as if the package were not installed.
WITHOUT_JOBQUEUE = """
import sys
sys.modules["dask_jobqueue"] = None
from simmate_k8s.cli import main
sys.argv = ["simmate-k8s", "workers", "slurm", "--dry-run"]
main()
"""


def test_hpc_workers_without_dask_jobqueue_name_the_hpc_extra():
    result = subprocess.run([sys.executable, "-c", WITHOUT_JOBQUEUE], capture_output=True,
                            text=True, timeout=120)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == ("Error: SLURM workers need dask-jobqueue, which is not installed: "
                             "pip install 'simmate-k8s[hpc]'\n")


def test_doctor_without_dask_kubernetes_skips_the_crd_row_naming_the_chart_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_kubernetes", None)
    row = doctor.crd_row(api=None)  # decided before any API call
    assert (row.check, row.status) == ("Dask CRDs", doctor.SKIPPED)
    assert row.detail.startswith("dask-kubernetes is not installed")
    assert row.fix == "pip install 'simmate-k8s[chart]'"


def test_a_checkout_has_the_extras_the_image_leaves_out():
    version, crds = doctor.wheel_crds()
    assert version and len(crds) == 4
    import dask_jobqueue  # noqa: F401
