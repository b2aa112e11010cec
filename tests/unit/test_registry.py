"""The workflow registry: names, versions, parameters and the ranges they are checked against."""

import subprocess
import sys

import pytest

from simmate_k8s.errors import InputError, SimmateError
from simmate_k8s.flows.registry import WORKFLOWS, Param, get_workflow, square

RELAX = get_workflow("relaxation_emt")
STATIC = get_workflow("static_energy_emt")
SMOKE = get_workflow("smoke")


def check(workflow, *assignments):
    return workflow.check_parameters(workflow.parse_assignments(assignments))


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    assert isinstance(error.value, SimmateError)
    return message


def test_registry_names_the_workflows():
    assert set(WORKFLOWS) == {"relaxation_emt", "static_energy_emt", "smoke"}
    assert all(name == workflow.name for name, workflow in WORKFLOWS.items())
    assert all(workflow.version for workflow in WORKFLOWS.values())
    assert RELAX.takes_files and STATIC.takes_files and not SMOKE.takes_files
    assert SMOKE.generate_inputs is not None


def test_unknown_workflow_lists_the_known_ones():
    with pytest.raises(InputError) as error:
        get_workflow("relax")
    assert "choose one of: relaxation_emt, smoke, static_energy_emt" in one_line(error)


def test_registry_and_input_checks_import_neither_prefect_nor_dask():
    """The CLI checks every input before it pays for importing Prefect (and Dask)."""
    code = ("import sys, simmate_k8s.flows.registry, simmate_k8s.flows.inputs; "
            "print(sorted(m for m in ('prefect', 'distributed', 'dask', 'ase') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# --- parsing ---------------------------------------------------------------------------------


def test_defaults_are_filled_in_and_typed():
    assert check(RELAX) == {"fmax": 0.05, "max_steps": 500}
    assert check(SMOKE) == {"n": 10, "delay": 0.0, "fail_every": 0}
    assert check(STATIC) == {}
    values = check(RELAX, "fmax=0.02", "max_steps= 10 ")
    assert values == {"fmax": 0.02, "max_steps": 10}
    assert type(values["fmax"]) is float and type(values["max_steps"]) is int
    assert type(check(SMOKE, "delay=1")["delay"]) is float  # a float parameter given as "1"


def test_the_last_assignment_of_a_name_wins():
    assert check(RELAX, "fmax=0.1", "fmax=0.2")["fmax"] == 0.2


def test_values_that_are_not_strings_are_checked_too():
    """A flow run started from the Prefect UI passes JSON numbers, not text."""
    assert RELAX.check_parameters({"fmax": 1, "max_steps": 20.0}) == {"fmax": 1.0,
                                                                     "max_steps": 20}
    for bad in ({"max_steps": 2.5}, {"max_steps": True}, {"fmax": "0.1x"}, {"fmax": None},
                {"fmax": [0.1]}):
        with pytest.raises(InputError):
            RELAX.check_parameters(bad)


@pytest.mark.parametrize("assignment", ["fmax", "=3", " =3", "fmax0.02", ""])
def test_an_assignment_needs_a_key_and_an_equals_sign(assignment):
    with pytest.raises(InputError) as error:
        RELAX.parse_assignments([assignment])
    assert "expected KEY=VALUE" in one_line(error)


@pytest.mark.parametrize("workflow, assignment, has", [
    (RELAX, "steps=3", "(has: fmax, max_steps)"),
    (RELAX, "structure=x", "(has: fmax, max_steps)"),
    (RELAX, "n=3", "(has: fmax, max_steps)"),
    (STATIC, "fmax=0.1", "(has: none)"),
    (SMOKE, "fmax=0.1", "(has: n, delay, fail_every)"),
])
def test_unknown_parameter_names_the_known_ones(workflow, assignment, has):
    with pytest.raises(InputError) as error:
        check(workflow, assignment)
    message = one_line(error)
    assert f"--param {assignment.split('=')[0]}: {workflow.name} has no such parameter" in message
    assert has in message


# --- every range ------------------------------------------------------------------------------

RANGES = {
    # workflow, parameter: (accepted, rejected)
    (RELAX, "fmax"): (["0.01", "1e-9", "0.05", "100"],
                      ["0", "-0", "-1", "-0.01", "nan", "NaN", "inf", "-inf", "1e6", "100.5",
                       "abc", "", "0x1"]),
    (RELAX, "max_steps"): (["1", "500", "100000"],
                           ["0", "-1", "1.5", "nan", "inf", "1e6", "1000000", "100001", "ten",
                            ""]),
    (SMOKE, "n"): (["1", "10", "100000"],
                   ["0", "-1", "100001", "1000000", "1e6", "nan", "inf", "2.5", "many"]),
    (SMOKE, "delay"): (["0", "0.0", "0.5", "3600"],
                       ["-1", "-0.001", "nan", "inf", "-inf", "1e6", "3600.1", "soon"]),
    (SMOKE, "fail_every"): (["0", "1", "3", "100000"],
                            ["-1", "1.5", "nan", "inf", "100001", "1e6", "often"]),
}
ACCEPTED = [(w, name, value) for (w, name), (good, _) in RANGES.items() for value in good]
REJECTED = [(w, name, value) for (w, name), (_, bad) in RANGES.items() for value in bad]


@pytest.mark.parametrize("workflow, name, value", ACCEPTED,
                         ids=[f"{n}={v}" for _, n, v in ACCEPTED])
def test_values_in_range_are_accepted(workflow, name, value):
    checked = check(workflow, f"{name}={value}")[name]
    assert checked == float(value)


@pytest.mark.parametrize("workflow, name, value", REJECTED,
                         ids=[f"{n}={v}" for _, n, v in REJECTED])
def test_values_out_of_range_are_one_line_errors(workflow, name, value):
    with pytest.raises(InputError) as error:
        check(workflow, f"{name}={value}")
    message = one_line(error)
    assert message.startswith(f"--param {name}=")
    assert "expected a " in message


@pytest.mark.parametrize("name, expected", [
    ("fmax", "expected a finite number > 0 and <= 100"),
    ("max_steps", "expected a whole number >= 1 and <= 100000"),
])
def test_the_error_says_what_range_is_needed(name, expected):
    with pytest.raises(InputError, match=expected):
        check(RELAX, f"{name}=-1")


def test_smoke_limits_say_what_they_are():
    with pytest.raises(InputError, match=r"n=1000000: expected a whole number >= 1 and <= 100000"):
        check(SMOKE, "n=1000000")
    with pytest.raises(InputError, match=r"delay=nan: expected a finite number >= 0"):
        check(SMOKE, "delay=nan")


def test_a_param_without_range_accepts_any_finite_number():
    param = Param("x", 1.0, "free")
    assert param.check("-1e300") == -1e300
    with pytest.raises(InputError):
        param.check("inf")


def test_every_parameter_has_its_ranges_tested():
    assert {(w.name, p.name) for w in WORKFLOWS.values() for p in w.params} == {
        (w.name, name) for w, name in RANGES}


def test_compute_parameters_leave_out_what_only_shapes_the_batch():
    """smoke's n says how many items there are: item i is the same work for any n."""
    assert SMOKE.compute_parameters(check(SMOKE, "n=5")) == {"delay": 0.0, "fail_every": 0}
    assert RELAX.compute_parameters(check(RELAX)) == {"fmax": 0.05, "max_steps": 500}
    assert STATIC.compute_parameters({}) == {}


def test_smoke_compute_and_inputs():
    assert square(7) == {"i": 7, "square": 49}
    assert square(4, fail_every=3) == {"i": 4, "square": 16}
    with pytest.raises(RuntimeError, match="item 5 fails on purpose"):
        square(5, fail_every=3)  # every 3rd item: 2, 5, 8, ...
    assert SMOKE.generate_inputs({"n": 3, "delay": 0.0}) == [
        {"name": "square-0", "data": 0}, {"name": "square-1", "data": 1},
        {"name": "square-2", "data": 2}]
