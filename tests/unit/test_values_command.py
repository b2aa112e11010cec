"""`simmate-k8s values`: profiles, -f, --set, validation with exit 2, no half-written files."""

import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from simmate_k8s.values import PROFILES
from simmate_k8s.values.command import values
from simmate_k8s.values.render import merge, parse_set


def run(*args):
    return CliRunner().invoke(values, list(args))


CLOUD = ("gke", "digitalocean")
REGISTRY = "image.repository=registry.example.com/team/simmate-k8s"


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_write_valid_values(profile, tmp_path):
    out = tmp_path / "v.yaml"
    sets = ["--set", REGISTRY] if profile in CLOUD else []
    result = run("--profile", profile, *sets, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(out.read_text())["postgresql"]["persistence"]["storageClass"]


@pytest.mark.parametrize("profile", CLOUD)
def test_cloud_profiles_need_a_registry(profile, tmp_path):
    """The cluster pulls the image: no default repository would ever resolve there."""
    out = tmp_path / "v.yaml"
    result = run("--profile", profile, "-o", str(out))
    assert result.exit_code == 2 and not out.exists()
    [line] = result.output.strip().splitlines()
    assert line.endswith(
        "invalid values: image.repository is not set: "
        "set --set image.repository=REGISTRY/simmate-k8s"
    )


def test_kind_profile_names_the_image_as_kind_load_does():
    data = yaml.safe_load(run("--profile", "kind").output)
    assert data["image"]["repository"] == "localhost/simmate-k8s"


def test_files_then_sets_layer_over_the_profile(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("dask:\n  autoscaler: {maximum: 7}\nagent:\n  labels: [a]\n")
    result = run(
        "--profile",
        "kind",
        "-f",
        str(base),
        "--set",
        "dask.autoscaler.maximum=9",
        "--set",
        "agent.labels=[x, y]",
    )
    data = yaml.safe_load(result.output)
    assert data["dask"]["autoscaler"] == {"minimum": 0, "maximum": 9}
    assert data["agent"]["labels"] == ["x", "y"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--set", "dask.worker.nthreads=many"], "dask.worker.nthreads"),
        (["--set", "prefectServer.nope=1"], "prefectServer.nope: unknown key"),
        (["--set", "image.tag=latest"], "latest"),
        (["--set", "dask.autoscaler.minimum=9"], "dask.autoscaler.minimum is larger"),
        (["--set", "novalue"], "expected key.path=value"),
        (["-f", "/does/not/exist.yaml"], "cannot read"),
    ],
)
def test_bad_values_exit_2_with_one_line_and_no_file(args, words, tmp_path):
    out = tmp_path / "out.yaml"
    result = run(*args, "-o", str(out))
    assert result.exit_code == 2
    assert words in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.iterdir())


def test_existing_output_is_untouched_on_error(tmp_path):
    out = tmp_path / "out.yaml"
    out.write_text("keep: me\n")
    assert run("--set", "dask.worker.nthreads=x", "-o", str(out)).exit_code == 2
    assert out.read_text() == "keep: me\n"


def test_parse_set_reads_yaml_scalars():
    assert parse_set("a.b=3") == (["a", "b"], 3)
    assert parse_set("a=true") == (["a"], True)
    assert parse_set("a=") == (["a"], "")


def test_merge_is_helm_like():
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}}
    assert merge({"a": {"b": 1}}, {"a": None}) == {}
    assert merge({"a": [1]}, {"a": [2]}) == {"a": [2]}


def test_command_module_imports_only_click():
    code = (
        "import sys, simmate_k8s.values.command; "
        "print(any(m.startswith(('pydantic', 'yaml')) for m in sys.modules))"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
        == "False"
    )
