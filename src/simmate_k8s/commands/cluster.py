"""Commands that talk to a cluster: Prefect Server v1 (config, register, submit, status, logs)
or, with ``submit --backend job``, the Kubernetes API directly.

Only click is imported at module level; Prefect and the Kubernetes client are imported inside
the commands, so ``simmate-k8s --help`` stays fast.
"""

from __future__ import annotations

import sys

import click

from simmate_k8s.commands.local import batch_options
from simmate_k8s.errors import UserError

# --- config ------------------------------------------------------------------------------------


@click.group()
def config():
    """Where Prefect Server lives, stored per user.

    \b
    Precedence (highest first):
      api-url  PREFECT__CLOUD__API or PREFECT__SERVER__ENDPOINT > config file > default
      ui-url   PREFECT__SERVER__UI__ENDPOINT > config file > derived from api-url
      project  SIMMATE_PROJECT > config file > "simmate"
    """


@config.command("set")
@click.argument("key", type=click.Choice(["api-url", "ui-url", "project"]))
@click.argument("value")
@click.option("--basic-auth", metavar="USER[:PASSWORD]",
              help="HTTP basic auth for api-url (an ingress with auth); asks for the "
                   "password when only USER is given.")
@click.option("--header", "headers", multiple=True, metavar="NAME=VALUE",
              help="Send this header with every API request (api-url only); repeatable.")
def config_set(key, value, basic_auth, headers):
    """Store a setting: api-url URL, ui-url URL or project NAME.

    \b
    Examples:
      simmate-k8s config set api-url http://localhost:4200/graphql
      simmate-k8s config set api-url https://prefect.example.com/graphql --basic-auth alice
      simmate-k8s config set project materials

    Setting api-url replaces the credentials stored with the previous one. The file is
    written with mode 0600.
    """
    from simmate_k8s import server_config

    if key != "api-url" and (basic_auth or headers):
        raise UserError("--basic-auth and --header go with `config set api-url`")
    if basic_auth is not None and ":" not in basic_auth:
        basic_auth += ":" + click.prompt(f"password for {basic_auth}", hide_input=True)
    auth = server_config.auth_headers(basic_auth, headers)
    path = server_config.set_value(key, value, auth)
    shown = server_config.redact_url(value) if key.endswith("url") else value
    click.echo(f"{key} = {shown}" + (f" (+ {len(auth)} header(s))" if auth else "")
               + f"  [{path}]")


@config.command("unset")
@click.argument("key", type=click.Choice(["api-url", "ui-url", "project"]))
def config_unset(key):
    """Remove a stored setting (api-url also removes its credentials)."""
    from simmate_k8s import server_config

    path = server_config.unset_value(key)
    click.echo(f"{key} unset  [{path}]")


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def config_show(as_json):
    """Show the settings in effect and where each comes from (secrets redacted)."""
    from simmate_k8s import server_config
    from simmate_k8s.commands.output import print_json, print_table

    shown = server_config.describe(server_config.load())
    if as_json:
        print_json(shown)
        return
    print_table(["SETTING", "VALUE", "SOURCE"], [
        [key, shown[key]["value"], shown[key]["source"]] for key in ("api-url", "ui-url", "project")
    ] + [[f"header {name}", value, "file"] for name, value in shown["headers"].items()])
    click.echo(f"config file: {shown['config_file']}")


# --- register ----------------------------------------------------------------------------------


def _check_pinned(image: str | None) -> None:
    """An image given by the user must name a tag or digest, and not latest."""
    if image and (image.endswith(":latest")
                  or ":" not in image.rsplit("/", 1)[-1] and "@" not in image):
        raise UserError(f"--image {image!r}: pin a tag (e.g. simmate-k8s:0.1.0), not latest")


def _project_option(function):
    return click.option(
        "--project", metavar="NAME",
        help="Prefect project [default: `config set project`, or simmate].")(function)


@click.command()
@_project_option
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
    from simmate_k8s import server, server_config
    from simmate_k8s.commands.output import print_json, print_table

    # No --image: the run config names none, so each Job runs the image of the agent's job
    # template, i.e. whatever the chart was installed with (one source of truth).
    _check_pinned(image)
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


