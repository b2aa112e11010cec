"""``simmate-k8s flows``: the workflows, their inputs and parameters.

Only click is imported at module level; the registry is imported when the command runs.
"""

from __future__ import annotations

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def flows(as_json):
    """List the workflows, their inputs and parameters (with the ranges they must lie in)."""
    from simmate_k8s.commands.output import print_json, print_table
    from simmate_k8s.flows.registry import WORKFLOWS

    if as_json:
        print_json({
            name: {"summary": w.summary, "version": w.version,
                   "input": "files" if w.takes_files else None,
                   "parameters": {p.name: {"default": p.default, "expected": p._expected(),
                                           "help": p.help} for p in w.params}}
            for name, w in sorted(WORKFLOWS.items())
        })
        return
    print_table(
        ["FLOW", "INPUT", "PARAMETERS (defaults)", "WHAT IT DOES"],
        [
            [name, "files" if w.takes_files else "-",
             " ".join(f"{k}={v}" for k, v in w.parameter_defaults().items()) or "-", w.summary]
            for name, w in sorted(WORKFLOWS.items())
        ],
    )
