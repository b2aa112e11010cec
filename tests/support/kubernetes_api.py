"""A local stand-in for the Kubernetes batch API, as Prefect 1's Kubernetes agent uses it.

The real ``kubernetes`` client talks HTTP to it; it records every Job POSTed."""

from __future__ import annotations

import json

from tests.support.http import JsonHandler, StandIn


class KubernetesBatchApi(StandIn):
    """Answers what the agent sends: POST a Job (recorded, 201) and list Jobs (none: the
    agent's clean-up finds nothing to do). Anything else is recorded as unexpected."""

    def __init__(self):
        self.jobs: list[dict] = []
        self.unexpected: list[str] = []
        endpoint = self

        class Handler(JsonHandler):
            def do_POST(self):
                body = json.loads(self.body())
                if self.path == "/apis/batch/v1/namespaces/sim/jobs":
                    endpoint.jobs.append(body)
                    return self.reply(201, body)
                endpoint.unexpected.append(f"POST {self.path}")
                self.reply(404, {"kind": "Status", "code": 404})

            def do_GET(self):
                if self.path.startswith("/apis/batch/v1/namespaces/sim/jobs?"):
                    return self.reply(
                        200,
                        {"kind": "JobList", "apiVersion": "batch/v1", "metadata": {}, "items": []},
                    )
                endpoint.unexpected.append(f"GET {self.path}")
                self.reply(404, {"kind": "Status", "code": 404})

        super().__init__(Handler)

    def kubeconfig(self) -> dict:
        """A kubeconfig whose current context is this endpoint (no credentials)."""
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "stand-in",
            "clusters": [{"name": "stand-in", "cluster": {"server": self.url}}],
            "users": [{"name": "agent", "user": {}}],
            "contexts": [{"name": "stand-in", "context": {"cluster": "stand-in", "user": "agent"}}],
        }
