"""`submit --backend job`: the Job is the release's own job template for the preset (as the real
chart renders it, for a release not named simmate), checked against the Kubernetes schemas, and
what the Job's `simmate-k8s run` makes of its command and its mounted inputs."""

import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from simmate_k8s import jobs
from simmate_k8s.errors import InputError, KubernetesError
from tests.chart import helpers as chart
from tests.conftest import EXAMPLES, run_cli

KUBERNETES_VERSIONS = ["1.29.0", "1.33.0"]
POSCARS = sorted(EXAMPLES.glob("*.POSCAR"))
RELEASE, NAMESPACE = "lab-a", "lab"
SHOW_ONLY = "templates/agent/job-templates.yaml"
# agent.jobPresets takes any DNS-label name: one more preset, with its own placement and deadline
GPU_VALUES = {"agent": {"jobPresets": {"gpu": {
    "resources": {"requests": {"cpu": "2", "memory": "8Gi"},
                  "limits": {"cpu": "4", "memory": "16Gi"}},
    "nodeSelector": {"accelerator": "gpu"},
    "activeDeadlineSeconds": 600}}}}


# --- the release, rendered by the real helm ------------------------------------------------------


def helm_template(*args) -> str:
    if not list((chart.CHART / "charts").glob("*.tgz")):
        chart.ensure_dependencies()
    return chart.helm("template", RELEASE, str(chart.CHART), "--namespace", NAMESPACE,
                      *map(str, args)).stdout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Paths of YAML files a user could pass to --job-templates: the job-templates ConfigMap
    (`helm template --show-only`), the same with the extra `gpu` preset, the release's whole
    manifest, and `kubectl get configmap -l ... -o yaml` (a List)."""
    directory = tmp_path_factory.mktemp("release")
    values = directory / "gpu-values.yaml"
    values.write_text(yaml.safe_dump(GPU_VALUES))
    texts = {"plain": helm_template("--show-only", SHOW_ONLY),
             "gpu": helm_template("--show-only", SHOW_ONLY, "-f", values),
             "manifest": helm_template()}
    (configmap,) = [d for d in yaml.safe_load_all(texts["plain"]) if d]
    texts["list"] = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [configmap]})
    paths = {}
    for key, text in texts.items():
        paths[key] = directory / f"{key}.yaml"
        paths[key].write_text(text)
    return paths


def configmap_of(path: Path) -> dict:
    """The release's job-templates ConfigMap in a rendered file."""
    (found,) = [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == "ConfigMap"
                and d["metadata"]["labels"].get("app.kubernetes.io/component") == "job-templates"]
    return found


def template(path: Path, preset: str) -> dict:
    return yaml.safe_load(configmap_of(path)["data"][f"{preset}.yaml"])


@pytest.fixture(scope="module")
def plain(rendered):
    return rendered["plain"]


@pytest.fixture(scope="module")
def release(plain):
    return jobs.release_from_file(str(plain), RELEASE, NAMESPACE)


# --- helpers -------------------------------------------------------------------------------------


def submit(env, *args):
    """`simmate-k8s submit ARGS` in this process (a subprocess costs seconds of imports)."""
    from click.testing import CliRunner

    from simmate_k8s.cli import cli

    keep = ("KUBECONFIG", "HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME")
    return CliRunner().invoke(cli, ["submit", *map(str, args)],
                              env={key: env[key] for key in keep})


def release_args(path):
    return ["--release", RELEASE, "-n", NAMESPACE, "--job-templates", path]


def dry_run(env, path, *args, inputs=POSCARS[:2], flow="relaxation_emt"):
    result = submit(env, flow, *inputs, "--backend", "job", "--dry-run", *release_args(path),
                    *args)
    assert result.exit_code == 0, (result.output, result.exception)
    return list(yaml.safe_load_all(result.stdout))


def refused(result, *fragments):
    """One line on stderr, exit 2, nothing printed or made."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("Error: ")
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result.stderr


def pairs(objects):
    """[(configmap, job), ...] in the order they were printed."""
    assert [o["kind"] for o in objects] == ["ConfigMap", "Job"] * (len(objects) // 2)
    return list(zip(objects[::2], objects[1::2], strict=True))


def option(args, name):
    assert args.count(name) == 1, args
    return args[args.index(name) + 1]


def env_of(container):
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names)), names
    return {e["name"]: e for e in container["env"]}


def mount(configmap, directory: Path) -> Path:
    """Write the ConfigMap's data as Kubernetes mounts it at /inputs."""
    directory.mkdir(parents=True)
    for key, text in configmap["data"].items():
        (directory / key).write_text(text)
    return directory


