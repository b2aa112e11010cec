"""Secrets out of everything printed or logged: passwords in a URL's userinfo or query.

One rule for every URL the package shows (database URLs in :mod:`simmate_k8s.database`, the
Prefect API URL in :mod:`simmate_k8s.server_config`).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

REDACTED = "***"
# Query parameters that carry credentials: password=, sslpassword=, token=, api_key=, secret=...
_SECRET_KEY = re.compile(r"pass|secret|token|key|auth", re.IGNORECASE)


def is_secret_key(name: str) -> bool:
    return bool(_SECRET_KEY.search(name))


def redact_query(pairs: list[tuple[str, str]]) -> str:
    """``a=1&password=***``: the query, readable (not percent-encoded), secrets replaced."""
    return "&".join(f"{key}={REDACTED if is_secret_key(key) else value}" for key, value in pairs)


def redact_url(url: str) -> str:
    """An http(s) or other URL with its userinfo password and secret query values replaced."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:{REDACTED}@{host}"
    query = redact_query(parse_qsl(parts.query, keep_blank_values=True)) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
