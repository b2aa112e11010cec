"""From command-line arguments to a checked batch: paths, directories and globs to input
files, files to checked structures, ``--param`` to checked parameters, and each item's key.

Everything a client can check is checked here, before anything is submitted; the flow's plan
task runs the same checks again for runs started elsewhere (e.g. the Prefect UI).
"""

from __future__ import annotations

import glob
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simmate_k8s import identity
from simmate_k8s.errors import InputError
from simmate_k8s.flows.registry import Workflow
from simmate_k8s.flows.structures import (
    LARGE_STRUCTURE_ATOMS,
    StructureError,
    check_poscar,
    read_input_file,
)

GLOB_CHARS = set("*?[")


@dataclass
class Batch:
    workflow: Workflow
    parameters: dict[str, Any]
    items: list[dict]  # {"position", "name", "data", "digest", "key"}, in input order
    warnings: list[str] = field(default_factory=list)
    part: bool = False  # one of several batches that split() made

    def inputs(self) -> list[dict] | None:
        """What travels as the flow's ``inputs`` parameter: None when the flow makes the items
        itself from the parameters (smoke's n), unless this batch is only a part of them."""
        if not self.workflow.takes_files and not self.part:
            return None
        return [{"name": item["name"], "data": item["data"]} for item in self.items]

    def rename(self, names: list[str]) -> None:
        """Record the items under the names their submitter gave them (a Job's mounted files
        are named by the Job, not by the user)."""
        for item, name in zip(self.items, names, strict=True):
            item["name"] = name

    def split(self, size: int | None) -> list[Batch]:
        """Batches of at most ``size`` items (None: one batch)."""
        if not size or size >= len(self.items):
            return [self]
        return [Batch(self.workflow, self.parameters,
                      [{**item, "position": index} for index, item in
                       enumerate(self.items[start:start + size])], part=True)
                for start in range(0, len(self.items), size)]


@dataclass
class BatchRun:
    """One batch as one flow run (run here, or submitted)."""

    batch: Batch
    batch_id: str
    flow_run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: object = None  # Prefect's final flow-run state, once it ran
    error: str = ""  # the first failed task's message (e.g. the plan refused the inputs)


def expand_paths(arguments) -> list[str]:
    """Files as given; a directory gives its files (sorted, not hidden); a pattern that is not
    a file is expanded as a glob (quoted globs work where the shell did not expand them)."""
    paths: list[str] = []
    for argument in map(str, arguments):
        path = Path(argument)
        if path.is_dir():
            files = sorted(str(p) for p in path.iterdir()
                           if p.is_file() and not p.name.startswith("."))
            if not files:
                raise InputError(f"{argument}: the directory has no input files")
            paths.extend(files)
        elif not path.exists() and GLOB_CHARS & set(argument):
            matches = sorted(m for m in glob.glob(argument) if Path(m).is_file())
            if not matches:
                raise InputError(f"{argument}: no files match this pattern")
            paths.extend(matches)
        else:
            paths.append(argument)
    return paths


def check_data(workflow: Workflow, name: str, data: Any) -> list[str]:
    """InputError unless the item can be computed; returns warnings (e.g. a large structure)."""
    if not workflow.takes_files:
        if isinstance(data, bool) or not isinstance(data, int):
            raise InputError(f"{name}: expected a whole number")
        return []
    if not isinstance(data, str):
        raise InputError(f"{name}: expected POSCAR text")
    try:
        summary = check_poscar(data, workflow.supported_elements)
    except StructureError as error:
        raise InputError(f"{name}: {error}") from None
    if summary.natoms >= LARGE_STRUCTURE_ATOMS:
        return [f"{name}: {summary.natoms:,} atoms ({summary.formula}); a large structure "
                "takes long and needs memory: progress is shown while it runs"]
    return []


def make_items(workflow: Workflow, parameters: dict, inputs: list[dict]) -> list[dict]:
    """Each input with its position, content digest and key (workflow, version, content,
    parameters): the identity that finished work is found again by."""
    items = []
    parameters = workflow.compute_parameters(parameters)
    for position, entry in enumerate(inputs):
        digest = identity.input_digest(entry["data"])
        items.append({"position": position, "name": str(entry["name"]), "data": entry["data"],
                      "digest": digest,
                      "key": identity.item_key(workflow.name, workflow.version, digest,
                                              parameters)})
    return items


def from_arguments(workflow: Workflow, arguments, assignments) -> Batch:
    """The checked batch for ``run``/``submit``: InputError (one line) if anything is wrong."""
    parameters = workflow.check_parameters(workflow.parse_assignments(assignments))
    if not workflow.takes_files:
        if arguments:
            raise InputError(f"{workflow.name} takes no input files (got {len(arguments)})")
        inputs = workflow.generate_inputs(parameters)
        return Batch(workflow, parameters, make_items(workflow, parameters, inputs))
    if not arguments:
        raise InputError(f"{workflow.name} needs at least one input: {workflow.input_help}")
    inputs, warnings = [], []
    for path in expand_paths(arguments):
        try:
            text = read_input_file(path)
        except StructureError as error:
            raise InputError(f"{path}: {error}") from None
        warnings += check_data(workflow, path, text)
        inputs.append({"name": path, "data": text})
    return Batch(workflow, parameters, make_items(workflow, parameters, inputs), warnings)


def from_flow_parameters(workflow: Workflow, inputs: list | None, parameters: dict) -> Batch:
    """The same checks for a flow run's own parameters (a run started from the Prefect UI)."""
    parameters = workflow.check_parameters(parameters)
    if not workflow.takes_files:
        inputs = inputs or workflow.generate_inputs(parameters)  # a split batch sends its part
    elif not inputs:
        raise InputError(f"{workflow.name} needs at least one input: {workflow.input_help}")
    for entry in inputs:
        if not isinstance(entry, dict) or "name" not in entry or "data" not in entry:
            raise InputError("inputs: expected a list of {\"name\": ..., \"data\": ...}")
        check_data(workflow, entry["name"], entry["data"])
    return Batch(workflow, parameters, make_items(workflow, parameters, inputs))
