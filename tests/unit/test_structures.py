import io
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simmate_k8s.flows import emt
from simmate_k8s.flows import structures as S
from simmate_k8s.flows.structures import (
    LARGE_STRUCTURE_ATOMS,
    MAX_ATOMS,
    MAX_INPUT_BYTES,
    MIN_DISTANCE,
    StructureError,
    check_poscar,
    parse_poscar,
    read_input_file,
    to_poscar,
)
from tests.conftest import EXAMPLES

CUBE = ("3 0 0", "0 3 0", "0 0 3")


def poscar(species="Cu", counts="1", coords=("0 0 0",), *, scale="1.0", lattice=CUBE,
           mode="Direct", selective=False) -> str:
    """A POSCAR; pass None for a line to leave it out."""
    lines = ["title", scale, *lattice, species, counts]
    lines += ["Selective dynamics"] if selective else []
    lines += [mode, *coords]
    return "\n".join(line for line in lines if line is not None) + "\n"


def many(n: int) -> tuple[str, ...]:
    return tuple(f"{i / n:.6f} 0 0" for i in range(n))


BAD = [
    ("", "empty structure; expected POSCAR text"),
    ("   \n\n", "empty structure"),
    ("garbage", "truncated: the text ends after line 1; expected the scale factor on line 2"),
    ("t\n1.0\n3 0 0\n0 3 0\n", "truncated: the text ends after line 4; expected lattice vector c"
                               " on line 5"),
    ("t\n1.0\n3 0 0\n0 3 0\n0 0 3\nCu\n1\n",
     "truncated: the text ends after line 7; expected 'Direct' or 'Cartesian' (or 'Selective "
     "dynamics') on line 8"),
    ("t\n1.0\n3 0 0\n0 3 0\n0 0 3\nCu\n1\nSelective dynamics\n",
     "expected 'Direct' or 'Cartesian' on line 9"),
    # scale factor
    (poscar(scale=""), "line 2: empty; expected the scale factor, e.g. 1.0"),
    (poscar(scale="abc"), "line 2: scale factor 'abc' is not a number; expected e.g. 1.0"),
    (poscar(scale="nan"), "line 2: scale factor nan is not finite"),
    (poscar(scale="-inf"), "line 2: scale factor -inf is not finite"),
    (poscar(scale="0"), "line 2: scale factor is 0; use 1.0, or a negative number to give the "
                        "cell volume in Å^3"),
    (poscar(scale="1.0 2.0"), "line 2: 2 scale factors; give 1, or 3 (one per Cartesian axis)"),
    (poscar(scale="1 -1 1"), "line 2: three scale factors must all be positive, got 1 -1 1"),
    (poscar(scale="1 0 1"), "three scale factors must all be positive"),
    (poscar(scale="1e300", lattice=("1e10 0 0", "0 3 0", "0 0 3")),
     "line 2: the scale factor makes the lattice vectors overflow"),
    (poscar(scale="1e-300 1e-300 1e-300"), "cell volume 0 Å^3 after applying the scale factor"),
    # lattice
    (poscar(lattice=("3 0", "0 3 0", "0 0 3")), "line 3: lattice vector a needs 3 numbers, "
                                                "found 2"),
    (poscar(lattice=("3 0 0", "", "0 0 3")), "line 4: lattice vector b needs 3 numbers, found an "
                                             "empty line"),
    (poscar(lattice=("3 0 0", "0 3 0", "0 x 3")), "line 5: lattice vector c component 'x' is "
                                                  "not a number"),
    (poscar(lattice=("3 0 0", "0 nan 0", "0 0 3")), "line 4: lattice vector b component nan is "
                                                    "not finite"),
    (poscar(lattice=("3 0 0", "3 0 0", "0 0 3")), "lines 3-5: lattice vectors are degenerate "
                                                  "(cell volume 0 Å^3): two are parallel or one "
                                                  "is zero"),
    (poscar(lattice=("3 0 0", "0 3 0", "0 0 0")), "lattice vectors are degenerate"),
    (poscar(lattice=("1 0 0", "0 1 0", "1 1 1e-12")), "lattice vectors are degenerate"),
    # species
    (poscar(species=None), "line 6: atom counts without element symbols (VASP 4 format); add "
                           "the element symbols line above the counts, e.g. 'Cu Au'"),
    (poscar(species=""), "line 6: empty; expected the element symbols, e.g. 'Cu Au'"),
    (poscar(species="Xx"), "line 6: 'Xx' is not an element symbol; use element symbols such as"),
    (poscar(species="Cu Qq Zz", counts="1 1 1"), "line 6: 'Qq', 'Zz' are not element symbols"),
    (poscar(species="cu"), "line 6: 'cu' is not an element symbol; did you mean 'Cu'?"),
    (poscar(species="X"), "line 6: 'X' is not an element symbol"),
    (poscar(species="CU_pv"), "line 6: 'CU_pv' is not an element symbol; did you mean 'Cu'?"),
    (poscar(species="Cu 1"), "line 6: '1' is not an element symbol; the counts go on their own "
                             "line below the symbols"),
    (poscar(species="Fe"), "line 6: elements Fe are not supported by this workflow (supported: "
                           "Ag, Al, Au, C, Cu, H, N, Ni, O, Pd, Pt)"),
    (poscar(species="Cu Fe Ti", counts="1 1 0", coords=("0 0 0", "0.5 0.5 0.5")),
     "line 6: elements Fe are not supported"),
    # counts
    (poscar(counts=""), "line 7: empty; expected one atom count for each of the 1 species (Cu)"),
    (poscar(counts="1.5"), "line 7: count '1.5' is not a whole number"),
    (poscar(counts="one"), "line 7: count 'one' is not a whole number"),
    (poscar(counts="-1"), "line 7: count -1 for Cu is negative"),
    (poscar(species="Cu Au", counts="1"), "line 7: 2 species (Cu Au) but 1 count; give one "
                                          "count per species"),
    (poscar(counts="1 1", coords=("0 0 0", "0.5 0.5 0.5")), "line 7: 1 species (Cu) but 2 counts"),
    (poscar(counts="0"), "line 7: zero atoms; the counts must add up to at least 1"),
    (poscar(counts="100000000"), "line 7: declares 100000000 atoms but has 1 coordinate line; "
                                 "fix the counts or add the missing coordinates"),
    (poscar(counts="3", coords=()), "line 7: declares 3 atoms but has 0 coordinate lines"),
    (poscar(coords=()), "line 7: declares 1 atom but has 0 coordinate lines"),
    (poscar(counts="3", coords=("0 0 0", "0.5 0.5 0.5")), "declares 3 atoms but has 2 "
                                                          "coordinate lines"),
    # coordinate mode
    (poscar(mode=""), "line 8: empty; expected 'Direct' or 'Cartesian'"),
    (poscar(mode=None, coords=("0 0 0", "0.5 0.5 0.5")),
     "line 8: found coordinates where 'Direct' or 'Cartesian' should be; add that line above "
     "the coordinates"),
    (poscar(mode="-0.5 0 0"), "found coordinates where 'Direct' or 'Cartesian' should be"),
    # coordinates
    (poscar(coords=("0 0",)), "line 9: atom 1 (Cu) needs 3 coordinates, found 2"),
    (poscar(coords=("0 a 0",)), "line 9: coordinate 'a' of atom 1 (Cu) is not a number"),
    (poscar(coords=("0 0 1,5",)), "line 9: coordinate '1,5' of atom 1 (Cu) is not a number"),
    (poscar(coords=("0 nan 0",)), "line 9: coordinate nan of atom 1 (Cu) is not finite"),
    (poscar(coords=("0 0 inf",)), "line 9: coordinate inf of atom 1 (Cu) is not finite"),
    (poscar(species="Cu Au", counts="1 2", coords=("0 0 0", "0.5 0.5 0.5", "0 ! 0.5 0", "")),
     "line 11: coordinate '!' of atom 3 (Au) is not a number"),
    (poscar(counts="2", coords=("0 0 0", "", "0.5 0.5 0.5")),
     "line 10: empty line where the coordinates of atom 2 (Cu) should be; the counts on line 7 "
     "declare 2 atoms"),
    (poscar(selective=True), "line 10: atom 1 (Cu) needs selective-dynamics flags T or F for x, "
                             "y and z after its coordinates (line 8 turns selective dynamics on)"),
    (poscar(selective=True, coords=("0 0 0 T T",)), "needs selective-dynamics flags T or F"),
    (poscar(selective=True, coords=("0 0 0 t t f",)), "needs selective-dynamics flags T or F"),
    # atoms too close
    (poscar(counts="2", coords=("0 0 0", "0 0 0")),
     "lines 9 and 10: atoms 1 and 2 (Cu, Cu) are 0.00 Å apart; closer than 0.5 Å — check for "
     "duplicated lines"),
    (poscar(species="Cu Au", counts="1 1", coords=("0.01 0 0", "0.99 0 0")),
     "atoms 1 and 2 (Cu, Au) are 0.06 Å apart; closer than 0.5 Å — check the coordinates, the "
     "Direct/Cartesian line and the scale factor"),
    (poscar(counts="3", coords=("0 0 0", "0.5 0.5 0.5", "0.5 0.5 0.55")),
     "lines 10 and 11: atoms 2 and 3 (Cu, Cu) are 0.15 Å apart"),
    (poscar(counts="2", coords=("0 0 0", "2 2 2"), mode="Direct"),  # meant Cartesian
     "atoms 1 and 2 (Cu, Cu) are 0.00 Å apart"),
    (poscar(counts="2", coords=("0 0 0", "0.1 0.1 0.1"), mode="Cartesian"),  # meant Direct
     "atoms 1 and 2 (Cu, Cu) are 0.17 Å apart"),
    (poscar(lattice=("3 0 0", "0 3 0", "0 0 0.3")),
     "line 9: atom 1 (Cu) is 0.30 Å from its own periodic image; closer than 0.5 Å — the cell is "
     "too small: check the lattice vectors and the scale factor on line 2"),
    (poscar(lattice=("3 0 0", "2.9 0.2 0", "0 0 3")),  # a - b is short: skewed, not small
     "line 9: atom 1 (Cu) is 0.22 Å from its own periodic image"),
    (poscar(scale="0.1"), "atom 1 (Cu) is 0.30 Å from its own periodic image"),
]


