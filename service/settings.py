"""Service settings: every option from ``attnserve serve`` flags or ``ATTNSERVE_*`` variables.

Defaults suit one container with a few CPU cores; the README lists each with its default.
The one place where a setting is resolved: batching values left unset here fall back to each
model's ``config.json`` (:meth:`Settings.batching_for`), and device names are parsed by
:func:`parse_device` alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.repository.config import BatchingSpec, ModelConfig

DeviceKind = Literal["auto", "cpu", "cuda"]


def parse_device(name: str) -> tuple[DeviceKind, int | None]:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` -> (kind, N or None); anything else is an error."""
    if name in ("auto", "cpu", "cuda"):
        return name, None  # type: ignore[return-value]
    if name.startswith("cuda:") and name[5:].isdigit():
        return "cuda", int(name[5:])
    raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {name!r}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATTNSERVE_", frozen=True)

    repo: Path | None = Field(
        default=None, description="model repository; unset: the demo repository (built if absent)"
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    grpc_port: int = Field(
        default=0, ge=0, le=65535, description="gRPC (v2) port on the same host; 0: gRPC off"
    )
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    num_threads: int = Field(
        default=0, ge=0, description="torch intra-op threads; 0: one per CPU of the quota"
    )

    max_batch_size: int | None = Field(default=None, ge=1, le=1024)
    max_queue_delay_ms: float | None = Field(default=None, ge=0, le=10_000)
    target_latency_ms: float | None = Field(
        default=None, gt=0, le=60_000, description="p99 goal that caps batch sizes (per model)"
    )
    instances: int | None = Field(
        default=None, ge=1, le=64, description="forward passes at once per model (config.json)"
    )
    max_queue_size: int = Field(default=256, ge=1)
    timeout_ms: float = Field(default=10_000, gt=0, description="default request deadline")
    preprocess_workers: int = Field(default=2, ge=1, description="decode/pre-process threads")

    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    max_files_per_request: int = Field(default=64, ge=1)
    memory_budget_mb: int | None = Field(
        default=None,
        ge=0,
        description="worst-case MB of images in flight; unset: the cgroup limit less 512; 0: off",
    )

    api_key: SecretStr | None = Field(default=None, description="enables management endpoints")
    drain_timeout_s: float = Field(default=30.0, ge=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field(default="text", description="json: JSON lines")
    cors_origins: list[str] = Field(
        default_factory=list, description="CORS allowed origins (JSON list); empty: CORS off"
    )
    docs: bool = Field(
        default=True, description="serve /docs, /redoc and /openapi.json (assets included)"
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        parse_device(device)
        return device

    def instances_for(self, config: ModelConfig) -> int | None:
        """A model's instance count: the setting overrides ``config.json``; None when neither
        sets one (the device's default applies)."""
        return self.instances or config.instances

    def batching_for(self, config: ModelConfig) -> BatchingSpec:
        """A model's batching: each value set here overrides the model's ``config.json``."""
        overrides = {"max_batch_size": self.max_batch_size,
                     "max_queue_delay_ms": self.max_queue_delay_ms,
                     "target_latency_ms": self.target_latency_ms}  # fmt: skip
        return config.batching.model_copy(
            update={key: value for key, value in overrides.items() if value is not None}
        )
