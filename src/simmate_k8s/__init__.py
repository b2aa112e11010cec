"""Run Simmate-style scientific workflows with Prefect 1 on Dask, locally or on Kubernetes."""


def __getattr__(name: str):
    # One version source: pyproject.toml's `version`, read from the installed package's
    # metadata (the chart's appVersion and default image tag must equal it:
    # tests/chart/test_versions.py). Read on first use, so `simmate-k8s --help` stays fast.
    if name != "__version__":
        raise AttributeError(name)
    from importlib import metadata

    try:
        return metadata.version("simmate-k8s")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0"