@pytest.mark.parametrize("text, expected", BAD, ids=[e[:48] for _, e in BAD])
def test_bad_structures_fail_with_a_clear_message(text, expected):
    with pytest.raises(StructureError) as checked:
        check_poscar(text, emt.EMT_ELEMENTS)
    message = str(checked.value)
    assert expected in message
    assert "\n" not in message
    with pytest.raises(StructureError) as parsed:
        parse_poscar(text, emt.EMT_ELEMENTS)  # the same check guards the ASE path
    assert str(parsed.value) == message


def test_atom_count_above_the_cap_is_refused_before_reading_coordinates():
    text = poscar(counts=str(MAX_ATOMS + 1), coords=("junk",) * (MAX_ATOMS + 1))
    with pytest.raises(StructureError, match=f"line 7: declares {MAX_ATOMS + 1} atoms; at most "
                                             f"{MAX_ATOMS} are supported"):
        check_poscar(text)


def test_min_distance_threshold_is_a_parameter():
    text = (EXAMPLES / "Cu_fcc_rattled.POSCAR").read_text()
    assert check_poscar(text, min_distance=2.0).min_distance > 2.0
    with pytest.raises(StructureError, match=r"are 2\.26 Å apart; closer than 2\.5 Å"):
        check_poscar(text, min_distance=2.5)
    summary = check_poscar(poscar(counts="2", coords=("0 0 0", "0 0 0")), min_distance=0)
    assert summary.min_distance == 0.0


