"""``simmate-k8s values``: write validated Helm values for a target (imports only click)."""

import click

from simmate_k8s.values import PROFILES


@click.command("values")
@click.option(
    "--profile",
    type=click.Choice(PROFILES),
    help="Target platform: storage class, services, resources, node pools.",
)
@click.option(
    "-f",
    "--values",
    "files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Values file merged over the profile (repeatable, later wins).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY.PATH=VALUE",
    help="Set one value, read as YAML (repeatable), e.g. --set dask.autoscaler.maximum=8.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    help="Write here instead of stdout (written only when valid).",
)
def values(profile, files, sets, output):
    """Write validated Helm values for charts/simmate.

    Layers a target profile, then each -f file, then each --set, and checks the result against
    the chart's values model (the same model that writes values.schema.json). Invalid values
    print one line and exit with code 2; nothing is written.
    """
    import os
    import tempfile
    from pathlib import Path

    from simmate_k8s.errors import UserError
    from simmate_k8s.values.render import ValuesError, build_values, to_yaml

    try:
        text = to_yaml(build_values(profile, tuple(Path(f) for f in files), sets), profile)
    except ValuesError as error:
        raise UserError(str(error)) from None
    if output == "-":
        click.echo(text, nl=False)
        return
    target = Path(output)
    try:
        fd, tmp = tempfile.mkstemp(
            dir=target.parent if str(target.parent) else ".",
            prefix=f".{target.name}.",
            suffix=".tmp",
        )
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except OSError as error:
        raise UserError(f"cannot write {output}: {error.strerror}") from None
    click.echo(f"wrote {output}", err=True)
