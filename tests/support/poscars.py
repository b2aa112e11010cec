"""Small valid POSCARs made on the fly: distinct content for each index."""

from __future__ import annotations

from pathlib import Path

FCC_SITES = ((0.0, 0.0, 0.0), (0.5, 0.5, 0.0), (0.5, 0.0, 0.5), (0.0, 0.5, 0.5))
LATTICE = 3.6  # Å, about copper's


def cu_poscar(index: int) -> str:
    """1-4 Cu atoms on fcc sites of a cubic cell; the first atom is shifted by an amount that
    depends on ``index``, so no two indices give the same structure."""
    natoms = 1 + index % 4
    shift = 0.0001 * (index // 4)
    sites = [list(site) for site in FCC_SITES[:natoms]]
    sites[0][0] += shift
    lines = [f"Cu{natoms} test structure {index}", "1.0",
             f"{LATTICE} 0.0 0.0", f"0.0 {LATTICE} 0.0", f"0.0 0.0 {LATTICE}",
             "Cu", str(natoms), "Direct"]
    lines += [" ".join(f"{x:.6f}" for x in site) for site in sites]
    return "\n".join(lines) + "\n"


def write_poscars(directory: Path, count: int, start: int = 0) -> list[Path]:
    """``count`` distinct POSCARs named s00000.POSCAR, s00001.POSCAR, ... in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(start, start + count):
        path = directory / f"s{index:05d}.POSCAR"
        path.write_text(cu_poscar(index))
        paths.append(path)
    return paths
