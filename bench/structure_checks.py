"""Structure checks: ``check_poscar`` (numpy only) vs. ``ase.io.read`` on the same POSCAR text.

Rattled fcc Cu/Au supercells of 144, 5,000 and 20,000 atoms (Direct coordinates, as written by
ASE). Each timing is the best of several runs in this process; prints a table, writes nothing.

    python bench/structure_checks.py [--runs 7]
"""

from __future__ import annotations

import argparse
import io
import time

import _common  # bench/ is on sys.path: scripts run as `python bench/NAME.py`
import numpy as np

SIZES = {144: (3, 3, 4), 5000: (10, 5, 25), 20000: (20, 10, 25)}  # conventional fcc cells


def structure(natoms: int) -> str:
    from ase.build import bulk

    from simmate_k8s.flows.structures import to_poscar

    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat(SIZES[natoms])
    rng = np.random.default_rng(natoms)
    symbols = np.where(rng.random(len(atoms)) < 0.3, "Au", "Cu")
    atoms.set_chemical_symbols(symbols.tolist())
    atoms.rattle(0.05, rng=rng)
    return to_poscar(atoms)


def best_of(function, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def run(runs: int = 7) -> list[list[object]]:
    import ase.io

    from simmate_k8s.flows.structures import check_poscar

    rows = []
    for natoms in SIZES:
        text = structure(natoms)
        check_poscar(text), ase.io.read(io.StringIO(text), format="vasp")  # warm up
        checked = best_of(lambda text=text: check_poscar(text), runs)
        read = best_of(lambda text=text: ase.io.read(io.StringIO(text), format="vasp"), runs)
        rows.append([f"{natoms:,}", f"{checked * 1e3:.2f}", f"{read * 1e3:.2f}",
                     f"{checked / read:.2f}×"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    rows = run(args.runs)
    print(_common.markdown_table(
        ["atoms", "check_poscar ms", "ase.io.read ms", "check / read"], rows))
    print("\ncheck_poscar parses and checks everything, including the closest pair under "
          "periodic boundaries; ase.io.read only parses.")


if __name__ == "__main__":
    main()