@pytest.fixture
def no_kube(cli_env, tmp_path):
    return {**cli_env, "KUBECONFIG": str(tmp_path / "missing-kubeconfig")}


# --- the objects ---------------------------------------------------------------------------------


@pytest.mark.parametrize("file, args, count", [
    ("plain", ["--preset", "large"], 2),
    ("plain", ["--batch-size", "1", "--rerun", "--param", "fmax=0.02"], 4),
    ("gpu", ["--preset", "gpu", "--image", "registry.example.com/team/simmate-k8s:1"], 2),
])
def test_objects_are_schema_valid(no_kube, rendered, file, args, count):
    objects = dry_run(no_kube, rendered[file], *args)
    assert len(objects) == count
    for obj in objects:
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("file, preset", [("plain", "default"), ("plain", "small"),
                                          ("plain", "large"), ("gpu", "gpu")])
def test_job_is_the_release_template_for_the_preset(no_kube, rendered, file, preset):
    """Everything the chart sets is the chart's: only the name, labels, command, inputs and
    Prefect's env differ from the template."""
    path = rendered[file]
    expected = template(path, preset)
    _, job = dry_run(no_kube, path, "--preset", preset)
    assert job["apiVersion"] == expected["apiVersion"] and job["kind"] == "Job"
    for key in ("backoffLimit", "ttlSecondsAfterFinished", "activeDeadlineSeconds"):
        assert job["spec"][key] == expected["spec"][key], key
    assert {k: v for k, v in job["spec"].items() if k != "template"} == {
        k: v for k, v in expected["spec"].items() if k != "template"}
    pod, chart_pod = job["spec"]["template"]["spec"], expected["spec"]["template"]["spec"]
    # the pod's security context, service account token, placement: as rendered
    assert {k: v for k, v in pod.items() if k not in ("containers", "volumes")} == {
        k: v for k, v in chart_pod.items() if k not in ("containers", "volumes")}
    assert pod["volumes"] == [*chart_pod["volumes"], {
        "name": "inputs",
        "configMap": {"name": job["metadata"]["name"] + "-inputs", "defaultMode": 0o444}}]
    (container,), (chart_container,) = pod["containers"], chart_pod["containers"]
    for key in ("name", "image", "imagePullPolicy", "resources", "securityContext"):
        assert container[key] == chart_container[key], key
    assert container["volumeMounts"] == [*chart_container["volumeMounts"], {
        "name": "inputs", "mountPath": "/inputs", "readOnly": True}]
    env, chart_env = env_of(container), env_of(chart_container)
    assert not [name for name in env if name.startswith("PREFECT__")]
    assert [name for name in chart_env if name.startswith("PREFECT__")]  # the chart's, dropped
    for name, entry in chart_env.items():
        if not name.startswith("PREFECT__"):
            assert env[name] == entry, name
    assert set(env) - set(chart_env) == {"PYTHONUNBUFFERED"}
    assert env["SIMMATE_JOB_PRESET"]["value"] == preset


def test_presets_have_the_chart_values(no_kube, rendered):
    """The rendered templates carry values.yaml's (and --set's) resources and deadlines."""
    chart_values = yaml.safe_load((chart.CHART / "values.yaml").read_text())["agent"]
    presets = {**chart_values["jobPresets"], **GPU_VALUES["agent"]["jobPresets"]}
    for preset, values in presets.items():
        _, job = dry_run(no_kube, rendered["gpu"], "--preset", preset)
        spec = job["spec"]
        assert spec["ttlSecondsAfterFinished"] == chart_values["jobTtlSeconds"]
        assert spec["activeDeadlineSeconds"] == (values["activeDeadlineSeconds"]
                                                 or chart_values["jobActiveDeadlineSeconds"])
        pod = spec["template"]["spec"]
        assert pod["containers"][0]["resources"] == values["resources"]
        assert pod.get("nodeSelector", {}) == values["nodeSelector"]


