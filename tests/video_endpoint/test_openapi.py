"""The local server against its own OpenAPI document: schemathesis draws requests from it and
checks every answer (status documented, no 5xx, bodies as described)."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import serving
from video_endpoint.openapi import document

TOKEN = "openapi-token-0123456789"
# small limits: whatever schemathesis draws is answered in a moment (most of it with a 400 naming the limit)
LIMITS = {"VIDEO_MAX_FRAMES": "9", "VIDEO_MAX_PIXELS": str(64 * 64), "VIDEO_MAX_STEPS": "2",
          "VIDEO_MAX_PROMPT_CHARS": "200", "VIDEO_MAX_IMAGE_BYTES": "65536", "VIDEO_MAX_INPUT_VIDEO_BYTES": "65536",
          "VIDEO_QUEUE_DEPTH": "8"}
schema = schemathesis.openapi.from_dict(document())


@pytest.fixture(scope="module")
def openapi_server(tiny_model_dir, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("openapi") / "server.log"
    with serving(tiny_model_dir, log_path, {"VIDEO_API_TOKEN": TOKEN, **LIMITS}) as (url, _):
        yield url


def test_the_served_document_is_the_generated_one(openapi_server):
    served = httpx.get(f"{openapi_server}/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert served == document()
    assert set(served["paths"]) == {"/", "/jobs", "/jobs/{job_id}", "/jobs/{job_id}/events", "/health", "/healthz",
                                    "/metrics", "/openapi.json", "/v1/models", "/v1/models/{model_id}", "/v1/videos",
                                    "/v1/videos/{video_id}", "/v1/videos/{video_id}/content",
                                    "/v1/videos/{video_id}/remix", "/v1/videos/edits", "/v1/videos/extensions",
                                    "/v1/videos/characters", "/v1/videos/characters/{character_id}"}
    # the request fields are the schema README's table comes from
    from video_endpoint.request_schema import VideoRequest
    assert set(served["components"]["schemas"]["VideoRequest"]["properties"]) == set(VideoRequest.model_fields)


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_every_route_answers_as_documented(case, openapi_server):
    # a request the JSON schema allows may still be refused (400, naming the field): by a configured
    # limit (set small here), a rule between fields, or the model; every other check applies
    case.call_and_validate(base_url=openapi_server, headers={"Authorization": f"Bearer {TOKEN}"},
                           excluded_checks=[positive_data_acceptance])
