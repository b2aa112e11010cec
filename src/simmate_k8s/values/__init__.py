"""The Helm values of ``charts/simmate``: one pydantic model, target profiles, render and schema.

``model.ChartValues`` is the source of truth: it writes ``charts/simmate/values.schema.json``
(``python -m simmate_k8s.values.schema``), validates ``values.yaml`` in the tests and backs
``simmate-k8s values --profile ...``.
"""

# The targets of `simmate-k8s values --profile`, one file each in profiles/ (a test checks both
# ways). Here, not in render.py, so that the click command can offer them without pydantic.
PROFILES = ("kind", "minikube", "gke", "digitalocean")
