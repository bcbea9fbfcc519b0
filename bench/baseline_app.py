"""The baseline: what a careful person writes by hand in FastAPI in an afternoon.

One forward per request (no batching), the same TorchScript file loaded the same way as the
service loads it, the same pre-processing (``service.imaging.load_for_model``), top-5 softmax
out: ``bench/classifier.py``, shared with the other peers. Decode and forward run in
Starlette's thread pool, so the event loop stays responsive, as the FastAPI documentation
recommends for blocking work.

Configured by ``BENCH_BASELINE_MODEL_DIR`` (a model folder: config.json + VERSION/model.pt)
and ``BENCH_TORCH_THREADS``. Run: ``uvicorn bench.baseline_app:app``.
"""

from __future__ import annotations

from fastapi import FastAPI, UploadFile
from fastapi.concurrency import run_in_threadpool

from bench import classifier

CLASSIFIER = classifier.from_environment()

app = FastAPI()


def classify(data: bytes) -> dict[str, object]:
    tensor = CLASSIFIER.preprocess(data)
    return CLASSIFIER.answer(CLASSIFIER.forward(tensor.unsqueeze(0))[0])


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
async def predict(file: UploadFile) -> dict[str, object]:
    """The image as the multipart body's ``file`` part, as every server gets it."""
    return await run_in_threadpool(classify, await file.read())