def test_supported_elements_ignore_species_with_zero_atoms():
    text = poscar(species="Fe Cu", counts="0 1")
    assert check_poscar(text, emt.EMT_ELEMENTS).formula == "Cu"


def test_constants():
    assert LARGE_STRUCTURE_ATOMS == 2000 and MAX_ATOMS == 100_000 and MIN_DISTANCE == 0.5


def test_element_symbols_are_exactly_the_real_elements():
    from ase.data import chemical_symbols

    assert set(chemical_symbols[1:]) == S.ELEMENTS


def test_check_poscar_does_not_import_ase():
    code = ("import sys; from simmate_k8s.flows.structures import check_poscar; "
            f"check_poscar(open({str(EXAMPLES / 'AuAg_fcc_alloy.POSCAR')!r}).read()); "
            "assert not [m for m in sys.modules if m == 'ase' or m.startswith('ase.')]")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- agreement with ASE ----------------------------------------------------------------------


def _ase_read(text):
    import ase.io

    return ase.io.read(io.StringIO(text), format="vasp")


def _closest_by_ase(atoms) -> float:
    from ase.neighborlist import neighbor_list

    return float(neighbor_list("d", atoms, 6.0).min())


def _assert_same_as_ase(text):
    reference = _ase_read(text)
    atoms = parse_poscar(text)
    assert atoms.get_chemical_symbols() == reference.get_chemical_symbols()
    assert np.array_equal(atoms.cell[:], reference.cell[:])
    assert np.array_equal(atoms.positions, reference.positions)
    assert atoms.pbc.all() and reference.pbc.all()
    assert [c.todict() for c in atoms.constraints] == [c.todict() for c in reference.constraints]
    summary = check_poscar(text)
    assert summary.natoms == len(reference)
    assert summary.formula == reference.get_chemical_formula()
    assert summary.volume == pytest.approx(reference.get_volume(), rel=1e-12)
    assert summary.min_distance == pytest.approx(_closest_by_ase(reference), rel=1e-9)
    return summary, reference


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.POSCAR")), ids=lambda p: p.name)
def test_examples_match_ase(path):
    summary, _ = _assert_same_as_ase(path.read_text())
    assert set(summary.elements) <= emt.EMT_ELEMENTS