def test_job_runs_the_workflow_against_the_release_scheduler(no_kube, plain):
    configmap, job = dry_run(no_kube, plain, "--param", "fmax=0.02")
    address = configmap_of(plain)["data"]["scheduler-address"]
    assert (configmap["kind"], job["kind"]) == ("ConfigMap", "Job")
    assert job["metadata"]["namespace"] == configmap["metadata"]["namespace"] == NAMESPACE
    assert job["metadata"]["name"].startswith(f"{RELEASE}-relaxation-emt-")
    assert configmap["metadata"]["name"] == job["metadata"]["name"] + "-inputs"
    data = dict(configmap["data"])
    assert json.loads(data.pop("input-names.json")) == [str(p) for p in POSCARS[:2]]
    assert list(data.values()) == [p.read_text() for p in POSCARS[:2]]  # in input order
    assert configmap["immutable"] is True
    (container,) = job["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert "command" not in container  # the image's entrypoint runs the args
    assert args[:3] == ["simmate-k8s", "run", "relaxation_emt"]
    assert [a for a in args if a.startswith("/inputs/")] == [
        *(f"/inputs/{key}" for key in data), "/inputs/input-names.json"]
    assert option(args, "--address") == address
    assert env_of(container)["SIMMATE_DASK_ADDRESS"] == {"name": "SIMMATE_DASK_ADDRESS",
                                                         "value": address}
    assert option(args, "--param") == "fmax=0.02"
    assert option(args, "--input-names") == "/inputs/input-names.json"
    assert "--rerun" not in args and "--verbose" in args
    batch_id = option(args, "--batch-id")
    assert job["metadata"]["labels"]["simmate-k8s.io/batch"] == batch_id
    assert configmap["metadata"]["labels"]["simmate-k8s.io/batch"] == batch_id


def test_results_database_comes_from_the_release_secret(no_kube, plain):
    """`run` in the Job reads the results database like the chart's own flow-run Jobs: as the
    writer role, its password from the Secret the chart rendered for this release (expanded by
    Kubernetes into the URL, so it must come first), never a literal password."""
    _, job = dry_run(no_kube, plain)
    chart_env = env_of(template(plain, "default")["spec"]["template"]["spec"]["containers"][0])
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    ours = env_of(job["spec"]["template"]["spec"]["containers"][0])
    for name in ("SIMMATE_DB_PASSWORD", "SIMMATE_DATABASE_URL"):
        assert ours[name] == chart_env[name]
    assert ours["SIMMATE_DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"]
    assert ours["SIMMATE_DATABASE_URL"]["value"].startswith(
        "postgresql+psycopg://simmate_writer:$(SIMMATE_DB_PASSWORD)@")
    names = [variable["name"] for variable in env]
    assert names.index("SIMMATE_DB_PASSWORD") < names.index("SIMMATE_DATABASE_URL")


def test_labels_are_the_chart_s_plus_the_job_backend_s(no_kube, plain):
    configmap, job = dry_run(no_kube, plain, "--preset", "small")
    expected = template(plain, "small")
    batch_id = option(job["spec"]["template"]["spec"]["containers"][0]["args"], "--batch-id")
    backend = {"app.kubernetes.io/instance": RELEASE, "app.kubernetes.io/component": "flow-run",
               "app.kubernetes.io/managed-by": "simmate-k8s", "simmate-k8s.io/backend": "job",
               "simmate-k8s.io/flow": "relaxation-emt", "simmate-k8s.io/preset": "small",
               "simmate-k8s.io/batch": batch_id}
    for labels, chart_labels in (
            (job["metadata"]["labels"], expected["metadata"]["labels"]),
            (job["spec"]["template"]["metadata"]["labels"],
             expected["spec"]["template"]["metadata"]["labels"])):
        assert labels.items() >= backend.items()
        assert set(labels) >= set(chart_labels)
        assert {k: v for k, v in labels.items() if k not in backend} == {
            k: v for k, v in chart_labels.items() if k not in backend}
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    # what the chart's NetworkPolicy admits to PostgreSQL and the scheduler
    assert pod_labels["app.kubernetes.io/component"] == "flow-run"
    assert pod_labels["helm.sh/chart"] == expected["metadata"]["labels"]["helm.sh/chart"]
    assert configmap["metadata"]["labels"].items() >= backend.items()


def test_image_override(no_kube, plain):
    chart_container = template(plain, "default")["spec"]["template"]["spec"]["containers"][0]
    _, job = dry_run(no_kube, plain)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == chart_container["image"]
    assert env_of(container)["SIMMATE_IMAGE"] == env_of(chart_container)["SIMMATE_IMAGE"]
    image = "registry.example.com/team/simmate-k8s:1"
    _, job = dry_run(no_kube, plain, "--image", image)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == image != chart_container["image"]
    assert env_of(container)["SIMMATE_IMAGE"] == {"name": "SIMMATE_IMAGE", "value": image}
    assert container["resources"] == chart_container["resources"]


@pytest.mark.parametrize("image", ["simmate-k8s:latest", "simmate-k8s",
                                   "registry.example.com:5000/team/simmate-k8s"])
def test_latest_or_untagged_image_is_refused(no_kube, plain, image):
    result = submit(no_kube, "relaxation_emt", POSCARS[0], "--backend", "job", "--dry-run",
                    *release_args(plain), "--image", image)
    refused(result, "--image", "pin a tag")


@pytest.mark.parametrize("image", ["registry.example.com:5000/team/simmate-k8s:0.1.0",
                                   "simmate-k8s@sha256:" + "a" * 64])
def test_pinned_images_are_accepted(no_kube, plain, image):
    _, job = dry_run(no_kube, plain, "--image", image)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == image


def test_job_templates_from_a_manifest_or_a_kubectl_list(no_kube, rendered):
    """The same Job from the ConfigMap alone, the whole `helm template` manifest, or
    `kubectl get configmap -l ... -o yaml`."""
    def job_of(path):
        _, job = dry_run(no_kube, path, "--run-name", "same", "--preset", "large")
        for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
            labels.pop("simmate-k8s.io/batch")
        job["spec"]["template"]["spec"]["containers"][0]["args"][
            job["spec"]["template"]["spec"]["containers"][0]["args"].index("--batch-id") + 1] = ""
        return job

    plain_job = job_of(rendered["plain"])
    assert job_of(rendered["manifest"]) == plain_job == job_of(rendered["list"])


def test_unknown_preset_lists_the_release_presets(no_kube, rendered):
    result = submit(no_kube, "relaxation_emt", POSCARS[0], "--backend", "job", "--dry-run",
                    *release_args(rendered["plain"]), "--preset", "gpu")
    message = refused(result, "--preset 'gpu'", RELEASE)
    assert message.rstrip().endswith("default, large, small")
    result = submit(no_kube, "relaxation_emt", POSCARS[0], "--backend", "job", "--dry-run",
                    *release_args(rendered["gpu"]), "--preset", "huge")
    assert refused(result, "--preset 'huge'").rstrip().endswith("default, gpu, large, small")


def test_the_release_s_own_preset_is_accepted(no_kube, rendered):
    _, job = dry_run(no_kube, rendered["gpu"], "--preset", "gpu")
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"accelerator": "gpu"}
    assert pod["containers"][0]["resources"]["limits"] == {"cpu": "4", "memory": "16Gi"}
    assert job["metadata"]["labels"]["simmate-k8s.io/preset"] == "gpu"


