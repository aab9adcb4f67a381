"""Raw HTTP bodies (broken JSON, wrong content types, empty, deep nesting, binary) against the
server app in-process: every answer is a JSON `ok: false` with a 4xx (never a 5xx, a dropped
connection or a traceback), or a 200 for the rare valid body."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.conftest import GOOD_SMALL_REQUEST
from video_endpoint.server import ServerSettings, create_app

TOKEN = "fuzz-token"

bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.sampled_from([b"", b"{", b"[]", b"null", b'{"inputs": ', b'{"inputs": {"prompt": "x"', b"\xff\xfe\x00",
                     b'{"inputs": {"prompt": "x", "height": 1e999}}', b'{"inputs": NaN}']),
    st.integers(1, 5000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 5000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                 max_leaves=10).map(lambda value: json.dumps({"inputs": value}).encode()),
)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                 "application/x-www-form-urlencoded", "multipart/form-data", ""])


@pytest.fixture(scope="module")
def client(fuzz_handler):
    app = create_app(lambda: fuzz_handler, ServerSettings(token=TOKEN, max_body_bytes=64 * 1024, queue_depth=2))
    with TestClient(app) as test_client:  # raise_server_exceptions: an unhandled error fails the test
        yield test_client


@given(body=bodies, content_type=content_types, authorized=st.booleans())
def test_raw_bodies_get_json_answers(client, body, content_type, authorized):
    headers = {"Content-Type": content_type} if content_type else {}
    if authorized:
        headers["Authorization"] = f"Bearer {TOKEN}"
    response = client.post("/", content=body, headers=headers)
    answer = response.json()
    assert response.headers["x-request-id"]
    assert "Traceback" not in response.text
    if not authorized:
        assert response.status_code == 401
    if response.status_code == 200:
        assert answer["ok"] is True
    else:
        assert 400 <= response.status_code < 500, (response.status_code, answer)
        assert answer["ok"] is False and answer["error"]["type"] in {"invalid_request", "unsupported"}
    assert client.post("/", json=GOOD_SMALL_REQUEST, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
