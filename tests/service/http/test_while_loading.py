"""While the models are still loading, inference answers 503 ``unavailable`` with Retry-After
(a client should retry), never 404 ``unknown model`` (a client would give up)."""

from collections.abc import Iterator

import pytest

from tests.service.fake_models import Slow, write_model
from tests.service.images import solid
from tests.service.server import Server, running_server

#: Warm-up runs 3 batch sizes twice over this many 1024 x 1024 matmuls each: seconds of loading.
SLOW_ROUNDS = 40


@pytest.fixture(scope="module")
def loading_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    repo = tmp_path_factory.mktemp("slow-load")
    write_model(repo, "slow", Slow(SLOW_ROUNDS), max_batch_size=4)
    logs = tmp_path_factory.mktemp("slow-load-logs")
    with running_server(repo, logs, wait="alive") as server:
        yield server


def assert_retry_later(response, loading_server: Server) -> None:
    assert loading_server.client().get("/readyz").json()["status"] == "loading"
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    body = response.json()
    code = body["code"] if isinstance(body["error"], str) else body["error"]["code"]
    assert code == "unavailable"


@pytest.mark.slow
def test_inference_is_503_with_retry_after_until_the_model_is_loaded(
    loading_server: Server,
) -> None:
    image = solid((10, 10, 10))
    with loading_server.client() as client:
        predict = client.post("/predict", content=image, headers={"content-type": "image/png"})
        assert_retry_later(predict, loading_server)
        named = client.post("/predict?model=slow", content=image,
                            headers={"content-type": "image/png"})  # fmt: skip
        assert_retry_later(named, loading_server)
        v2 = client.post("/v2/models/slow/infer", json={"inputs": []})
        assert_retry_later(v2, loading_server)
        loading_server.wait_until("/readyz")
        served = client.post("/predict", content=image, headers={"content-type": "image/png"})
        assert served.status_code == 200 and served.json()["model"] == "slow"
        unknown = client.post("/predict?model=nope", content=image,
                              headers={"content-type": "image/png"})  # fmt: skip
        assert unknown.status_code == 404 and "unknown model" in unknown.text