def _scalar(tmp_path):
    path = tmp_path / "POSCAR"  # a POSCAR is a YAML string, not a mapping
    path.write_text(POSCARS[0].read_text())
    return path


@pytest.mark.parametrize("case, fragment", [
    ("other-release", "no job-templates ConfigMap of release 'lab-a'"),
    ("not-yaml", "not readable YAML"),
    ("binary", "not readable YAML"),
    ("missing", "not readable YAML"),
    ("a-job", "no job-templates ConfigMap"),
    ("no-scheduler", "scheduler-address"),
    ("scalar", "no job-templates ConfigMap"),
    ("broken-template", "is not a valid Job"),
])
def test_bad_job_templates_file_is_one_line(no_kube, rendered, tmp_path, case, fragment):
    plain_configmap = configmap_of(rendered["plain"])
    path = tmp_path / f"{case}.yaml"
    if case == "other-release":
        path.write_text(rendered["plain"].read_text().replace(RELEASE, "lab-b"))
    elif case == "not-yaml":
        path.write_text("scheduler-address: [tcp://unclosed\n")
    elif case == "binary":
        path.write_bytes(b"\xff\xfe\x00\x81")
    elif case == "a-job":
        path.write_text(yaml.safe_dump(template(rendered["plain"], "default")))
    elif case == "no-scheduler":
        del plain_configmap["data"]["scheduler-address"]
        path.write_text(yaml.safe_dump(plain_configmap))
    elif case == "scalar":
        path = _scalar(tmp_path)
    elif case == "broken-template":
        path = tmp_path / "broken.yaml"
        plain_configmap["data"]["default.yaml"] = "spec: [unclosed"
        path.write_text(yaml.safe_dump(plain_configmap))
    result = submit(no_kube, "relaxation_emt", POSCARS[0], "--backend", "job", "--dry-run",
                    *release_args(path))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    refused(result, fragment)


