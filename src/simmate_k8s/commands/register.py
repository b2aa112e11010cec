"""``simmate-k8s register``: every workflow, registered with Prefect Server.

Only click is imported at module level.
"""

from __future__ import annotations

import click

from simmate_k8s.commands.options import project_option


@click.command()
@project_option
@click.option("--image", metavar="IMAGE", default=None,
              help="Image the flow-run Jobs run [default: the image of the chart's job "
                   "templates]. Pin a tag.")
@click.option("--label", "labels", multiple=True, metavar="LABEL",
              help="Agent label for the flows; repeatable (the agent must carry them all).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def register(project, image, labels, as_json):
    """Register every workflow with Prefect Server.

    Creates the project if needed; each flow gets Module storage (the flows live in the
    image) and a KubernetesRun run config. Re-running is safe: a flow whose definition,
    image and labels are unchanged keeps its version.
    """
    from simmate_k8s import jobs, server, server_config
    from simmate_k8s.commands.output import print_json, print_table

    # No --image: the run config names none, so each Job runs the image of the agent's job
    # template, i.e. whatever the chart was installed with (one source of truth).
    jobs.check_pinned(image)
    cfg = server_config.load()
    project = project or cfg.project
    session = server.connect(cfg)
    results = server.register(session, project, image, list(labels))
    if as_json:
        print_json({"project": project, "image": image, "flows": [
            {"name": r.name, "flow_id": r.flow_id, "version": r.version, "changed": r.changed,
             "labels": r.labels} for r in results]})
        return
    print_table(["FLOW", "VERSION", "CHANGE", "FLOW ID"], [
        [r.name, r.version, "registered" if r.changed else "unchanged", r.flow_id]
        for r in results])
    changed = sum(r.changed for r in results)
    click.echo(f"project {project}: {changed} of {len(results)} flows registered "
               f"({len(results) - changed} unchanged), image "
               f"{image or 'from the agent job template'}", err=True)
