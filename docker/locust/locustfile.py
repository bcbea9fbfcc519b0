"""Locust load test for attnserve: a realistic mix of the demo models' traffic.

    locust -f docker/locust/locustfile.py --host http://127.0.0.1:8000          # web UI on :8089
    locust -f docker/locust/locustfile.py --headless -u 16 -r 4 -t 2m --host ...

The host comes from ``--host``, else ``ATTNSERVE_URL``, else http://127.0.0.1:8000. Every request
type has its own ``name`` so locust's table reads as the mix below; the weights add up to 100,
so each is that type's share of requests (multi-image requests carry 2-4 images each):

| name                                  | weight | what                                           |
| ------------------------------------- | ------ | ---------------------------------------------- |
| /predict classify raw                 | 30     | one image as the body, top_k=3                 |
| /predict classify raw +attention      | 8      | the same with every attention map              |
| /predict classify multipart           | 10     | 2-4 images as multipart ``file`` parts         |
| /predict segment raw                  | 12     | one image, mask PNG back                       |
| /predict segment raw +attention       | 5      | mask and every attention map                   |
| /predict segment multipart            | 5      | 2-4 images                                     |
| /v2 infer classify BYTES              | 12     | 1-4 encoded images, binary tensor extension    |
| /v2 infer classify FP32               | 8      | 1-4 normalised tensors, client pre-processed   |
| /v2 infer segment BYTES +attention    | 5      | 1 image: mask and one attention map            |
| /v2 infer segment FP32                | 5      | 1-4 tensors: mask                              |

With ``ATTNSERVE_GRPC_TARGET`` (host:port of attnserve's gRPC port) a quarter of the users are
:class:`AttnserveGrpcUser`, the same kind of traffic over gRPC through ``tritonclient.grpc``
(weights are its own percentages): ``grpc infer classify BYTES`` 50, ``grpc infer classify
FP32`` 30, ``grpc infer segment BYTES +attention`` 20, after ``setup grpc ServerReady``.

Plain classification dominates, as it would for a real client; attention maps and segmentation
masks cost extra encoding and are asked for less often. Images are 64x64, 128x128 and 480x320
in PNG, JPEG and WEBP (see ``payloads.py``). A response counts as a failure unless it is 200 and
holds one result per image with what was asked for: a 503 (queue full) or 504 (deadline) under
load is a failure in locust's table, which is the point. Each user first waits for
``setup GET /readyz`` (up to ``ATTNSERVE_LOCUST_READY_TIMEOUT_S``, 300 s: a container can be
alive while its models warm up) and reads ``setup GET /models`` once: the models' input size,
normalisation and map names.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import numpy as np
import payloads  # beside this file: locust puts the locustfile's folder on sys.path
from locust import HttpUser, User, between, task

CLASSIFIER = os.environ.get("ATTNSERVE_LOCUST_CLASSIFIER", "shapes-classifier")
SEGMENTER = os.environ.get("ATTNSERVE_LOCUST_SEGMENTER", "shapes-segmenter")
SEED = int(os.environ.get("ATTNSERVE_LOCUST_SEED", "0"))
READY_TIMEOUT_S = float(os.environ.get("ATTNSERVE_LOCUST_READY_TIMEOUT_S", "300"))
READY_POLL_S = 2.0

POOL = payloads.build_image_pool(SEED)
TENSOR_PIXELS = payloads.make_pixels(SEED + 100, 8, 64, 64)
_TENSORS: dict[str, Any] = {}  # model name -> (N, 3, H, W) float32, normalised for that model
GRPC_TARGET = os.environ.get("ATTNSERVE_GRPC_TARGET", "")
GRPC_TENSORS = payloads.normalised_tensor(TENSOR_PIXELS, 64, 64)


class AttnserveUser(HttpUser):
    """One client: think time of 0.1-0.5 s between requests, so ``-u`` sets the offered load."""

    host = os.environ.get("ATTNSERVE_URL", "http://127.0.0.1:8000")
    wait_time = between(0.1, 0.5)
    weight = 3

    def on_start(self) -> None:
        self.rng = random.Random(SEED + id(self))
        self.configs: dict[str, dict[str, Any]] = {}
        self.wait_until_ready()
        with self.client.get("/models", name="setup GET /models", catch_response=True) as reply:
            if reply.status_code != 200:
                reply.failure(f"GET /models answered {reply.status_code}")
                return
            for model in reply.json()["models"]:
                if model.get("config"):
                    self.configs[model["name"]] = model["config"]
            missing = {CLASSIFIER, SEGMENTER} - self.configs.keys()
            if missing:
                reply.failure(f"models {sorted(missing)} are not served")

    def wait_until_ready(self) -> None:
        """Hold this user until /readyz is 200 (at most READY_TIMEOUT_S): a container that is
        merely alive may still be warming its models, and its 503s would read as overload."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            with self.client.get("/readyz", name="setup GET /readyz", catch_response=True) as reply:
                if reply.status_code == 200:
                    return
                if time.monotonic() > deadline:
                    reply.failure(f"not ready after {READY_TIMEOUT_S} s: {reply.text[:200]}")
                    return
                reply.success()  # still warming up: not a failure of the service under load
            time.sleep(READY_POLL_S)  # cooperative: locust monkey-patches time.sleep

    # ---- helpers ---------------------------------------------------------------------------

    def images(self, low: int = 1, high: int = 1) -> list[payloads.EncodedImage]:
        return self.rng.sample(POOL, self.rng.randint(low, high))

    def tensor(self, model: str, count: int) -> Any:
        if model not in _TENSORS:
            config = self.configs[model]["input"]
            _TENSORS[model] = payloads.normalised_tensor(
                TENSOR_PIXELS,
                config["height"],
                config["width"],
                config["mean"],
                config["std"],
                config.get("color_order", "RGB"),
            )
        start = self.rng.randrange(len(TENSOR_PIXELS) - count + 1)
        return _TENSORS[model][start : start + count]

    def predict(self, name: str, params: dict[str, str], images: list[payloads.EncodedImage],
                multipart: bool, expect: str | None) -> None:  # fmt: skip
        """POST /predict; ``expect``: a key every result must have ("mask", "attention")."""
        if multipart:
            files = [("file", (i.name, i.data, i.content_type)) for i in images]
            request: dict[str, Any] = {"files": files}
        else:
            request = {"data": images[0].data, "headers": {"content-type": images[0].content_type}}
        with self.client.post("/predict", params=params, name=name, catch_response=True,
                              **request) as reply:  # fmt: skip
            if reply.status_code != 200:
                reply.failure(f"{reply.status_code}: {reply.text[:200]}")
                return
            results = reply.json()["results"]
            if len(results) != len(images):
                reply.failure(f"{len(results)} results for {len(images)} images")
            elif any(not result.get(expect or "predictions") for result in results):
                reply.failure(f"a result has no {expect or 'predictions'}")

    def infer(self, name: str, model: str, body: tuple[bytes, dict[str, str]],
              outputs: list[str]) -> None:  # fmt: skip
        data, headers = body
        path = f"/v2/models/{model}/infer"
        with self.client.post(path, data=data, headers=headers, name=name,
                              catch_response=True) as reply:  # fmt: skip
            if reply.status_code != 200:
                reply.failure(f"{reply.status_code}: {reply.text[:200]}")
                return
            length = reply.headers.get("Inference-Header-Content-Length")
            got = payloads.v2_response_outputs(reply.content, length)
            if got != outputs:
                reply.failure(f"outputs {got}, asked for {outputs}")

    def segmenter_map(self) -> str:
        """The segmenter's last (coarsest, decoder-side) attention map."""
        return self.configs[SEGMENTER]["attention_maps"][-1]

    # ---- the mix (weights are percentages, see the module docstring) -----------------------

    @task(30)
    def classify_raw(self) -> None:
        params = {"model": CLASSIFIER, "top_k": "3"}
        self.predict("/predict classify raw", params, self.images(), False, None)

    @task(8)
    def classify_raw_attention(self) -> None:
        params = {"model": CLASSIFIER, "top_k": "3", "attention": "true"}
        self.predict("/predict classify raw +attention", params, self.images(), False, "attention")

    @task(10)
    def classify_multipart(self) -> None:
        params = {"model": CLASSIFIER, "top_k": "3"}
        self.predict("/predict classify multipart", params, self.images(2, 4), True, None)

    @task(12)
    def segment_raw(self) -> None:
        params = {"model": SEGMENTER, "mask": "png"}
        self.predict("/predict segment raw", params, self.images(), False, "mask")

    @task(5)
    def segment_raw_attention(self) -> None:
        params = {"model": SEGMENTER, "mask": "png", "attention": "true"}
        self.predict("/predict segment raw +attention", params, self.images(), False, "attention")

    @task(5)
    def segment_multipart(self) -> None:
        params = {"model": SEGMENTER, "mask": "png"}
        self.predict("/predict segment multipart", params, self.images(2, 4), True, "mask")

    @task(12)
    def v2_classify_bytes(self) -> None:
        images = [image.data for image in self.images(1, 4)]
        outputs = ["probabilities"]
        body = payloads.v2_bytes_body(images, outputs)
        self.infer("/v2 infer classify BYTES", CLASSIFIER, body, outputs)

    @task(8)
    def v2_classify_fp32(self) -> None:
        outputs = ["probabilities"]
        body = payloads.v2_fp32_body(self.tensor(CLASSIFIER, self.rng.randint(1, 4)), outputs)
        self.infer("/v2 infer classify FP32", CLASSIFIER, body, outputs)

    @task(5)
    def v2_segment_bytes_attention(self) -> None:
        outputs = ["mask", self.segmenter_map()]
        body = payloads.v2_bytes_body([self.images()[0].data], outputs)
        self.infer("/v2 infer segment BYTES +attention", SEGMENTER, body, outputs)

    @task(5)
    def v2_segment_fp32(self) -> None:
        outputs = ["mask"]
        body = payloads.v2_fp32_body(self.tensor(SEGMENTER, self.rng.randint(1, 4)), outputs)
        self.infer("/v2 infer segment FP32", SEGMENTER, body, outputs)