def test_summary_of_an_example():
    summary = check_poscar((EXAMPLES / "AuAg_fcc_alloy.POSCAR").read_text(), emt.EMT_ELEMENTS)
    assert summary == S.StructureSummary(
        natoms=32, formula="Ag16Au16", elements=("Ag", "Au"), volume=pytest.approx(8.16 ** 3),
        min_distance=pytest.approx(2.684025, abs=1e-6))


def _alloy(rattle=0.05, seed=0):
    from ase.build import bulk

    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 2, 2))
    symbols = atoms.get_chemical_symbols()
    for index in (1, 5, 6, 11, 20):
        symbols[index] = "Au"
    atoms.set_chemical_symbols(symbols)
    atoms.rattle(rattle, seed=seed)
    return atoms


def _triclinic():
    from ase import Atoms

    cell = [[4.1, 0.0, 0.0], [1.3, 3.9, 0.0], [-0.7, 1.1, 4.4]]
    return Atoms("Pt2NiO", cell=cell, pbc=True,
                 scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.1], [0.2, 0.7, 0.5], [0.9, 0.1, 0.7]])


def _write(atoms, **kwargs) -> str:
    import ase.io

    buffer = io.StringIO()
    ase.io.write(buffer, atoms, format="vasp", sort=False, **kwargs)
    return buffer.getvalue()


def _replace_line(text: str, number: int, new: str) -> str:
    lines = text.split("\n")
    lines[number - 1] = new
    return "\n".join(lines)


def _scaled(text: str, scale: str, factors) -> str:
    """The same structure with ``scale`` on line 2 and the lattice (and any Cartesian
    coordinates) divided by ``factors``: one number, or one per Cartesian axis."""
    lines = text.split("\n")
    factors = np.broadcast_to(np.asarray(factors, dtype=float), (3,))
    numbers = [3, 4, 5]
    mode = 9 if lines[7].startswith("S") else 8
    if lines[mode - 1][0] in "CcKk":
        natoms = sum(int(n) for n in lines[6].split())
        numbers += range(mode + 1, mode + 1 + natoms)
    for number in numbers:
        tokens = lines[number - 1].split()
        vector = np.array(tokens[:3], dtype=float) / factors
        lines[number - 1] = " ".join([f"{x:.12f}" for x in vector] + tokens[3:])
    lines[1] = scale
    return "\n".join(lines)


