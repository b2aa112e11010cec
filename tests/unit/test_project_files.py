"""The developer-loop files: skaffold.yaml, the Makefile's kind sequence, the CI workflow."""

import re
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_skaffold_builds_the_image_and_names_the_three_profiles():
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    [artifact] = config["build"]["artifacts"]
    assert artifact["docker"]["dockerfile"] == "images/simmate-k8s/Dockerfile"
    [release] = config["deploy"]["helm"]["releases"]
    assert release["chartPath"] == "charts/simmate"
    assert release["setValueTemplates"]["image.tag"] == "{{.IMAGE_TAG_simmate_k8s}}"
    profiles = {p["name"]: p for p in config["profiles"]}
    assert set(profiles) == {"kind", "gke", "digitalocean"}
    for name, profile in profiles.items():
        [patch] = profile["patches"]
        values_file = patch["value"][0]
        assert values_file == f"src/simmate_k8s/values/profiles/{name}.yaml"
        assert (REPO / values_file).is_file()


def test_make_kind_test_runs_the_whole_sequence_in_order():
    dry_run = subprocess.run(["make", "-n", "kind-test", "IMAGE_TAG=9.9.9-test"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
    steps = [
        r"kind create cluster",
        r"build -f images/simmate-k8s/Dockerfile -t simmate-k8s:9\.9\.9-test",
        r"tag \"simmate-k8s:9\.9\.9-test\" \"localhost/simmate-k8s:9\.9\.9-test\"",
        r"kind load docker-image \"localhost/simmate-k8s:9\.9\.9-test\"",
        r"package-dask-operator-chart",
        r"kubectl apply --server-side --force-conflicts -f \S+/crds",
        r"values --profile kind --set image\.repository=localhost/simmate-k8s "
        r".*image\.tag=9\.9\.9-test",
        r"helm upgrade --install \"lab\" charts/simmate",
        r"make cluster-test NAMESPACE=simmate RELEASE=lab E2E=all",
    ]
    position = 0
    for step in steps:
        match = re.compile(step, re.S).search(dry_run, position)
        assert match, f"{step!r} missing (or out of order) in make -n kind-test"
        position = match.end()


def test_kind_load_with_podman_saves_the_name_the_pods_ask_for():
    """podman names local builds localhost/NAME:TAG; a bare NAME:TAG in a pod spec means
    docker.io/library/NAME:TAG. The archive and the chart values must carry the same name."""
    make = ["make", "-n", "IMAGE_TAG=9.9.9-test", "CONTAINER_ENGINE=podman"]
    load = subprocess.run([*make, "kind-load"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout
    assert 'podman tag "simmate-k8s:9.9.9-test" "localhost/simmate-k8s:9.9.9-test"' in load
    save = re.search(r"podman save .*?\"([^\"]+)\" -o (\S+)", load)
    assert save and save.group(1) == "localhost/simmate-k8s:9.9.9-test"
    assert f"kind load image-archive {save.group(2)}" in load
    install = subprocess.run([*make, "kind-install"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout
    assert "--set image.repository=localhost/simmate-k8s" in install
    assert "--set image.tag=9.9.9-test" in install


def test_make_refuses_a_latest_image_tag():
    result = subprocess.run(["make", "image", "IMAGE_TAG=latest"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode != 0 and "refusing a latest tag" in result.stderr


def test_ci_workflow_runs_the_offline_tiers_then_kind():
    workflow = yaml.safe_load((REPO / ".github/workflows/ci.yaml").read_text())
    steps = {job: [s.get("run", "") for s in spec["steps"]]
             for job, spec in workflow["jobs"].items()}
    assert "make test" in steps["test"]
    assert any(run.startswith("make kind-test") for run in steps["kind"])
    assert workflow["jobs"]["kind"]["needs"] == "test"