@pytest.mark.parametrize("args, fragment", [
    (["--release", "Lab_A"], "--release 'Lab_A'"),
    (["--release", "-lab"], "--release '-lab'"),
    (["--release", "a" * 54], "--release"),
    (["--namespace", "Lab"], "--namespace 'Lab'"),
    (["-n", "lab.a"], "--namespace 'lab.a'"),
])
def test_release_and_namespace_must_be_dns_labels(no_kube, plain, args, fragment):
    result = submit(no_kube, "relaxation_emt", POSCARS[0], "--backend", "job", "--dry-run",
                    "--job-templates", plain, *args)
    refused(result, fragment, "a Kubernetes name")


def test_dry_run_without_job_templates_needs_a_cluster(no_kube):
    result = submit(no_kube, "relaxation_emt", POSCARS[0], "--backend", "job", "--dry-run",
                    "--release", RELEASE, "-n", NAMESPACE)
    refused(result, "no Kubernetes context")


# --- batches and the command `run` gets ----------------------------------------------------------


def test_all_inputs_are_one_job_by_default(no_kube, plain, tmp_path):
    from tests.support.poscars import write_poscars

    paths = write_poscars(tmp_path / "in", 40)
    ((configmap, job),) = pairs(dry_run(no_kube, plain, inputs=[tmp_path / "in"]))
    assert json.loads(configmap["data"]["input-names.json"]) == [str(p) for p in paths]
    assert len(configmap["data"]) == 41


def test_batch_size_makes_one_job_per_batch(no_kube, plain, tmp_path):
    from tests.support.poscars import write_poscars

    paths = write_poscars(tmp_path / "in", 5)
    given = [paths[3], paths[0], paths[4], paths[1], paths[2]]  # not sorted: order is kept
    batches = pairs(dry_run(no_kube, plain, "--batch-size", "2", "--rerun", "--run-name",
                            "nightly", inputs=given))
    assert len(batches) == 3
    names, ids = [], set()
    for index, (configmap, job) in enumerate(batches):
        assert job["metadata"]["name"] == f"nightly-{index + 1}"
        assert configmap["metadata"]["name"] == f"nightly-{index + 1}-inputs"
        pod = job["spec"]["template"]["spec"]
        assert {"name": "inputs", "configMap": {"name": f"nightly-{index + 1}-inputs",
                                                "defaultMode": 0o444}} in pod["volumes"]
        (container,) = pod["containers"]
        args = container["args"]
        batch_id = option(args, "--batch-id")
        assert job["metadata"]["labels"]["simmate-k8s.io/batch"] == batch_id
        ids.add(batch_id)
        assert "--rerun" in args
        data = dict(configmap["data"])
        batch_names = json.loads(data.pop("input-names.json"))
        assert len(batch_names) == (2 if index < 2 else 1)
        assert list(data.values()) == [Path(name).read_text() for name in batch_names]
        names += batch_names
    assert names == [str(p) for p in given]
    assert len(ids) == 3


