import pytest

from simmate_k8s.errors import UserError
from simmate_k8s.flows.library import WORKFLOWS, get_workflow
from tests.conftest import EXAMPLES


def test_registry_names_the_flows():
    assert {"relaxation_emt", "static_energy_emt", "smoke"} <= set(WORKFLOWS)
    assert all(name == workflow.flow.name for name, workflow in WORKFLOWS.items())


def test_unknown_workflow_lists_the_known_ones():
    with pytest.raises(UserError, match="choose one of: relaxation_emt"):
        get_workflow("relax")


def test_params_are_typed_from_the_defaults():
    workflow = get_workflow("relaxation_emt")
    assert workflow.parse_params(["fmax=0.02", "max_steps=10"]) == {"fmax": 0.02, "max_steps": 10}


@pytest.mark.parametrize("assignment, expected", [
    ("fmax", "expected KEY=VALUE"),
    ("=3", "expected KEY=VALUE"),
    ("steps=3", "has no such parameter"),
    ("structure=x", "has no such parameter"),
    ("max_steps=ten", "expected a int"),
])
def test_bad_params(assignment, expected):
    with pytest.raises(UserError, match=expected):
        get_workflow("relaxation_emt").parse_params([assignment])


def test_build_runs_reads_every_input_first(tmp_path):
    workflow = get_workflow("relaxation_emt")
    good = EXAMPLES / "Cu_fcc_rattled.POSCAR"
    runs = workflow.build_runs([good], ["fmax=0.1"])
    assert runs[0][1]["fmax"] == 0.1 and runs[0][1]["structure"] == good.read_text()
    with pytest.raises(UserError, match="missing.POSCAR: no such file"):
        workflow.build_runs([good, tmp_path / "missing.POSCAR"], [])


def test_smoke_takes_no_inputs():
    with pytest.raises(UserError, match="takes no input files"):
        get_workflow("smoke").build_runs(["x"], [])
    assert get_workflow("smoke").build_runs([], ["n=3"]) == [("smoke", {"n": 3, "delay": 0.0})]
