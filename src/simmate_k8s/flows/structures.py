"""Reading and checking crystal structures (POSCAR) before any work is done with them."""

from __future__ import annotations

import io
from pathlib import Path

MAX_INPUT_BYTES = 5_000_000


class StructureError(ValueError):
    """The structure cannot be used: the message says why and what to do."""


def read_input_file(path: str | Path) -> str:
    """The text of an input file, or StructureError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise StructureError("no such file")
    if path.stat().st_size > MAX_INPUT_BYTES:
        raise StructureError(f"larger than {MAX_INPUT_BYTES // 1_000_000} MB; not a POSCAR")
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise StructureError("not a text file; expected a POSCAR") from None


def parse_poscar(text: str, supported_elements: frozenset[str] | None = None):
    """ASE Atoms from POSCAR text; StructureError if unparsable, empty or unsupported."""
    import ase.io

    if not text.strip():
        raise StructureError("empty structure; expected POSCAR text")
    try:
        atoms = ase.io.read(io.StringIO(text), format="vasp")
    except Exception as error:  # ASE raises many types for malformed files
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StructureError(f"cannot parse POSCAR ({detail})") from None
    if len(atoms) == 0:
        raise StructureError("structure has zero atoms")
    if supported_elements is not None:
        unsupported = sorted(set(atoms.get_chemical_symbols()) - supported_elements)
        if unsupported:
            raise StructureError(
                f"elements {', '.join(unsupported)} are not supported by this workflow "
                f"(supported: {', '.join(sorted(supported_elements))})"
            )
    if atoms.cell.rank < 3 or abs(atoms.cell.volume) < 1e-6:
        raise StructureError("lattice vectors are degenerate (cell volume is zero)")
    return atoms


def to_poscar(atoms) -> str:
    import ase.io

    buffer = io.StringIO()
    ase.io.write(buffer, atoms, format="vasp", direct=True, sort=False)
    return buffer.getvalue()