# --- submit ------------------------------------------------------------------------------------


@click.command()
@click.argument("flow_name", metavar="FLOW")
@click.argument("inputs", nargs=-1, metavar="[INPUT]...")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="Set a workflow parameter (see `simmate-k8s flows`); repeatable.")
@batch_options
@click.option("--preset", default=None, metavar="NAME",
              help="Resources of the flow-run Job: a preset of the release's "
                   "agent.jobPresets (default, small, large unless the release defines others).")
@click.option("--run-name", metavar="NAME",
              help="Name the flow run (batches get NAME-1, NAME-2, ...; with --backend job "
                   "it names the Job) [default: the first input's file name].")
@click.option("--watch", is_flag=True,
              help="Follow states and logs to the end; exit 0 on Success, 1 otherwise.")
@click.option("--json", "as_json", is_flag=True, help="Print the created runs as JSON.")
@click.option("--backend", type=click.Choice(["prefect", "job"]), default="prefect",
              show_default=True, help="Prefect Server flow runs, or a plain Kubernetes Job.")
@click.option("--label", "labels", multiple=True, metavar="LABEL",
              help="[prefect] Add an agent label to the runs; repeatable.")
@_project_option
@click.option("--idempotency-key", metavar="KEY",
              help="[prefect] Submitting again with the same key returns the same run "
                   "(batches use KEY-1, KEY-2, ...).")
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True,
              help="[prefect] Flow runs created at once.")
@click.option("--namespace", "-n", metavar="NS",
              help="[job] Namespace of the release [default: the kube context's].")
@click.option("--context", "kube_context", metavar="NAME",
              help="[job] kubeconfig context [default: the current one].")
@click.option("--release", default="simmate", show_default=True, metavar="NAME",
              help="[job] Helm release whose Dask scheduler runs the tasks.")
@click.option("--image", metavar="IMAGE",
              help="[job] Project image [default: the release's, from its job template].")
@click.option("--job-templates", "job_templates", metavar="FILE",
              help="[job] The release's job-templates ConfigMap as YAML (`kubectl get configmap "
                   "-l app.kubernetes.io/component=job-templates -o yaml`) instead of reading "
                   "it from the cluster; with --dry-run no cluster is needed.")
@click.option("--dry-run", is_flag=True,
              help="[job] Print the objects as YAML instead of creating them.")
def submit(flow_name, inputs, params, batch_size, rerun, preset, run_name, watch, as_json,
           backend, labels, project, idempotency_key, concurrency, namespace, kube_context,
           release, image, job_templates, dry_run):
    """Submit FLOW on every INPUT to the cluster as one batch: one flow run (and one Job).

    INPUT is a POSCAR file, a directory of them, or a quoted glob. Every input is checked
    here first: a bad file creates nothing. On the cluster, items already completed in the
    results database are skipped (--rerun computes them again); --batch-size splits the
    inputs into several flow runs.

    \b
    Examples:
      simmate-k8s submit relaxation_emt POSCAR --watch
      simmate-k8s submit relaxation_emt structures/ --preset large --json
      simmate-k8s submit relaxation_emt 'structures/*.POSCAR' --batch-size 500
      simmate-k8s submit smoke --param n=100 --label gpu
      simmate-k8s submit relaxation_emt structures/ --backend job --watch
    """
    from simmate_k8s.flows import inputs as batch_inputs
    from simmate_k8s.flows.registry import get_workflow

    workflow = get_workflow(flow_name)
    # every input checked before anything is created
    batch = batch_inputs.from_arguments(workflow, inputs, params)
    for warning in batch.warnings:
        click.echo(f"warning: {warning}", err=True)
    parts = batch.split(batch_size)
    if backend == "job":
        used = [name for name, value in (("--label", labels), ("--project", project),
                                         ("--idempotency-key", idempotency_key)) if value]
        if used:
            raise UserError(f"{', '.join(used)}: only with --backend prefect")
        _submit_job(workflow, parts, params, rerun, preset or "default", run_name, watch,
                    as_json, namespace, kube_context, release, image, job_templates, dry_run)
    else:
        used = [name for name, value in (("--namespace", namespace), ("--context", kube_context),
                                         ("--image", image), ("--job-templates", job_templates),
                                         ("--dry-run", dry_run)) if value]
        if used:
            raise UserError(f"{', '.join(used)}: only with --backend job "
                            "(the image of Prefect runs is set by `register --image`)")
        _submit_prefect(workflow, parts, rerun, preset, run_name, watch, as_json, list(labels),
                        project, idempotency_key, concurrency)


