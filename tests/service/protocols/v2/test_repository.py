"""The v2 repository endpoints on the fault repository (broken folders beside good ones): the
index says why a folder is not served, a broken load is a 400 with that reason, and bad bodies,
parameters and names get a clear 4xx in the v2 error body, never a 500."""

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate

from tests.service.conftest import API_KEY
from tests.service.server import Server

KEY = {"authorization": f"Bearer {API_KEY}"}
READY_ROWS = [
    {"name": "faulty", "version": "1", "state": "READY", "reason": ""},
    {"name": "slow", "version": "1", "state": "READY", "reason": ""},
]


def post(server: Server, path: str, body: bytes = b"") -> httpx.Response:
    with server.client(headers=KEY) as client:
        return client.post(path, content=body)


def test_the_index_says_why_a_folder_is_not_served(fault_server: Server) -> None:
    rows = {row["name"]: row for row in post(fault_server, "/v2/repository/index").json()}
    assert sorted(rows) == ["faulty", "garbage", "not-torchscript", "slow", "truncated"]
    garbage = rows["garbage"]
    assert garbage["state"] == "UNAVAILABLE" and "invalid config" in garbage["reason"]
    assert garbage["version"] == ""
    assert rows["truncated"] == {**rows["truncated"], "version": "1", "state": "UNAVAILABLE"}
    assert "does not match config.json" in rows["truncated"]["reason"]
    assert rows["not-torchscript"]["state"] == "UNAVAILABLE" and rows["not-torchscript"]["reason"]
    ready = post(fault_server, "/v2/repository/index", b'{"ready": true}')
    assert ready.status_code == 200 and ready.json() == READY_ROWS


@pytest.mark.parametrize("name", ["truncated", "not-torchscript", "garbage"])
def test_loading_a_broken_folder_is_a_400_with_its_reason(fault_server: Server, name: str) -> None:
    answer = post(fault_server, f"/v2/repository/models/{name}/load")
    assert answer.status_code == 400
    assert answer.json()["error"].startswith(f"failed to load model {name!r}: ")
    rows = post(fault_server, "/v2/repository/index").json()
    assert all(row["state"] == "UNAVAILABLE" for row in rows if row["name"] == name)


BAD_REQUESTS = [
    ("/v2/repository/index", b'{"ready": "yes"}', 400, "ready"),
    ("/v2/repository/index", b'{"ready": true, "models": []}', 400, "models"),
    ("/v2/repository/index", b"not json", 400, "invalid request body"),
    ("/v2/repository/index", b"[]", 400, "invalid request body"),
    ("/v2/repository/index", b" " * 70_000, 413, "upload limit"),
    ("/v2/repository/models/faulty/load", b'{"parameters": {"config": "{}"}}', 400, "'config'"),
    ("/v2/repository/models/faulty/load", b'{"parameters": []}', 400, "parameters"),
    (
        "/v2/repository/models/faulty/unload",
        b'{"parameters": {"unload_dependents": 1}}',
        400,
        "must be a bool",
    ),
    ("/v2/repository/models/nope/load", b"", 404, "no folder 'nope'"),
    ("/v2/repository/models/nope/unload", b"", 404, "not loaded"),
    ("/v2/repository/models/%2E%2E/load", b"", 422, "invalid model name"),
    ("/v2/repository/models/.hidden/unload", b"", 422, "invalid model name"),
    ("/v2/repository/models/..%2F..%2Fetc/load", b"", 404, "Not Found"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), BAD_REQUESTS)
def test_bad_requests_get_a_clear_4xx(
    fault_server: Server, path: str, body: bytes, status: int, message: str
) -> None:
    answer = post(fault_server, path, body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_the_key_is_checked_before_the_body_is_read(fault_server: Server) -> None:
    with fault_server.client() as client:
        answer = client.post("/v2/repository/index", content=b"not json")
        assert answer.status_code == 401 and "Bearer" in answer.json()["error"]


def test_the_openapi_document_describes_them(fault_server: Server) -> None:
    """With a key the spec holds the repository endpoints, stays valid, documents their
    optional bodies, and a real index validates against the schema it declares."""
    with fault_server.client() as client:
        spec = client.get("/openapi.json").json()
    validate(spec)
    operation = spec["paths"]["/v2/repository/index"]["post"]
    body = operation["requestBody"]
    assert body["required"] is False
    assert body["content"]["application/json"]["schema"]["properties"]["ready"]["type"] == "boolean"
    unload = spec["paths"]["/v2/repository/models/{name}/unload"]["post"]["requestBody"]
    assert "parameters" in unload["content"]["application/json"]["schema"]["properties"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["type"] == "array"
    index = post(fault_server, "/v2/repository/index").json()
    jsonschema.validate(index, {**schema, "components": spec["components"]})
