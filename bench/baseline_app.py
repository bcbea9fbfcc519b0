"""The baseline: what a careful person writes by hand in FastAPI in an afternoon.

One forward per request (no batching), the same TorchScript file loaded the same way as the
service loads it, the same pre-processing (``service.imaging.load_for_model``), top-5 softmax
out. Decode and forward run in Starlette's thread pool, so the event loop stays responsive, as
the FastAPI documentation recommends for blocking work.

Configured by ``BENCH_BASELINE_MODEL_DIR`` (a model folder: config.json + VERSION/model.pt)
and ``BENCH_TORCH_THREADS``. Run: ``uvicorn bench.baseline_app:app``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool

from models.repository.config import read_config
from models.repository.formats import TorchScriptFormat
from service.imaging import load_for_model

MAX_PIXELS = 40_000_000
TOP_K = 5

MODEL_DIR = Path(os.environ.get("BENCH_BASELINE_MODEL_DIR", "model_repository/shapes-classifier"))
torch.set_num_threads(int(os.environ.get("BENCH_TORCH_THREADS", "2")))
CONFIG = read_config(MODEL_DIR / "config.json")
MODEL = TorchScriptFormat().load(
    MODEL_DIR / str(CONFIG.latest_version) / "model.pt", torch.device("cpu")
)
with torch.inference_mode():  # the profiling executor specialises on its first calls
    for _ in range(2):
        MODEL(torch.zeros(1, 3, CONFIG.input.height, CONFIG.input.width))

app = FastAPI()


def classify(data: bytes) -> list[dict[str, object]]:
    tensor, _ = load_for_model(data, CONFIG.input, max_pixels=MAX_PIXELS)
    with torch.inference_mode():
        logits = MODEL(tensor.unsqueeze(0))[0]
    scores, indices = logits.softmax(0).topk(min(TOP_K, logits.numel()))
    return [
        {"index": i, "label": CONFIG.labels[i], "score": s}
        for s, i in zip(scores.tolist(), indices.tolist(), strict=True)
    ]


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
async def predict(request: Request) -> dict[str, object]:
    data = await request.body()
    return {"model": CONFIG.name, "predictions": await run_in_threadpool(classify, data)}
