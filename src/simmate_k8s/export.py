"""Structures out of the results database into files ASE reads, with their energies."""

from __future__ import annotations

from pathlib import Path

from simmate_k8s.errors import InputError

FORMATS = {".extxyz": "extxyz", ".xyz": "extxyz", ".db": "db"}
NUMBERS = ("energy_ev", "energy_per_atom_ev", "max_force_ev_per_a", "steps")


def write_structures(rows: list[dict], path: str) -> int:
    """The relaxed structure of each completed row (the input's own for static energies,
    which keep none) with its energy and provenance; returns how many were written.

    The file is written to a temporary name and moved into place, so a failure leaves no
    half-written file."""
    import io
    import os
    import tempfile

    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    from simmate_k8s.flows.structures import parse_poscar

    target = Path(path)
    kind = FORMATS.get(target.suffix.lower())
    if kind is None:
        raise InputError(f"--export {path}: choose a .extxyz, .xyz or .db file name")
    structures = []
    for row in rows:
        result = row.get("result") or {}
        poscar = result.get("relaxed_poscar")
        if row.get("status") != "completed" or not poscar:
            continue
        atoms = parse_poscar(poscar)
        if "energy_ev" in result:  # readers get it back as atoms.get_potential_energy()
            atoms.calc = SinglePointCalculator(atoms, energy=result["energy_ev"])
        atoms.info.update({key: result[key] for key in NUMBERS if key in result})
        atoms.info.update(input_name=row["input_name"], workflow=row["workflow"],
                          key=row["key"], batch_id=row.get("batch_id") or "")
        if "converged" in result:
            atoms.info["converged"] = bool(result["converged"])
        structures.append(atoms)
    if not structures:
        raise InputError("no completed rows with a structure match; check the filters "
                         "(relaxation_emt saves relaxed structures)")
    handle, temporary = tempfile.mkstemp(dir=target.parent or ".", suffix=target.suffix)
    os.close(handle)
    try:
        if kind == "db":
            import ase.db

            os.unlink(temporary)
            with ase.db.connect(temporary) as database:
                for atoms in structures:
                    info = {k: v for k, v in atoms.info.items() if k not in ("key",)}
                    database.write(atoms, key_value_pairs=info, data={"key": atoms.info["key"]})
        else:
            buffer = io.StringIO()
            ase.io.write(buffer, structures, format="extxyz")
            Path(temporary).write_text(buffer.getvalue())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return len(structures)
