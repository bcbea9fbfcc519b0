"""The OpenAPI document is valid (openapi-spec-validator), documents the request bodies of
/predict (raw images, multipart files) and v2 infer (JSON, the binary tensor extension), and
real responses of both validate against the schemas it declares for them."""

from typing import Any

import httpx
import jsonschema
import numpy as np
import pytest
import tritonclient.http as triton
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from models.demo.shapes import generate_batch
from tests.service.images import encode
from tests.service.server import Server

CLASSIFIER, SEGMENTER = "shapes-classifier", "shapes-segmenter"
PREDICT = "/predict"
INFER = "/v2/models/{name}/infer"


@pytest.fixture(scope="module")
def spec(demo_server: Server) -> dict[str, Any]:
    with demo_server.client() as client:
        return client.get("/openapi.json").json()


def check_response(spec: dict[str, Any], path: str, response: httpx.Response) -> None:
    """``response`` validates against the schema ``spec`` declares for its path and status."""
    declared = spec["paths"][path]["post"]["responses"][str(response.status_code)]
    schema = declared["content"]["application/json"]["schema"]
    # the spec's components travel with the schema, so its "#/components/..." refs resolve
    jsonschema.validate(response.json(), {**schema, "components": spec["components"]})


def test_the_spec_is_valid_and_a_broken_copy_is_not(spec: dict[str, Any]) -> None:
    validate(spec)
    broken = {**spec, "paths": {PREDICT: {"post": {"requestBody": {}}}}}
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_predict_documents_raw_images_and_multipart_files(spec: dict[str, Any]) -> None:
    body = spec["paths"][PREDICT]["post"]["requestBody"]
    assert body["required"] is True
    content = body["content"]
    assert {"image/png", "image/jpeg", "application/octet-stream"} <= set(content)
    assert content["image/png"]["schema"] == {"type": "string", "format": "binary"}
    files = content["multipart/form-data"]["schema"]["properties"]["file"]
    assert files["items"] == {"type": "string", "format": "binary"}


def test_infer_documents_json_and_the_binary_extension(spec: dict[str, Any]) -> None:
    operation = spec["paths"][INFER]["post"]
    content = operation["requestBody"]["content"]
    assert content["application/json"]["schema"]["required"] == ["inputs"]
    assert content["application/octet-stream"]["schema"]["format"] == "binary"
    headers = [p["name"] for p in operation["parameters"] if p["in"] == "header"]
    assert headers == ["Inference-Header-Content-Length"]
    assert "application/octet-stream" in operation["responses"]["200"]["content"]


def post(server: Server, **kwargs: Any) -> httpx.Response:
    with server.client() as client:
        return client.post(PREDICT, **kwargs)


def test_predict_responses_match_their_schemas(spec: dict[str, Any], demo_server: Server) -> None:
    images = [encode(im) for im in generate_batch(91, 2, 64)[0]]
    png = {"content-type": "image/png"}
    responses = [
        post(demo_server, content=images[0], headers=png, params={"attention": "true"}),
        post(demo_server, content=images[0], headers=png,
             params={"model": SEGMENTER, "attention": "true"}),
        post(demo_server, files=[("file", ("a.png", im, "image/png")) for im in images]),
    ]  # fmt: skip
    assert [r.status_code for r in responses] == [200, 200, 200]
    for response in responses:
        check_response(spec, PREDICT, response)
    errors = [
        post(demo_server, content=images[0], headers=png, params={"model": "nope"}),
        post(demo_server, content=b"not an image", headers=png),
        post(demo_server, content=images[0], headers={"content-type": "text/plain"}),
    ]
    assert [r.status_code for r in errors] == [404, 400, 415]
    for response in errors:
        check_response(spec, PREDICT, response)
    broken = httpx.Response(200, json={**responses[0].json(), "results": None})
    with pytest.raises(jsonschema.ValidationError):
        check_response(spec, PREDICT, broken)


def test_infer_responses_match_their_schemas(spec: dict[str, Any], demo_server: Server) -> None:
    with demo_server.client() as client:
        metadata = client.get(f"/v2/models/{SEGMENTER}").json()
        wanted = {"outputs": [{"name": o["name"]} for o in metadata["outputs"]]}
        tensors = np.zeros((1, 3, 64, 64), dtype=np.float32)
        fp32 = {"inputs": [{"name": "input", "shape": [1, 3, 64, 64], "datatype": "FP32",
                            "data": tensors.ravel().tolist()}]}  # fmt: skip
        answers = {
            "fp32": client.post(INFER.format(name=CLASSIFIER), json=fp32),
            "every output": client.post(INFER.format(name=SEGMENTER), json={**fp32, **wanted}),
            "unknown model": client.post(INFER.format(name="nope"), json=fp32),
            "bad shape": client.post(INFER.format(name=CLASSIFIER),
                                     json={"inputs": [{**fp32["inputs"][0], "shape": [1, 3]}]}),
        }  # fmt: skip
    assert {k: r.status_code for k, r in answers.items()} == {
        "fp32": 200, "every output": 200, "unknown model": 404, "bad shape": 400,
    }  # fmt: skip
    for response in answers.values():
        check_response(spec, INFER, response)


def test_binary_infer_through_tritonclient_matches_the_json_header_schema(
    spec: dict[str, Any], demo_server: Server
) -> None:
    """The binary extension's response starts with a JSON header of the declared schema."""
    client = triton.InferenceServerClient(demo_server.url.removeprefix("http://"))
    data = triton.InferInput("image", [1], "BYTES")
    data.set_data_from_numpy(np.array([encode(generate_batch(93, 1, 64)[0][0])], dtype=object))
    result = client.infer(CLASSIFIER, [data], outputs=[triton.InferRequestedOutput("logits")])
    header = result.get_response()
    schema = spec["paths"][INFER]["post"]["responses"]["200"]["content"]["application/json"]
    jsonschema.validate(header, {**schema["schema"], "components": spec["components"]})
    assert header["outputs"][0]["parameters"]["binary_data_size"] == 4 * 5