def test_the_job_command_is_what_run_accepts(no_kube, plain, tmp_path, monkeypatch):
    """Parse each Job's command with `run` itself, its ConfigMap mounted where the command
    says: the batch gets the submitter's names, parameters and batch id, and the same keys."""
    from simmate_k8s.commands import run as run_command
    from simmate_k8s.flows import inputs
    from simmate_k8s.flows.registry import get_workflow

    monkeypatch.delenv("SIMMATE_DASK_ADDRESS", raising=False)
    workflow = get_workflow("relaxation_emt")
    expected = inputs.from_arguments(workflow, POSCARS[:3], ["fmax=0.02"]).items
    batches = pairs(dry_run(no_kube, plain, "--batch-size", "2", "--param", "fmax=0.02",
                            inputs=POSCARS[:3]))
    seen = []
    for index, (configmap, job) in enumerate(batches):
        mounted = mount(configmap, tmp_path / f"mount-{index}")
        (container,) = job["spec"]["template"]["spec"]["containers"]
        args = [arg.replace("/inputs/", f"{mounted}/") for arg in container["args"]]
        assert args[:2] == ["simmate-k8s", "run"]
        context = run_command.run.make_context("run", args[2:])
        params = context.params
        assert params["flow_name"] == "relaxation_emt"
        assert params["batch_id"] == option(container["args"], "--batch-id")
        assert params["address"] == configmap_of(plain)["data"]["scheduler-address"]
        assert params["verbose"] is True and params["rerun"] is False
        batch = inputs.from_arguments(workflow, params["inputs"], params["params"])
        batch.rename(run_command._names(params["names_file"], len(batch.items)))
        params["names_file"].close()
        assert batch.parameters == {"fmax": 0.02, "max_steps": 500}
        seen += [(item["name"], item["key"]) for item in batch.items]
    assert seen == [(item["name"], item["key"]) for item in expected]


@pytest.mark.parametrize("names", [["only-one"], "not json", {"a": 1}])
def test_run_refuses_names_that_do_not_match_its_inputs(tmp_path, names):
    from click.testing import CliRunner

    from simmate_k8s.cli import cli

    names_file = tmp_path / "input-names.json"
    names_file.write_text(names if isinstance(names, str) else json.dumps(names))
    result = CliRunner().invoke(cli, ["run", "relaxation_emt", *map(str, POSCARS[:2]),
                                      "--input-names", str(names_file)],
                                env={"SIMMATE_DATABASE_URL": f"sqlite:///{tmp_path}/r.db"})
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (f"Error: --input-names {names_file}: expected a JSON list "
                                     "of 2 names")
    assert not (tmp_path / "r.db").exists()  # refused before anything was opened


def test_json_dry_run_and_run_name(no_kube, plain):
    result = submit(no_kube, "smoke", "--backend", "job", "--dry-run", "--json",
                    *release_args(plain), "--run-name", "smoke-check", "--param", "n=3")
    assert result.exit_code == 0, result.output
    configmap, job = json.loads(result.stdout)
    assert job["metadata"]["name"] == "smoke-check" and configmap["data"] == {}
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--input-names" not in args and not [a for a in args if a.startswith("/inputs")]
    assert option(args, "--param") == "n=3" and option(args, "--batch-id")


@pytest.mark.parametrize("problem", ["bad-poscar", "fmax=-1", "max_steps=0", "empty-dir",
                                     "no-match", "missing"])
def test_a_bad_input_makes_no_objects(no_kube, plain, tmp_path, problem):
    bad = tmp_path / "bad.POSCAR"
    bad.write_text("not a POSCAR")
    (tmp_path / "empty").mkdir()
    args = {"bad-poscar": [POSCARS[0], bad],
            "fmax=-1": [POSCARS[0], "--param", "fmax=-1"],
            "max_steps=0": [POSCARS[0], "--param", "max_steps=0"],
            "empty-dir": [POSCARS[0], tmp_path / "empty"],
            "no-match": [POSCARS[0], str(tmp_path / "*.vasp")],
            "missing": [POSCARS[0], tmp_path / "missing.POSCAR"]}[problem]
    result = submit(no_kube, "relaxation_emt", *args, "--backend", "job", "--dry-run",
                    *release_args(plain))
    refused(result)


@pytest.mark.parametrize("args, fragment", [
    (["relaxation_emt", "--run-name", "Not_A_Name"], "--run-name 'Not_A_Name'"),
    (["relaxation_emt", "--label", "gpu"], "--label"),
    (["relaxation_emt", "--idempotency-key", "k"], "--idempotency-key"),
    (["relaxation_emt", "--param", "fmax=nan"], "fmax"),
    (["smoke", "--batch-size", "1"], "--batch-size"),
])
def test_bad_job_options(no_kube, plain, args, fragment):
    inputs = [POSCARS[0], POSCARS[1]] if args[0] == "relaxation_emt" else []
    result = submit(no_kube, args[0], *inputs, *args[1:], "--backend", "job", "--dry-run",
                    *release_args(plain))
    refused(result, fragment)


