"""The workflows by name: what each computes, its version, its inputs and checked parameters.

No Prefect here (the Flow objects are built in :mod:`simmate_k8s.flows.library`), so the CLI
can check inputs and look up finished work without importing Prefect or Dask.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simmate_k8s.errors import InputError
from simmate_k8s.flows import emt


@dataclass(frozen=True)
class Param:
    """A workflow parameter with the range it must lie in (checked before anything runs)."""

    name: str
    default: int | float
    help: str
    minimum: float | None = None
    maximum: float | None = None
    above_minimum: bool = False  # the minimum itself is not allowed (e.g. fmax > 0)
    makes_inputs: bool = False  # shapes the batch (smoke's n), not the work of one item

    @property
    def kind(self) -> type:
        return type(self.default)

    def check(self, value: Any) -> int | float:
        """The value as this parameter's type, or InputError saying what range it needs."""
        kind = self.kind
        if isinstance(value, str):
            try:
                value = kind(value.strip())
            except ValueError:
                raise InputError(f"--param {self.name}={value!r}: expected {self._expected()}"
                                 ) from None
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                kind is int and not float(value).is_integer()):
            raise InputError(f"--param {self.name}={value!r}: expected {self._expected()}")
        value = kind(value)
        if not math.isfinite(value) or (self.minimum is not None and (
                value < self.minimum or self.above_minimum and value == self.minimum)) or (
                self.maximum is not None and value > self.maximum):
            raise InputError(f"--param {self.name}={value}: expected {self._expected()}")
        return value

    def _expected(self) -> str:
        what = "a whole number" if self.kind is int else "a finite number"
        if self.minimum is not None:
            what += f" {'>' if self.above_minimum else '>='} {self.minimum:g}"
        if self.maximum is not None:
            what += f" and <= {self.maximum:g}"
        return what


@dataclass(frozen=True)
class Workflow:
    name: str
    version: str  # bump when the same inputs would give different results
    summary: str
    compute: Callable[..., dict]  # (data, **parameters, progress=callable) -> result
    params: tuple[Param, ...] = ()
    input_help: str = ""  # empty: the workflow takes no input files
    supported_elements: frozenset[str] | None = None
    generate_inputs: Callable[[dict], list[dict]] | None = None  # items made from parameters

    @property
    def takes_files(self) -> bool:
        return bool(self.input_help)

    def parameter_defaults(self) -> dict[str, int | float]:
        return {p.name: p.default for p in self.params}

    def compute_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """What each item is computed with (and keyed by)."""
        return {p.name: parameters[p.name] for p in self.params if not p.makes_inputs}

    def check_parameters(self, values: dict[str, Any]) -> dict[str, int | float]:
        """All parameters (defaults filled in), each checked; InputError for unknown ones."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(values) - set(known))
        if unknown:
            names = ", ".join(known) or "none"
            raise InputError(f"--param {unknown[0]}: {self.name} has no such parameter "
                             f"(has: {names})")
        return {name: p.check(values.get(name, p.default)) for name, p in known.items()}

    def parse_assignments(self, assignments) -> dict[str, Any]:
        """``["fmax=0.01", ...]`` -> {name: raw text}; checked by :meth:`check_parameters`."""
        raw = {}
        for assignment in assignments:
            key, sep, value = assignment.partition("=")
            key = key.strip()
            if not sep or not key:
                raise InputError(f"--param {assignment!r}: expected KEY=VALUE, e.g. fmax=0.02")
            raw[key] = value
        return raw


# --- the smoke workflow: a health check of scheduler, workers and results database ------------


def square(data: int, delay: float = 0.0, fail_every: int = 0, progress=None) -> dict:
    if delay:
        time.sleep(delay)
    if fail_every and data % fail_every == fail_every - 1:  # exercises the failure path for real
        raise RuntimeError(f"item {data} fails on purpose (fail_every={fail_every})")
    return {"i": data, "square": data * data}


def smoke_inputs(parameters: dict) -> list[dict]:
    return [{"name": f"square-{i}", "data": i} for i in range(parameters["n"])]


MAX_SMOKE_ITEMS = 100_000
EMT_INPUT_HELP = "POSCAR files (or directories or globs of them) of " + ", ".join(
    sorted(emt.EMT_ELEMENTS)) + " structures"
FMAX = Param("fmax", 0.05, "stop when every force is below this (eV/Å)",
             minimum=0, maximum=100, above_minimum=True)
MAX_STEPS = Param("max_steps", 500, "most optimizer steps", minimum=1, maximum=100_000)

WORKFLOWS = {
    workflow.name: workflow
    for workflow in (
        Workflow(
            "relaxation_emt", "1",
            "Relax atomic positions with ASE's EMT potential and BFGS; saves energy and structure.",
            emt.relax, (FMAX, MAX_STEPS), EMT_INPUT_HELP, emt.EMT_ELEMENTS,
        ),
        Workflow(
            "static_energy_emt", "1",
            "Energy and forces of a structure as given, with ASE's EMT potential.",
            emt.static_energy, (), EMT_INPUT_HELP, emt.EMT_ELEMENTS,
        ),
        Workflow(
            "smoke", "1",
            "Health check: squares n numbers on the workers and saves one row each.",
            square,
            (Param("n", 10, "how many items", minimum=1, maximum=MAX_SMOKE_ITEMS,
                   makes_inputs=True),
             Param("delay", 0.0, "seconds each item sleeps", minimum=0, maximum=3600),
             Param("fail_every", 0, "make every k-th item fail (0: none)", minimum=0,
                   maximum=MAX_SMOKE_ITEMS)),
            generate_inputs=smoke_inputs,
        ),
    )
}


def get_workflow(name: str) -> Workflow:
    try:
        return WORKFLOWS[name]
    except KeyError:
        raise InputError(
            f"unknown workflow {name!r}; choose one of: {', '.join(sorted(WORKFLOWS))}"
        ) from None