def _with_comments(text: str) -> str:
    """Text after the three coordinates, as VASP allows."""
    lines = text.split("\n")
    return "\n".join(line + "  ! a note" if n >= 9 and line else line
                     for n, line in enumerate(lines, 1))


def _potcar_labels(text: str) -> str:
    """Species as VASP writes POTCAR labels: Cu_pv, Au/6a2f546d (hashed, from hdf5 builds)."""
    tokens = text.split("\n")[5].split()
    labels = [f"{t}_pv" if k % 2 else f"{t}/6a2f546d" for k, t in enumerate(tokens)]
    return _replace_line(text, 6, "  ".join(labels))


def _generated():
    from ase.constraints import FixAtoms, FixScaled

    alloy, tri = _alloy(), _triclinic()
    fixed = _alloy(seed=1)
    fixed.set_constraint([FixScaled(3, [True, False, True], fixed.cell),
                          FixAtoms(indices=[0, 2, 7])])
    direct = _write(alloy, direct=True)
    cartesian = _write(alloy, direct=False)
    volume = abs(np.linalg.det(alloy.cell[:]))
    mirrored = tri.copy()
    mirrored.set_cell(-mirrored.cell[:], scale_atoms=True)  # a left-handed cell
    return {
        "direct": direct,
        "cartesian": cartesian,
        "cartesian K": _replace_line(cartesian, 8, "k"),
        "direct lower-case": _replace_line(direct, 8, "direct"),
        "direct any word": _replace_line(direct, 8, "Fractional"),
        "triclinic cartesian": _write(tri, direct=False),
        "triclinic direct": _write(tri, direct=True),
        "selective dynamics": _write(fixed, direct=True),
        "selective dynamics cartesian": _write(fixed, direct=False),
        "scale 2.0 direct": _scaled(direct, "2.0", 2.0),
        "scale 2.0 cartesian": _scaled(cartesian, "2.0", 2.0),
        "scale with comment": _scaled(direct, "0.5 ! lattice constant", 0.5),
        "negative scale = volume": _scaled(direct, f"-{volume:.10f}", 1.7),
        "negative scale, left-handed cell": _replace_line(_write(mirrored), 2, "-80"),
        "three scale factors cartesian": _scaled(cartesian, "1.1 0.9 1.3", [1.1, 0.9, 1.3]),
        "three scale factors triclinic": _scaled(_write(tri, direct=False), "2 1 0.5", [2, 1, .5]),
        "POTCAR labels": _potcar_labels(direct),
        "comments after coordinates": _with_comments(direct),
        "comments after selective-dynamics flags": _with_comments(_write(fixed, direct=True)),
        "CRLF": direct.replace("\n", "\r\n"),
        "no trailing newline": direct.rstrip(),
        "trailing blank lines": direct + "\n\n  \n",
        "single atom": "Cu\n1.0\n0 1.8 1.8\n1.8 0 1.8\n1.8 1.8 0\nCu\n1\nCartesian\n0 0 0\n",
    }


GENERATED = _generated()


@pytest.mark.parametrize("name", GENERATED)
def test_generated_files_match_ase(name):
    _assert_same_as_ase(GENERATED[name])


def test_selective_dynamics_become_the_same_constraints_as_in_ase():
    atoms = parse_poscar(GENERATED["selective dynamics"])
    kinds = [type(c).__name__ for c in atoms.constraints]
    assert kinds == ["FixScaled", "FixAtoms"]
    assert atoms.constraints[1].index.tolist() == [0, 2, 7]


def test_negative_scale_is_the_cell_volume():
    summary = check_poscar(GENERATED["negative scale = volume"])
    assert summary.volume == pytest.approx(abs(np.linalg.det(_alloy().cell[:])), rel=1e-9)


def test_single_atom_min_distance_is_its_shortest_lattice_vector():
    summary = check_poscar(GENERATED["single atom"])
    assert summary.natoms == 1 and summary.min_distance == pytest.approx(1.8 * 2 ** 0.5)


