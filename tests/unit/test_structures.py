import pytest

from simmate_k8s.flows import emt
from simmate_k8s.flows.structures import StructureError, parse_poscar
from tests.conftest import EXAMPLES

CELL = "1.0\n3 0 0\n0 3 0\n0 0 3\n"


@pytest.mark.parametrize("text, expected", [
    ("", "empty structure"),
    ("   \n", "empty structure"),
    ("garbage", "cannot parse POSCAR"),
    ("title\n" + CELL + "Cu\n0\nDirect\n", "zero atoms"),
    ("title\n" + CELL + "Fe\n1\nDirect\n0 0 0\n", "Fe are not supported"),
    ("title\n1.0\n1 0 0\n2 0 0\n0 0 1\nCu\n1\nDirect\n0 0 0\n", "degenerate"),
])
def test_bad_structures_fail_with_a_clear_message(text, expected):
    with pytest.raises(StructureError, match=expected):
        parse_poscar(text, emt.EMT_ELEMENTS)


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
