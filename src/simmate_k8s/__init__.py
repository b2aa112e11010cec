"""Run Simmate-style scientific workflows with Prefect 1 on Dask, locally or on Kubernetes."""

__version__ = "0.1.0"