@pytest.mark.parametrize("symbols", [
    "Cu4", "AgAu3", "Au3Ag", "CuO", "OCuH", "CH4", "H2O", "NaCl", "CNOH", "HeH", "PtNiCH2",
    "ZnSnCu2S4", "OOCCHHHHNNAl",
])
def test_formula_matches_ase(symbols):
    from ase import Atoms

    atoms = Atoms(symbols, cell=np.eye(3) * 40, pbc=True)
    atoms.positions = np.arange(len(atoms))[:, None] * [1.1, 0.3, 0.2]
    summary = check_poscar(_write(atoms))
    assert summary.formula == atoms.get_chemical_formula()
    assert "".join(summary.elements) == "".join(c for c in summary.formula if not c.isdigit())


def test_round_trip_through_to_poscar():
    atoms = parse_poscar(GENERATED["selective dynamics"])
    again = parse_poscar(to_poscar(atoms))
    assert np.allclose(again.positions, atoms.positions, atol=1e-12)
    assert len(again.constraints) == len(atoms.constraints)


# --- the closest pair under periodic boundaries ----------------------------------------------


def _brute_force(cell, frac, reach=4) -> float:
    shifts = np.array(list(itertools.product(range(-reach, reach + 1), repeat=3)))
    best = np.inf
    for i, j in itertools.combinations_with_replacement(range(len(frac)), 2):
        delta = (frac[j] - frac[i] + shifts) @ cell
        distances = np.linalg.norm(delta, axis=1)
        if i == j:
            distances = distances[np.any(shifts != 0, axis=1)]
        best = min(best, distances.min())
    return best


def test_closest_pair_is_exact_in_random_triclinic_cells():
    rng = np.random.default_rng(7)
    skew = np.array([[1, 0, 0], [7, 1, 0], [-3, 5, 1]])  # same lattice, terrible basis
    tested = 0
    while tested < 60:
        cell = rng.normal(size=(3, 3)) * rng.uniform(0.5, 5) + np.eye(3) * rng.uniform(0, 6)
        if abs(np.linalg.det(cell)) < 0.3 * np.prod(np.linalg.norm(cell, axis=1)):
            continue  # the brute force's 9^3 images suffice only for reasonable cells
        frac = rng.uniform(-1, 2, size=(rng.integers(1, 9), 3))
        expected = _brute_force(cell, frac)
        distance, i, j = S._closest_pair(cell, frac)
        assert distance == pytest.approx(expected, abs=1e-9)
        assert 0 <= i <= j < len(frac)
        for basis in (skew, skew.T):
            moved = S._closest_pair(basis @ cell, frac @ np.linalg.inv(basis))[0]
            assert moved == pytest.approx(expected, abs=1e-7)
        tested += 1


def _all_pairs(cell, frac) -> tuple[float, int, int]:
    """Every pair against the 27 nearest images: exact for this well-shaped cell."""
    shifts = np.array(list(itertools.product((-1, 0, 1), repeat=3)))
    wrapped = frac % 1.0
    best = (float(np.linalg.norm(cell, axis=1).min()), 0, 0)  # own image
    for i in range(len(frac) - 1):
        delta = wrapped[i + 1:] - wrapped[i]
        delta -= np.round(delta)
        cartesian = (delta[:, None, :] + shifts[None, :, :]) @ cell
        distances = np.linalg.norm(cartesian, axis=2).min(axis=1)
        k = int(np.argmin(distances))
        best = min(best, (float(distances[k]), i, i + 1 + k))
    return best


@pytest.mark.parametrize("case", ["uniform", "clustered", "direct read as cartesian", "slab"])
def test_closest_pair_matches_brute_force_for_larger_structures(case):
    rng = np.random.default_rng(3)
    cell = np.array([[18.0, 0, 0], [4.0, 17.0, 0], [1.0, -2.0, 19.0]])
    frac = rng.uniform(0, 1, size=(800, 3))
    if case == "clustered":  # all atoms in a tenth of each axis: crowded bins
        frac = frac * 0.1 + 0.45
    elif case == "direct read as cartesian":
        frac = frac @ np.linalg.inv(cell)
    elif case == "slab":
        frac[:, 2] = frac[:, 2] * 0.3 - 0.1
    distance, i, j = S._closest_pair(cell, frac)
    expected, *pair = _all_pairs(cell, frac)
    assert distance == pytest.approx(expected, rel=1e-9)
    assert [i, j] == pair


