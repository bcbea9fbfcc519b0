"""The models being served: found in the repository, loaded, warmed up, and looked up by
requests. A model whose file or config is broken is kept here with its error (reported in
/models, /readyz and ``attnserve_model_ready``) while the others serve.

Each version gets one :class:`ModelRuntime` and two batchers sharing its worker: one for
requests without attention maps, one with. On the CPU all versions share one inference thread
(see :func:`service.engine.runtime.inference_thread`); on a GPU each version has its own. Paths
come from :mod:`models.repository.layout`, batching from :meth:`Settings.batching_for`.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from models.repository.config import ModelConfig, read_config
from models.repository.formats import get_format, sha256_of
from models.repository.layout import (
    config_path,
    existing_versions,
    model_dir,
    model_file,
    model_folders,
)
from service.engine.batcher import DynamicBatcher
from service.engine.cores import CoreShare
from service.engine.runtime import (
    ModelRuntime,
    default_instances,
    inference_thread,
    instance_threads,
    warm_up_sizes,
)
from service.engine.slots import WorkerSlots
from service.engine.statistics import VersionStatistics
from service.errors import NotFound, Unavailable
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger("attnserve.models")

State = Literal["loading", "ready", "failed", "unloaded"]


@dataclass
class LoadedVersion:
    name: str
    version: int
    state: State = "loading"
    error: str | None = None
    runtime: ModelRuntime | None = None
    batchers: dict[bool, DynamicBatcher] = field(default_factory=dict)  # key: with_maps
    statistics: VersionStatistics = field(default_factory=VersionStatistics)  # this load's

    async def stop(self, drain_timeout_s: float) -> None:
        await asyncio.gather(*(b.stop(drain_timeout_s) for b in self.batchers.values()))
        if self.runtime is not None:
            await asyncio.to_thread(self.runtime.close)


@dataclass
class ModelEntry:
    name: str
    config: ModelConfig | None = None
    error: str | None = None
    versions: dict[int, LoadedVersion] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return any(v.state == "ready" for v in self.versions.values())

    def serving_version(self, version: int | None) -> LoadedVersion:
        """The requested version, or the newest ready one."""
        if version is None:
            ready = [v for v in self.versions.values() if v.state == "ready"]
            if not ready:
                raise Unavailable(f"model {self.name!r} has no ready version ({self.error or ''})")
            return max(ready, key=lambda v: v.version)
        loaded = self.versions.get(version)
        if loaded is None:
            raise NotFound(f"model {self.name!r} has no version {version}; "
                           f"versions: {sorted(self.versions)}")  # fmt: skip
        if loaded.state != "ready":
            raise Unavailable(f"model {self.name!r} version {version} is {loaded.state}"
                              + (f": {loaded.error}" if loaded.error else ""))  # fmt: skip
        return loaded


class ModelStore:
    def __init__(self, repo: Path, settings: Settings, metrics: Metrics, device: torch.device):
        self.repo = repo
        self.settings = settings
        self.metrics = metrics
        self.device = device
        self.models: dict[str, ModelEntry] = {}
        self.loaded = False  # the initial load has finished (whatever its models' outcome)
        self.load_error: str | None = None
        self.closing = False  # shutdown began: see stop_loading
        self._torch_threads = torch.get_num_threads()  # as the CLI set it, from the CPU quota
        self._cpu_thread = (
            inference_thread("attnserve-inference", self._torch_threads)
            if device.type == "cpu"
            else None
        )
        # every forward pass on the CPU, of any model, shares out the same threads
        self._cores = CoreShare(self._torch_threads) if device.type == "cpu" else None

    @property
    def default_model(self) -> str | None:
        ready = sorted(name for name, entry in self.models.items() if entry.ready)
        return ready[0] if ready else (min(self.models) if self.models else None)

    def stop_loading(self) -> None:
        """Shutdown began: a load still running is abandoned at its next warm-up size (on the
        CPU it holds the inference thread that the drain's requests need, and the process
        would wait for it past the drain budget), and new loads are refused."""
        self.closing = True

    def all_ready(self) -> bool:
        return self.loaded and all(entry.ready for entry in self.models.values())

    def get(self, name: str | None, version: int | None) -> tuple[ModelEntry, LoadedVersion]:
        name = name or self.default_model
        entry = self.models.get(name) if name else None
        if entry is None and not self.loaded:
            raise Unavailable(
                f"models are still loading ({', '.join(sorted(self.models)) or 'none'} loaded so "
                "far); retry after the Retry-After delay"
            )
        if entry is None:
            known = ", ".join(sorted(self.models)) or "(none)"
            raise NotFound(f"unknown model {name!r}; models: {known}")
        return entry, entry.serving_version(version)

    async def load_all(self) -> None:
        """Load every model of the repository; a failure of the repository itself (not of one
        model) is kept in ``load_error`` for /readyz, and the process lives on."""
        try:
            for name in model_folders(self.repo):
                await self.load_model(name)
        except Unavailable as error:  # shutting down: the rest is not loaded
            log.info("loading stopped: %s", error)
            return
        except Exception as error:  # reported by /readyz (still "loading"), the process lives on
            self.load_error = f"{type(error).__name__}: {error}"
            log.exception("loading the model repository failed")
            return
        self.loaded = True
        log.info("models loaded: %s", {n: e.ready for n, e in self.models.items()})

    async def load_model(self, name: str) -> ModelEntry:
        """(Re)load every version of ``name``; a running model keeps serving until the new
        one is ready, then its old versions drain. What the reload breaks keeps serving from
        its previous load (see :meth:`_keep_serving`)."""
        self._refuse_if_closing()
        previous = self.models.get(name)
        entry = ModelEntry(name=name)
        try:
            model_dir(self.repo, name)
            entry.config = read_config(config_path(self.repo, name))
        except Exception as error:  # any broken config is reported, not raised
            entry.error = f"invalid config: {error}"
        if entry.config is not None:
            for version in existing_versions(self.repo, name):
                entry.versions[version] = await self._load_version(entry.config, version)
            if not entry.versions:
                entry.error = "no version folders"
        if self.closing:  # abandoned: whatever was serving serves the drain, until close()
            await self._retire(entry)
            self._refuse_if_closing()
        if previous is not None:
            self._keep_serving(previous, entry)
        if entry.error:
            log.error("model %s not loaded: %s", name, entry.error)
        self.models[name] = entry
        if previous is not None:
            await self._retire(previous)
        return entry

    def _keep_serving(self, previous: ModelEntry, entry: ModelEntry) -> None:
        """A reload that fails where the previous load served (a config that no longer
        parses, a served version's file now corrupt) keeps that version's previous load
        serving, as Triton does, and reports the reload's error on the model. The kept
        versions move from ``previous`` to ``entry``, so that retiring ``previous`` spares them."""
        config_failed = entry.config is None
        kept, reasons = [], []
        for number, old in list(previous.versions.items()):
            new = entry.versions.get(number)
            if old.state == "ready" and (config_failed or (new and new.state == "failed")):
                if new is not None:
                    reasons.append(f"version {number}: {new.error}")
                entry.versions[number] = previous.versions.pop(number)
                self.metrics.model_ready.labels(entry.name, str(number)).set(1)
                kept.append(str(number))
        if kept:
            entry.config = entry.config or previous.config
            why = entry.error if config_failed else "; ".join(reasons)
            entry.error = f"reload failed ({why}); the previous load of version(s) " + (
                f"{', '.join(kept)} still serves"
            )

    async def unload_model(self, name: str) -> None:
        entry = self.models.pop(name, None)
        if entry is None:
            raise NotFound(f"model {name!r} is not loaded")
        await self._retire(entry)

    async def _retire(self, entry: ModelEntry) -> None:
        """Drain and close ``entry``'s versions; a version the current entry still serves
        keeps its ready gauge."""
        for loaded in entry.versions.values():
            if not self._is_served(entry.name, loaded.version):
                self.metrics.model_ready.labels(entry.name, str(loaded.version)).set(0)
            loaded.state = "unloaded"  # first: a request holding it looks the model up again
            await loaded.stop(self.settings.drain_timeout_s)

    def _is_served(self, name: str, version: int) -> bool:
        entry = self.models.get(name)
        return bool(
            entry and version in entry.versions and entry.versions[version].state == "ready"
        )

    async def _load_version(self, config: ModelConfig, version: int) -> LoadedVersion:
        loaded = LoadedVersion(name=config.name, version=version)
        ready_gauge = self.metrics.model_ready.labels(config.name, str(version))
        ready_gauge.set(0)
        instances = self.settings.instances_for(config) or default_instances(
            self.device, self._torch_threads
        )
        name = f"attnserve-{config.name}-v{version}"
        if instances > 1:
            thread = instance_threads(name, instances)
        else:
            thread = self._cpu_thread or inference_thread(name)
        try:
            runtime = await asyncio.get_running_loop().run_in_executor(
                thread, self._build_runtime, config, version, thread
            )
            if instances > 1:
                warming = runtime.warm_every_thread(instances)
                await asyncio.gather(*(asyncio.wrap_future(done) for done in warming))
        except Exception as error:  # a broken file fails this version only
            if thread is not self._cpu_thread:
                thread.shutdown(wait=False)
            loaded.state, loaded.error = "failed", f"{type(error).__name__}: {error}"
            log.error("model %s version %d failed to load: %s", config.name, version, loaded.error)
            return loaded
        loaded.runtime = runtime
        batching = self.settings.batching_for(config)
        worker_slots = WorkerSlots(instances)  # batches of this version at once
        for with_maps in (False, True):
            batcher = DynamicBatcher(
                runtime,
                with_maps=with_maps,
                max_batch_size=batching.max_batch_size,
                max_queue_delay_ms=batching.max_queue_delay_ms,
                max_queue_size=self.settings.max_queue_size,
                observer=self.metrics.observer(config.name, with_maps),
                worker_slots=worker_slots,
                target_latency_ms=batching.target_latency_ms,
                statistics=loaded.statistics,
                priority_levels=batching.levels,
            )
            await batcher.start()
            loaded.batchers[with_maps] = batcher
        loaded.state = "ready"
        ready_gauge.set(1)
        return loaded

    def _build_runtime(
        self, config: ModelConfig, version: int, thread: ThreadPoolExecutor
    ) -> ModelRuntime:
        """Load, check and warm up one version, on ``thread``: the one that will serve it."""
        info = config.versions.get(version)
        if info is None:
            raise ValueError(f"config.json has no entry for version {version}")
        path = model_file(self.repo, config.name, version, info.file)
        digest = sha256_of(path)
        if digest != info.sha256:
            raise ValueError(f"{path} sha256 {digest[:12]}... does not match config.json "
                             f"({info.sha256[:12]}...): truncated or replaced")  # fmt: skip
        model = get_format(info.format).load(path, self.device)
        shared = thread is self._cpu_thread
        runtime = ModelRuntime(
            config.name, version, config, model, self.device, thread, not shared, self._cores
        )
        for size in warm_up_sizes(self.settings.batching_for(config).max_batch_size):
            self._refuse_if_closing()
            runtime.warm_up([size])
        return runtime

    def _refuse_if_closing(self) -> None:
        if self.closing:
            raise Unavailable("the service is shutting down: no model is loaded any more")

    async def close(self) -> None:
        while self.models:
            await self._retire(self.models.pop(next(iter(self.models))))
        if self._cpu_thread is not None:
            await asyncio.to_thread(self._cpu_thread.shutdown, True)