def _flow_parameters(part, rerun: bool) -> tuple[str, dict]:
    """(batch id, the flow run's parameters) for one batch."""
    import uuid

    batch_id = str(uuid.uuid4())
    parameters = {**part.parameters, "batch_id": batch_id, "rerun": rerun, "chunk_size": 1}
    parameters["inputs"] = part.inputs()
    return batch_id, parameters


def _submit_prefect(workflow, parts, rerun, preset, run_name, watch, as_json, labels, project,
                    idempotency_key, concurrency):
    from simmate_k8s import server, server_config
    from simmate_k8s.commands.output import print_json, print_table, progress

    cfg = server_config.load()
    project = project or cfg.project
    session = server.connect(cfg)
    flow = server.resolve_flow(session, workflow.name, project)
    run_labels, run_config = server.run_settings(flow, labels, preset)
    batches = [_flow_parameters(part, rerun) for part in parts]
    runs = [(part.items[0]["name"] if workflow.takes_files else workflow.name, parameters)
            for part, (_, parameters) in zip(parts, batches, strict=True)]
    with progress(len(runs), "flow runs", show=len(runs) > 1) as bar:
        submitted = server.submit(
            session, flow, runs, labels=run_labels, run_config=run_config, run_name=run_name,
            idempotency_key=idempotency_key, concurrency=concurrency,
            on_done=lambda run: bar.update(1))

    def described(run, part, batch_id):
        return {"batch_id": batch_id, "items": len(part.items), "first_input": run.label,
                "flow_run_id": run.flow_run_id, "url": run.url, "flow": workflow.name,
                "flow_version": flow["version"]}

    entries = [described(run, part, batch_id) for run, part, (batch_id, _) in
               zip(submitted, parts, batches, strict=True)]
    if as_json and not watch:
        print_json(entries)
        return
    if not as_json:
        print_table(["BATCH", "ITEMS", "FLOW RUN", "URL"],
                    [[e["batch_id"], e["items"], e["flow_run_id"], e["url"]] for e in entries])
    if not watch:
        return
    final = _follow([r.flow_run_id for r in submitted], session,
                    names={e["flow_run_id"]: e["batch_id"][:8] for e in entries}
                    if len(submitted) > 1 else {}, err=as_json)
    if as_json:
        print_json([{**e, "state": final[e["flow_run_id"]]} for e in entries])
    _exit_from_states(final)


