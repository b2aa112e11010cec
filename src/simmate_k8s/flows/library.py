"""Every workflow as a Prefect 1 Flow, and the registry that finds them by name.

Prefect's Module storage loads flows from this module inside the image, so each Flow is a
module attribute. Tasks that save reach the results database only through
:func:`simmate_k8s.preload.results_engine` (the worker's preloaded pool).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import prefect
from prefect import Flow, Parameter, task, unmapped

from simmate_k8s import database
from simmate_k8s.errors import UserError
from simmate_k8s.flows import emt
from simmate_k8s.flows.structures import StructureError, parse_poscar, read_input_file

DASK_ADDRESS_ENV = "SIMMATE_DASK_ADDRESS"
EXAMPLES_DIR = Path(__file__).parent / "examples"


# --- tasks -----------------------------------------------------------------------------------
# Each task computes and saves its own result (one Dask task per piece of work: Prefect adds
# ~10 ms of overhead per task) and returns the record {"step", "parameters", "result"}.


def _save(step: str, parameters: dict, result: dict) -> dict:
    """Save through the worker's preloaded pool (idempotent: a re-run updates the same row)."""
    from simmate_k8s.preload import results_engine

    database.save_result(
        results_engine(),
        flow_name=prefect.context.get("flow_name", "unknown"),
        task_name=step,
        parameters=parameters,
        result=result,
        flow_run_id=prefect.context.get("flow_run_id"),
    )
    return {"step": step, "parameters": parameters, "result": result}


@task(name="relax")
def relax_task(structure: str, fmax: float, max_steps: int) -> dict:
    parameters = {"structure": structure, "fmax": fmax, "max_steps": max_steps}
    return _save("relax", parameters, emt.relax(**parameters))


@task(name="static_energy")
def static_energy_task(structure: str) -> dict:
    return _save("static_energy", {"structure": structure}, emt.static_energy(structure))


@task(name="indices")
def indices_task(n: int) -> list[int]:
    if not 1 <= n <= 100_000:
        raise ValueError(f"n must be between 1 and 100000, got {n}")
    return list(range(n))


@task(name="square")
def square_task(i: int, delay: float) -> dict:
    if delay:
        time.sleep(delay)
    return _save("square", {"i": i}, {"i": i, "square": i * i})


# --- flows -----------------------------------------------------------------------------------

with Flow("relaxation_emt") as relaxation_emt:
    relax_task(
        Parameter("structure"), Parameter("fmax", default=0.05), Parameter("max_steps", default=500)
    )

with Flow("static_energy_emt") as static_energy_emt:
    static_energy_task(Parameter("structure"))

with Flow("smoke") as smoke:
    # one saved row per item: a health check of scheduler, workers and the results database
    square_task.map(
        indices_task(Parameter("n", default=10)), delay=unmapped(Parameter("delay", default=0.0))
    )


# --- registry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workflow:
    flow: Flow
    summary: str
    input_parameter: str | None = None  # the parameter that each INPUT file fills
    input_help: str = ""
    validate_input: object = field(default=None, repr=False)  # text -> raises StructureError

    @property
    def name(self) -> str:
        return self.flow.name

    def parameter_defaults(self) -> dict:
        """Parameters a user may set with --param, with their defaults."""
        return {
            p.name: p.default
            for p in sorted(self.flow.parameters(), key=lambda p: p.name)
            if p.name != self.input_parameter
        }

    def read_input(self, path: str | Path) -> str:
        """The checked value of the input parameter from a file; UserError if unusable."""
        try:
            text = read_input_file(path)
            if self.validate_input is not None:
                self.validate_input(text)
        except StructureError as error:
            raise UserError(f"{path}: {error}") from None
        return text

    def parse_params(self, assignments: tuple[str, ...] | list[str]) -> dict:
        """``["fmax=0.01", ...]`` -> typed values, checked against the flow's parameters."""
        defaults = self.parameter_defaults()
        values = {}
        for assignment in assignments:
            key, sep, raw = assignment.partition("=")
            key = key.strip()
            if not sep or not key:
                raise UserError(f"--param {assignment!r}: expected KEY=VALUE, e.g. fmax=0.02")
            if key not in defaults:
                known = ", ".join(defaults) or "none"
                raise UserError(f"--param {key}: {self.name} has no such parameter (has: {known})")
            values[key] = _coerce(key, raw, defaults[key])
        return values

    def build_runs(self, inputs, assignments) -> list[tuple[str, dict]]:
        """(label, parameters) for each flow run; everything checked before anything runs."""
        params = {**self.parameter_defaults(), **self.parse_params(assignments)}
        if self.input_parameter is None:
            if inputs:
                raise UserError(f"{self.name} takes no input files (got {len(inputs)})")
            return [(self.name, params)]
        if not inputs:
            raise UserError(f"{self.name} needs at least one input: {self.input_help}")
        return [
            (str(path), {**params, self.input_parameter: self.read_input(path)}) for path in inputs
        ]


def _coerce(key: str, raw: str, default):
    kind = type(default) if default is not None else str
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        return kind(raw)
    except ValueError:
        raise UserError(f"--param {key}={raw!r}: expected a {kind.__name__}") from None


def _check_emt_structure(text: str) -> None:
    parse_poscar(text, emt.EMT_ELEMENTS)


WORKFLOWS = {
    workflow.name: workflow
    for workflow in (
        Workflow(
            relaxation_emt,
            "Relax atomic positions with ASE's EMT potential and BFGS; saves energy and structure.",
            input_parameter="structure",
            input_help="POSCAR files of Al, Cu, Ag, Au, Ni, Pd, Pt, C, H, N, O structures",
            validate_input=_check_emt_structure,
        ),
        Workflow(
            static_energy_emt,
            "Energy and forces of a structure as given, with ASE's EMT potential.",
            input_parameter="structure",
            input_help="POSCAR files of Al, Cu, Ag, Au, Ni, Pd, Pt, C, H, N, O structures",
            validate_input=_check_emt_structure,
        ),
        Workflow(smoke, "Health check: squares n numbers on the workers and saves one row each."),
    )
}


def get_workflow(name: str) -> Workflow:
    try:
        return WORKFLOWS[name]
    except KeyError:
        raise UserError(
            f"unknown workflow {name!r}; choose one of: {', '.join(sorted(WORKFLOWS))}"
        ) from None


def _executor_from_env():
    """In a flow-run pod, SIMMATE_DASK_ADDRESS names the cluster's Dask scheduler."""
    address = os.environ.get(DASK_ADDRESS_ENV)
    if not address:
        return None  # Prefect's configured default executor
    from prefect.executors import DaskExecutor

    return DaskExecutor(address=address)


for _workflow in WORKFLOWS.values():
    _workflow.flow.executor = _executor_from_env()
