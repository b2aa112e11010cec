"""Run Simmate-style scientific workflows with Prefect 1 on Dask, locally or on Kubernetes."""

from importlib import metadata

# One version source: pyproject.toml's `version`, read from the installed package's metadata.
# The chart's appVersion and default image tag must equal it (tests/chart/test_versions.py).
try:
    __version__ = metadata.version("simmate-k8s")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
