"""The workflows. Prefect Flow objects live in :mod:`simmate_k8s.flows.library` (the module that
Prefect's Module storage loads inside the image); this package itself imports nothing heavy."""
