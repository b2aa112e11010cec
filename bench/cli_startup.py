"""CLI start-up: ``simmate-k8s --help`` vs. ``prefect --help`` vs. ``python -c pass``.

Whole-process wall time of each command (interpreter start, imports, output, exit), run in
turn so background load hits all alike; median, min and max.

    python bench/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys

import _common  # bench/ is on sys.path: scripts run as `python bench/NAME.py`

TITLE = "CLI start-up (whole-process wall time)"
TARGET_S = 0.10


def commands() -> dict[str, list[str]]:
    return {
        "simmate-k8s --help": [str(_common.BIN / "simmate-k8s"), "--help"],
        "prefect --help": [str(_common.BIN / "prefect"), "--help"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }


def run(runs: int = 15) -> dict:
    env = _common.quiet_env()
    times: dict[str, list[float]] = {name: [] for name in commands()}
    for command in commands().values():  # warm the page cache once
        _common.wall_times(command, 1, env=env)
    for _ in range(runs):
        for name, command in commands().items():
            times[name] += _common.wall_times(command, 1, env=env)
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratios = [_common.ratio_row("`simmate-k8s --help` median", medians["simmate-k8s --help"],
                                TARGET_S, at_most=True, unit=" s")]
    return {"title": TITLE, "times_s": times, "median_s": medians, "ratios": ratios,
            "runs": runs}


def markdown(results: dict) -> str:
    base = results["median_s"]["python -c pass"]
    rows = []
    for name, values in results["times_s"].items():
        median = results["median_s"][name]
        rows.append([f"`{name}`", f"{median:.3f}", f"{min(values):.3f} – {max(values):.3f}",
                     len(values), f"{median - base:+.3f}"])
    table = _common.markdown_table(
        ["command", "wall s (median)", "min – max", "runs", "vs. `python -c pass`"], rows)
    prefect = results["median_s"]["prefect --help"] / results["median_s"]["simmate-k8s --help"]
    return (f"{table}\n\n{_common.ratio_table(results['ratios'], unit=' s')}\n\n"
            f"`prefect --help` takes {prefect:.1f}× as long as `simmate-k8s --help`.")


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    results = run(parser.parse_args().runs)
    _common.print_section(TITLE, markdown(results))
    return results


if __name__ == "__main__":
    main()
