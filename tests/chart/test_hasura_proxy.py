"""apollo's hasura proxy (charts/simmate/files/hasura-proxy.js), run by the real node against a
local stand-in for hasura that records what reaches it."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.chart.helpers import CHART, find_tool
from tests.support.http import JsonHandler, StandIn

SECRET = "s3cret-admin"


class Hasura(StandIn):
    """Refuses what lacks the admin secret, as hasura with no unauthorized role does."""

    def __init__(self):
        self.seen: list[tuple[str, str, dict]] = []
        hasura = self

        class Handler(JsonHandler):
            def do_POST(self):
                hasura.seen.append((self.path, self.body().decode(), dict(self.headers)))
                ok = self.headers.get("x-hasura-admin-secret") == SECRET
                payload = (
                    {"data": {"flow_run": []}}
                    if ok
                    else {
                        "errors": [
                            {"message": "x-hasura-admin-secret/x-hasura-access-key required"}
                        ]
                    }
                )
                self.reply(200, payload)

        super().__init__(Handler)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def proxy():
    hasura, port = Hasura(), free_port()
    process = subprocess.Popen(
        [find_tool("node"), str(CHART / "files" / "hasura-proxy.js")],
        env={
            "HASURA_UPSTREAM": hasura.url,
            "HASURA_PROXY_PORT": str(port),
            "HASURA_GRAPHQL_ADMIN_SECRET": SECRET,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except OSError:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "proxy did not start"
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", hasura
    process.terminate()
    process.wait(5)
    hasura.close()


def post(url, path, headers=None):
    request = urllib.request.Request(
        url + path,
        data=json.dumps({"query": "{ flow_run(limit: 0) { id } }"}).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_graphql_reaches_hasura_with_the_admin_secret(proxy):
    url, hasura = proxy
    status, payload = post(url, "/v1alpha1/graphql")
    assert status == 200 and payload == {"data": {"flow_run": []}}
    ((path, body, headers),) = hasura.seen
    assert path == "/v1alpha1/graphql" and "flow_run" in body
    assert headers["x-hasura-admin-secret"] == SECRET


def test_caller_headers_do_not_reach_hasura(proxy):
    """A caller cannot pick a role, session variables or another secret."""
    url, hasura = proxy
    post(
        url,
        "/v1alpha1/graphql",
        {"X-Hasura-Role": "user", "X-Hasura-User-Id": "1", "X-Hasura-Admin-Secret": "guess"},
    )
    ((_, _, headers),) = hasura.seen
    lower = {k.lower(): v for k, v in headers.items()}
    assert lower["x-hasura-admin-secret"] == SECRET
    assert "x-hasura-role" not in lower and "x-hasura-user-id" not in lower


@pytest.mark.parametrize("path", ["/v1/query", "/v2/query", "/v1/metadata", "/v1alpha1/graphql/x"])
def test_hasura_s_sql_and_metadata_apis_are_not_forwarded(proxy, path):
    url, hasura = proxy
    status, _ = post(url, path)
    assert status == 404 and hasura.seen == []


def test_without_the_secret_the_proxy_does_not_start(tmp_path):
    result = subprocess.run(
        [find_tool("node"), str(CHART / "files" / "hasura-proxy.js")],
        env={"HASURA_UPSTREAM": "http://127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 1 and "HASURA_GRAPHQL_ADMIN_SECRET is not set" in result.stderr
