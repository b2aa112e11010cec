"""What both flow-run paths of the cluster tier use: the CLI, ASE reference energies, results."""

import json
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "simmate_k8s" / "flows" / "examples"
CLI = str(Path(sys.executable).with_name("simmate-k8s"))


def cli(*args, env, timeout=1200):
    return subprocess.run([CLI, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def ase_energy(path, relax=True):
    from ase.calculators.emt import EMT
    from ase.io import read
    from ase.optimize import BFGS

    atoms = read(path, format="vasp")
    atoms.calc = EMT()
    if relax:
        BFGS(atoms, logfile=None).run(fmax=0.05, steps=500)
    return atoms.get_potential_energy()


def results_json(env, *args):
    listed = cli("results", "--json", *args, env=env)
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def assert_relaxed_row(rows, name):
    """The completed relaxation of this example is a row whose energy equals ASE's."""
    import pytest

    by_name = {Path(row["input_name"]).name: row for row in rows
               if row["parameters"] == {"fmax": 0.05, "max_steps": 500}}
    assert name in by_name, sorted(by_name)
    row = by_name[name]
    assert (row["workflow"], row["status"], row["error"]) == ("relaxation_emt", "completed", None)
    assert row["result"]["energy_ev"] == pytest.approx(ase_energy(EXAMPLES / name), abs=1e-8)
    assert row["provenance"]["simmate-k8s"] and row["worker"]
    return row