def _submit_job(workflow, parts, params, rerun, preset, run_name, watch, as_json, namespace,
                kube_context, release, image, job_templates, dry_run):
    from simmate_k8s import jobs
    from simmate_k8s.commands.output import print_json

    if not workflow.takes_files and len(parts) > 1:
        raise UserError(f"--batch-size: {workflow.name} makes its own items; with --backend job "
                        "submit it once per batch")
    for option, value in (("--release", release), ("--namespace", namespace)):
        if value is not None and (len(value) > 53 or not jobs.DNS_LABEL.fullmatch(value)):
            raise UserError(f"{option} {value!r}: lowercase letters, digits and '-' "
                            "(a Kubernetes name)")
    _check_pinned(image)
    if job_templates:
        namespace = namespace or jobs.default_namespace(kube_context)
        target = jobs.release_from_file(job_templates, release, namespace)
    else:
        namespace = namespace or jobs.kube_context(kube_context)[1]
        target = jobs.read_release(release, namespace, kube_context)
    target.template(preset)  # an unknown preset: one line, before anything is made
    specs = []
    for index, part in enumerate(parts):
        name = run_name if run_name is None or len(parts) == 1 else f"{run_name}-{index + 1}"
        batch_id, _ = _flow_parameters(part, rerun)
        specs.append(jobs.JobSpec(
            flow_name=workflow.name,
            inputs=jobs.input_files([(item["name"], item["data"]) for item in part.items])
            if workflow.takes_files else {},
            params=list(params) + (["--rerun"] if rerun else []),
            release=target, image=image, preset=preset,
            name=jobs.job_name(release, workflow.name, name), batch_id=batch_id,
            items=len(part.items)))
    if dry_run:
        objects = [obj for spec in specs for obj in (jobs.build_configmap(spec),
                                                      jobs.build_job(spec))]
        if as_json:
            print_json(objects)
        else:
            click.echo("# the ConfigMap gets an ownerReference to the Job once the Job exists")
            click.echo(jobs.to_yaml(objects), nl=False)
        return
    for spec in specs:
        jobs.create(spec, kube_context)
        if not as_json:
            click.echo(jobs.created_message(spec))
    if as_json:
        print_json([{"job": spec.name, "configmap": spec.configmap_name, "namespace": namespace,
                     "scheduler": spec.scheduler_address, "batch_id": spec.batch_id,
                     "items": spec.items} for spec in specs])
    if watch:
        succeeded = all([jobs.watch(spec, kube_context,
                                    echo=lambda line: click.echo(line, err=as_json))
                         for spec in specs])
        click.echo(f"{len(specs)} job(s) {'succeeded' if succeeded else 'failed'}", err=True)
        sys.exit(0 if succeeded else 1)


# --- status and logs ---------------------------------------------------------------------------


def _follow(run_ids, session, names, err=False):
    """Print states and logs as they come; returns {id: final state}."""
    from simmate_k8s import server

    def show(event):
        when = str(event.timestamp)[11:19]
        prefix = f"{names[event.flow_run_id]} | " if names else ""
        click.echo(f"{when} | {event.level:<7} | {prefix}{event.message}", err=err)

    try:
        return server.follow(session, run_ids, show)
    except KeyboardInterrupt:
        click.echo("stopped following; the runs go on. Check them with "
                   f"`simmate-k8s status {' '.join(run_ids)}`", err=True)
        sys.exit(130)


def _exit_from_states(final: dict) -> None:
    from simmate_k8s import server

    bad = {run_id: state for run_id, state in final.items() if state not in server.SUCCEEDED}
    for run_id, state in bad.items():
        click.echo(f"flow run {run_id} ended {state}", err=True)
    sys.exit(1 if bad else 0)


@click.command()
@click.argument("run_ids", nargs=-1, required=True, metavar="RUN_ID...")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(run_ids, as_json):
    """Show the state of flow runs."""
    from simmate_k8s import server, server_config
    from simmate_k8s.commands.output import print_json, print_table

    ids = server.check_run_ids(run_ids)
    session = server.connect(server_config.load())
    runs = server.flow_runs(session, ids)
    if as_json:
        print_json([{**run.to_dict(), "url": session.flow_run_url(run.id)} for run in runs])
        return
    print_table(["FLOW RUN", "NAME", "FLOW", "STATE", "STARTED", "ENDED", "MESSAGE"], [
        [run.id, run.name, f"{run.flow.name} v{run.flow.version}", run.state or "-",
         _time(run.start_time), _time(run.end_time), run.state_message or ""]
        for run in runs])


def _time(value) -> str:
    return str(value)[:19].replace("T", " ") if value else "-"


@click.command()
@click.argument("run_id", metavar="RUN_ID")
@click.option("--follow", "-f", is_flag=True,
              help="Keep streaming until the run ends; exit 0 on Success, 1 otherwise.")
def logs(run_id, follow):
    """Show the logs of a flow run (with --follow, until it ends)."""
    from simmate_k8s import server, server_config

    (flow_run_id,) = server.check_run_ids([run_id])
    session = server.connect(server_config.load())
    if not follow:
        server.flow_runs(session, [flow_run_id])  # one line for an unknown id
        follower = server.Follower(session, flow_run_id, states=False)
        for event in follower.poll():
            click.echo(f"{str(event.timestamp)[11:19]} | {event.level:<7} | {event.message}")
        return
    _exit_from_states(_follow([flow_run_id], session, names={}))
