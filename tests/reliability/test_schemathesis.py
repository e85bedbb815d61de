"""schemathesis against the gateway's own /openapi.json (read with the key), in process: no
answer is a 5xx, and every error is the one JSON shape ``{"error": {"code", "message"}}``.

The gateway forwards to a real worker app (engine: a canned reply), so request parsing and
checking are the real ones. The examples are bounded (hypothesis ``max_examples``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from tests.reliability.apps import KEY, gateway_app

AUTH = {"Authorization": f"Bearer {KEY}"}
_APP = gateway_app(Path(tempfile.mkdtemp(prefix="chattune-schemathesis-")))
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP, headers=AUTH)


def assert_error_shape(response) -> None:  # type: ignore[no-untyped-def]
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_errors_in_one_shape(case) -> None:  # type: ignore[no-untyped-def]
    response = case.call(headers=AUTH)
    assert response.status_code < 500, (case.path, case.body, response.text)
    if response.status_code >= 400:
        assert_error_shape(response)