def test_closest_pair_handles_degenerate_layouts():
    assert S._closest_pair(np.eye(3) * 1000.0, np.zeros((1, 3)))[0] == pytest.approx(1000.0)
    assert S._closest_pair(np.diag([500.0, 500.0, 0.1]), np.zeros((1, 3)))[0] == pytest.approx(0.1)
    assert S._closest_pair(np.eye(3) * 5.0, np.zeros((3000, 3))) == (0.0, 0, 1)
    sliver = np.array([[1.0, 0, 0], [1.0, 1e-3, 0], [0, 0, 1.0]])  # b - a is 0.001 Å long
    assert S._closest_pair(sliver, np.zeros((1, 3)))[0] == pytest.approx(1e-3)


def test_memory_stays_bounded_for_crowded_structures():
    import tracemalloc

    frac = np.random.default_rng(0).uniform(0, 0.02, size=(6000, 3))  # one crowded corner
    tracemalloc.start()
    S._closest_pair(np.eye(3) * 50.0, frac)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200e6


# --- input files -----------------------------------------------------------------------------


def test_read_input_file_returns_the_text(tmp_path):
    path = tmp_path / "POSCAR"
    path.write_bytes(b"\xef\xbb\xbftitle\r\n1.0\r\n")
    assert read_input_file(path) == "title\n1.0\n"
    assert read_input_file(str(EXAMPLES / "Cu_fcc_rattled.POSCAR")).startswith("Cu_fcc_rattled\n")


@pytest.mark.parametrize("kind, expected", [
    ("directory", "is a directory; pass the files in it, or a glob"),
    ("missing", "no such file"),
    ("binary", "not a text file; expected a POSCAR"),
    ("nul", "not a text file; expected a POSCAR"),
    ("large", f"larger than {MAX_INPUT_BYTES // 1_000_000} MB; not a POSCAR"),
    ("fifo", "not a regular file; expected a POSCAR"),
])
def test_read_input_file_names_what_the_path_is(tmp_path, kind, expected):
    path = tmp_path / "input"
    if kind == "directory":
        path.mkdir()
    elif kind == "binary":
        path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    elif kind == "nul":
        path.write_bytes(b"title\n\x00\x00\n")
    elif kind == "large":
        path.write_bytes(b"x" * (MAX_INPUT_BYTES + 1))
    elif kind == "fifo":
        os.mkfifo(path)
    with pytest.raises(StructureError, match=expected):
        read_input_file(path)


def test_read_input_file_unreadable(tmp_path, monkeypatch):
    path = tmp_path / "POSCAR"
    path.write_text("title\n")

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)  # tests run as root: chmod 000 would not stop us
    with pytest.raises(StructureError, match="permission denied; make the file readable"):
        read_input_file(path)


# --- the workflow ----------------------------------------------------------------------------


def test_every_example_parses():
    files = sorted(EXAMPLES.glob("*.POSCAR"))
    assert len(files) >= 3
    for path in files:
        assert len(parse_poscar(path.read_text(), emt.EMT_ELEMENTS)) > 0


def test_relax_matches_ase_directly():
    from ase.calculators.emt import EMT
    from ase.io import read
    from ase.optimize import BFGS

    path = EXAMPLES / "Cu_fcc_rattled.POSCAR"
    atoms = read(path, format="vasp")
    atoms.calc = EMT()
    BFGS(atoms, logfile=None).run(fmax=0.05, steps=500)
    result = emt.relax(path.read_text())
    assert result["energy_ev"] == pytest.approx(atoms.get_potential_energy(), abs=1e-9)
    assert result["converged"] and result["max_force_ev_per_a"] < 0.05
    relaxed = parse_poscar(result["relaxed_poscar"])
    assert relaxed.get_chemical_formula() == atoms.get_chemical_formula()


@pytest.mark.parametrize("kwargs", [{"fmax": 0}, {"max_steps": 0}])
def test_relax_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        emt.relax((EXAMPLES / "Cu_fcc_rattled.POSCAR").read_text(), **kwargs)