def test_input_files_keep_order_and_names():
    files = jobs.input_files([("dir/b.POSCAR", "B"), ("other/b.POSCAR", "B2"),
                              ("weird name:1.POSCAR", "C")])
    assert files == {"00000-b.POSCAR": "B", "00001-b.POSCAR": "B2",
                     "00002-weird_name_1.POSCAR": "C",
                     "input-names.json": json.dumps(["dir/b.POSCAR", "other/b.POSCAR",
                                                     "weird name:1.POSCAR"])}


def test_batch_size_must_be_at_least_1(no_kube, plain):
    result = submit(no_kube, "relaxation_emt", POSCARS[0], "--batch-size", "0", "--backend",
                    "job", "--dry-run", *release_args(plain))
    assert result.exit_code == 2 and "Invalid value for '--batch-size'" in result.stderr


def test_inputs_too_large_for_a_configmap_suggest_batches():
    with pytest.raises(InputError) as error:
        jobs.input_files([("big.POSCAR", "x" * (jobs.MAX_INPUT_BYTES + 1))])
    assert "KiB" in str(error.value) and "--batch-size" in str(error.value)
    half = "x" * (jobs.MAX_INPUT_BYTES // 2)
    with pytest.raises(InputError):
        jobs.input_files([("a", half), ("b", half)])
    assert len(jobs.input_files([("a", half)])) == 2


def test_no_kube_context_is_one_line(no_kube):
    """A real process: the one-line error, not a traceback."""
    result = run_cli("submit", "relaxation_emt", POSCARS[0], "--backend", "job", env=no_kube)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("Error: no Kubernetes context")
    assert len(result.stderr.strip().splitlines()) == 1


# --- the cluster, faked at the API boundary ------------------------------------------------------


class FakeApi:
    """Records what create() does; `fail` names the call that raises."""

    def __init__(self, fail=None):
        self.fail, self.calls = fail, []

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            if name == self.fail:
                from kubernetes.client.exceptions import ApiException

                raise ApiException(status=403, reason="Forbidden")
            if name == "create_namespaced_job":
                class Created:
                    def to_dict(self):
                        return {"metadata": {"name": args[1]["metadata"]["name"], "uid": "u-1"}}
                return Created()
        return call

    def names(self):
        return [name for name, _, _ in self.calls]


def spec(release, **changes):
    return jobs.JobSpec(**{"flow_name": "smoke", "inputs": {}, "params": [], "release": release,
                           "image": None, "preset": "default", "name": "simmate-smoke-abc123",
                           "batch_id": "b-1", **changes})


def test_release_from_the_rendered_file(release, plain):
    configmap = configmap_of(plain)
    assert (release.name, release.namespace) == (RELEASE, NAMESPACE)
    assert release.scheduler_address == configmap["data"]["scheduler-address"]
    assert set(release.templates) == {"default", "small", "large"}
    assert release.templates["large"] == template(plain, "large")
    assert jobs.templates_selector(RELEASE) == (
        "app.kubernetes.io/instance=lab-a,app.kubernetes.io/component=job-templates")
    assert configmap["metadata"]["labels"].items() >= {
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": "job-templates"}.items()  # what the selector finds


def test_build_job_leaves_the_release_templates_alone(release):
    before = json.dumps(release.templates, sort_keys=True)
    jobs.build_job(spec(release, image="x.example/simmate-k8s:2"))
    jobs.build_job(spec(release))
    assert json.dumps(release.templates, sort_keys=True) == before


def test_create_makes_the_job_own_its_inputs(monkeypatch, release):
    api = FakeApi()
    monkeypatch.setattr(jobs, "_api", lambda context: (api, api))
    job_spec = spec(release)
    jobs.create(job_spec)
    assert api.names() == ["create_namespaced_config_map", "create_namespaced_job",
                           "patch_namespaced_config_map"]
    (_, (namespace, configmap), _), (_, (_, job), _), (_, patch, _) = api.calls
    assert namespace == NAMESPACE
    assert configmap == jobs.build_configmap(job_spec)
    assert job == jobs.build_job(job_spec)
    assert patch[:2] == (job_spec.configmap_name, NAMESPACE)
    (owner,) = patch[2]["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", job_spec.name, "u-1")


def test_create_leaves_nothing_behind_on_failure(monkeypatch, release):
    api = FakeApi(fail="create_namespaced_job")
    monkeypatch.setattr(jobs, "_api", lambda context: (api, api))
    with pytest.raises(KubernetesError, match="403 Forbidden"):
        jobs.create(spec(release))
    assert api.names()[-1] == "delete_namespaced_config_map"


class Cluster(FakeApi):
    """FakeApi plus the release's job-templates ConfigMap, listed as the client returns it."""

    def __init__(self, configmaps):
        super().__init__()
        self.configmaps, self.created = configmaps, []

    def list_namespaced_config_map(self, namespace, label_selector):
        from types import SimpleNamespace as NS

        self.calls.append(("list_namespaced_config_map", (namespace,),
                           {"label_selector": label_selector}))
        return NS(items=self.configmaps)

    def create_namespaced_job(self, namespace, job):
        self.created.append(job)
        return FakeApi.__getattr__(self, "create_namespaced_job")(namespace, job)


def client_configmap(configmap: dict):
    """A kubernetes.client V1ConfigMap, with its own to_dict()."""
    from kubernetes import client

    return client.V1ConfigMap(
        api_version="v1", kind="ConfigMap", data=configmap["data"],
        metadata=client.V1ObjectMeta(name=configmap["metadata"]["name"],
                                     namespace=configmap["metadata"]["namespace"],
                                     labels=configmap["metadata"]["labels"]))


def test_submit_creates_a_job_per_batch_and_reports_them(no_kube, monkeypatch, rendered):
    """Without --dry-run, in-process, with the Kubernetes API faked at its boundary: the
    templates come from the cluster, found by the release's labels."""
    from click.testing import CliRunner

    from simmate_k8s.cli import cli

    configmap = configmap_of(rendered["gpu"])
    api = Cluster([client_configmap(configmap)])
    monkeypatch.setattr(jobs, "_api", lambda context: (api, api))
    monkeypatch.setenv("KUBECONFIG", no_kube["KUBECONFIG"])
    result = CliRunner().invoke(cli, ["submit", "relaxation_emt", *map(str, POSCARS[:3]),
                                      "--backend", "job", "--release", RELEASE,
                                      "--namespace", NAMESPACE, "--preset", "gpu",
                                      "--batch-size", "2", "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert api.calls[0] == ("list_namespaced_config_map", (NAMESPACE,),
                            {"label_selector": jobs.templates_selector(RELEASE)})
    reported = json.loads(result.stdout)  # one JSON list
    assert isinstance(reported, list) and len(reported) == 2 == len(api.created)
    for entry, job in zip(reported, api.created, strict=True):
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert entry["job"] == job["metadata"]["name"]
        assert entry["configmap"] == job["metadata"]["name"] + "-inputs"
        assert entry["batch_id"] == option(container["args"], "--batch-id")
        assert entry["namespace"] == job["metadata"]["namespace"] == NAMESPACE
        assert entry["scheduler"] == configmap["data"]["scheduler-address"]
        assert container["resources"] == template(rendered["gpu"], "gpu")["spec"]["template"][
            "spec"]["containers"][0]["resources"]
    assert [entry["items"] for entry in reported] == [2, 1]
    assert api.names().count("create_namespaced_config_map") == 2


def test_submit_to_a_release_that_is_not_there(no_kube, monkeypatch):
    from click.testing import CliRunner

    from simmate_k8s.cli import cli

    api = Cluster([])
    monkeypatch.setattr(jobs, "_api", lambda context: (api, api))
    monkeypatch.setenv("KUBECONFIG", no_kube["KUBECONFIG"])
    result = CliRunner().invoke(cli, ["submit", "relaxation_emt", str(POSCARS[0]),
                                      "--backend", "job", "--release", "lab-b", "-n", NAMESPACE])
    refused(result, "no release 'lab-b'", NAMESPACE)
    assert api.names() == ["list_namespaced_config_map"]  # nothing created