class AttnserveGrpcUser(User):
    """A gRPC client (``tritonclient.grpc``), only when ``ATTNSERVE_GRPC_TARGET`` is set. Its
    FP32 tensors are the demo models' 64x64 size with ImageNet normalisation: any finite input
    is a valid request, and the answer's outputs are what is checked."""

    abstract = not GRPC_TARGET
    wait_time = between(0.1, 0.5)
    weight = 1

    def on_start(self) -> None:
        import grpc.experimental.gevent as grpc_gevent
        import tritonclient.grpc as grpcclient

        grpc_gevent.init_gevent()  # grpc's blocking calls then yield to locust's other users
        self.grpcclient = grpcclient
        self.rng = random.Random(SEED + 1 + id(self))
        self.client = grpcclient.InferenceServerClient(GRPC_TARGET)
        self.call("setup grpc ServerReady", self.wait_until_ready)
        segmenter = self.client.get_model_metadata(SEGMENTER, as_json=True)
        self.segmenter_map = segmenter["outputs"][-1]["name"]  # the last attention map

    def on_stop(self) -> None:
        self.client.close()  # an open channel would keep locust from exiting

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.client.is_server_ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"gRPC not ready after {READY_TIMEOUT_S} s")
            time.sleep(READY_POLL_S)

    def call(self, name: str, action: Any) -> None:
        """Run ``action`` and report it to locust as one request (gRPC has no locust client)."""
        started, error = time.perf_counter(), None
        try:
            action()
        except Exception as exception:  # every failure is reported, none stops the user
            error = exception
        self.environment.events.request.fire(
            request_type="grpc", name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=0, exception=error, context={},
        )  # fmt: skip

    def infer(self, model: str, tensor: Any, outputs: list[str]) -> None:
        requested = [self.grpcclient.InferRequestedOutput(name) for name in outputs]
        result = self.client.infer(model, [tensor], outputs=requested, client_timeout=30.0)
        got = [output.name for output in result.get_response().outputs]
        if got != outputs:
            raise ValueError(f"outputs {got}, asked for {outputs}")

    def bytes_input(self, count: int) -> Any:
        images = [image.data for image in self.rng.sample(POOL, count)]
        tensor = self.grpcclient.InferInput("image", [count], "BYTES")
        tensor.set_data_from_numpy(np.array(images, dtype=object))
        return tensor

    @task(50)
    def grpc_classify_bytes(self) -> None:
        tensor = self.bytes_input(self.rng.randint(1, 4))
        self.call("grpc infer classify BYTES",
                  lambda: self.infer(CLASSIFIER, tensor, ["probabilities"]))  # fmt: skip

    @task(30)
    def grpc_classify_fp32(self) -> None:
        count = self.rng.randint(1, 4)
        start = self.rng.randrange(len(GRPC_TENSORS) - count + 1)
        data = GRPC_TENSORS[start : start + count]
        tensor = self.grpcclient.InferInput("input", list(data.shape), "FP32")
        tensor.set_data_from_numpy(data)
        self.call("grpc infer classify FP32",
                  lambda: self.infer(CLASSIFIER, tensor, ["probabilities"]))  # fmt: skip

    @task(20)
    def grpc_segment_bytes_attention(self) -> None:
        tensor = self.bytes_input(1)
        self.call("grpc infer segment BYTES +attention",
                  lambda: self.infer(SEGMENTER, tensor, ["mask", self.segmenter_map]))  # fmt: skip
