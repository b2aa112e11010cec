"""Materials workflows that really compute: ASE's EMT potential with the BFGS optimizer."""

from __future__ import annotations

import numpy as np

from simmate_k8s.flows.structures import parse_poscar, to_poscar

EMT_ELEMENTS = frozenset(["Ag", "Al", "Au", "C", "Cu", "H", "N", "Ni", "O", "Pd", "Pt"])
PROGRESS_EVERY = 10  # optimizer steps between progress reports


def emt_atoms(structure: str):
    from ase.calculators.emt import EMT

    atoms = parse_poscar(structure, EMT_ELEMENTS)
    atoms.calc = EMT()
    return atoms


def _summary(atoms) -> dict:
    energy = float(atoms.get_potential_energy())
    forces = atoms.get_forces()
    if not np.isfinite(energy) or not np.isfinite(forces).all():
        raise ValueError("EMT gave a non-finite energy or forces; check the structure")
    return {
        "formula": atoms.get_chemical_formula(),
        "natoms": len(atoms),
        "energy_ev": energy,
        "energy_per_atom_ev": energy / len(atoms),
        "max_force_ev_per_a": float(np.linalg.norm(forces, axis=1).max()),
    }


def static_energy(structure: str, progress=None) -> dict:
    """Energy and forces of the structure as given."""
    return _summary(emt_atoms(structure))


def relax(structure: str, fmax: float = 0.05, max_steps: int = 500, progress=None) -> dict:
    """Relax atomic positions (fixed cell) until every force is below ``fmax`` eV/Å.

    ``progress(step=…, fmax=…)`` is called every PROGRESS_EVERY steps (a heartbeat for long
    relaxations)."""
    from ase.optimize import BFGS

    if not (np.isfinite(fmax) and fmax > 0):
        raise ValueError(f"fmax must be a finite number above 0 eV/Å, got {fmax}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    atoms = emt_atoms(structure)
    optimizer = BFGS(atoms, logfile=None)
    if progress is not None:
        def report():
            forces = atoms.get_forces()
            progress(step=optimizer.nsteps,
                     fmax=round(float(np.linalg.norm(forces, axis=1).max()), 4))

        optimizer.attach(report, interval=PROGRESS_EVERY)
    converged = bool(optimizer.run(fmax=fmax, steps=max_steps))
    return {
        **_summary(atoms),
        "converged": converged,
        "steps": int(optimizer.get_number_of_steps()),
        "relaxed_poscar": to_poscar(atoms),
    }
