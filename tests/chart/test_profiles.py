"""Every target profile renders, lints and stays valid."""

import pytest
import yaml

from simmate_k8s.values import PROFILES
from tests.chart.helpers import CHART, find, helm, profile_values, render_chart


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_renders(profile):
    docs = render_chart(profile_values(profile))
    assert find(docs, "DaskCluster", "-dask")
    assert find(docs, "Deployment", "-agent")


def test_storage_class_per_target():
    classes = {
        profile: find(render_chart(profile_values(profile)), "StatefulSet", "-postgresql")["spec"][
            "volumeClaimTemplates"
        ][0]["spec"].get("storageClassName")
        for profile in PROFILES
    }
    assert classes == {
        "kind": "standard",
        "minikube": "standard",
        "gke": "standard-rwo",
        "digitalocean": "do-block-storage",
    }


@pytest.mark.parametrize("profile", ["gke", "digitalocean"])
def test_cloud_profiles_have_a_highmem_pool(profile):
    group = find(render_chart(profile_values(profile)), "DaskWorkerGroup", "-highmem")
    assert group["spec"]["worker"]["spec"]["nodeSelector"]


def test_helm_lint_strict_defaults_and_profiles(tmp_path):
    args = ["lint", "--strict", str(CHART)]
    assert helm(*args).returncode == 0
    for profile in PROFILES:
        path = tmp_path / f"{profile}.yaml"
        path.write_text(yaml.safe_dump(profile_values(profile)))
        assert helm(*args, "-f", str(path)).returncode == 0


def test_the_profile_list_is_the_profiles_folder():
    from pathlib import Path

    import simmate_k8s.values

    folder = Path(simmate_k8s.values.__file__).parent / "profiles"
    assert sorted(PROFILES) == sorted(path.stem for path in folder.glob("*.yaml"))
