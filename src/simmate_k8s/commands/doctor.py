"""``simmate-k8s doctor``: check everything a run needs and say what to fix (checks in
:mod:`simmate_k8s.doctor`)."""

from __future__ import annotations

import re

import click

RELEASE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@click.command()
@click.option("--release", metavar="NAME",
              help="The Helm release to check in Kubernetes (without it, those checks are "
                   "skipped).")
@click.option("-n", "--namespace", metavar="NS",
              help="The release's namespace (default: the kube context's).")
@click.option("--context", metavar="CTX", help="The kube context (default: the current one).")
@click.option("--scheduler", metavar="ADDRESS",
              help="The Dask scheduler to check (default: SIMMATE_DASK_ADDRESS).")
@click.option("--no-prefect", is_flag=True,
              help="Skip the Prefect Server checks (for `submit --backend job` only teams).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=5.0,
              show_default=True, help="Seconds each connection may take.")
@click.option("--json", "as_json", is_flag=True, help="The rows as JSON.")
def doctor(release, namespace, context, scheduler, no_prefect, timeout, as_json):
    """Check the cluster, scheduler, workers, results database and Prefect Server.

    One row per check: ok, FAIL (with what is wrong and the command that fixes it) or
    skipped (with why). Exits 1 if any check failed, else 0.
    """
    from simmate_k8s import doctor as checks
    from simmate_k8s.commands.output import print_json, print_table
    from simmate_k8s.errors import UserError

    if release is not None and (len(release) > 53 or not RELEASE_NAME.fullmatch(release)):
        raise UserError(f"--release {release!r}: a Helm release name (lowercase letters, "
                        "digits and '-', at most 53 characters)")
    if namespace is not None and (len(namespace) > 63 or not RELEASE_NAME.fullmatch(namespace)):
        raise UserError(f"--namespace {namespace!r}: a Kubernetes namespace (lowercase "
                        "letters, digits and '-', at most 63 characters)")
    if release and namespace is None:
        from simmate_k8s import jobs

        namespace = jobs.default_namespace(context)
    rows = checks.run(release=release, namespace=namespace, context=context,
                      scheduler=scheduler, prefect=not no_prefect, timeout=timeout)
    if as_json:
        print_json([row.as_dict() for row in rows])
    else:
        print_table(["CHECK", "STATUS", "FOUND / WHAT IS WRONG", "FIX"],
                    [[r.check, r.status, r.detail, r.fix] for r in rows])
    if checks.failed(rows):
        raise SystemExit(1)
