"""The model repository in Triton's layout, and the models loaded from it.

    <root>/<model>/config.pbtxt
    <root>/<model>/<version>/model.onnx      (version: a positive integer directory)

Loading reads the config, picks versions by its version_policy (Triton's default: the
highest), opens an ONNX Runtime session per version off the event loop, checks the config
against the graph and only then swaps the new versions in; a failed load leaves the model
UNAVAILABLE with the reason, as Triton's repository index reports it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from carepulse.inference import metrics
from carepulse.inference.config import (
    DEFAULT_MODEL_FILENAME,
    build_spec,
    cpu_only,
    read_config,
    select_versions,
)
from carepulse.inference.errors import ModelLoadError, ModelNotFound
from carepulse.inference.model import ServedModel
from carepulse.inference.providers import select_providers
from carepulse.inference.runtime import OnnxRunner

log = logging.getLogger(__name__)

READY = "READY"
UNAVAILABLE = "UNAVAILABLE"
LOADING = "LOADING"
UNLOADING = "UNLOADING"


@dataclass(frozen=True, slots=True)
class IndexEntry:
    name: str
    version: str
    state: str
    reason: str = ""


@dataclass(slots=True)
class _Slot:
    """Everything known about one model name."""

    versions: dict[int, ServedModel] = field(default_factory=dict)
    state: str = ""
    reason: str = ""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ModelRepository:
    def __init__(self, root: Path, *, allowed_providers: Sequence[str] | None = None,
                 intra_op_threads: int = 0) -> None:
        self.root = root
        self._allowed = allowed_providers
        self._threads = intra_op_threads
        self._slots: dict[str, _Slot] = {}

    # ---- discovery ----

    def _model_dir(self, name: str) -> Path:
        # A model name is one directory level; refuse anything that could walk out of the root.
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise ModelNotFound(f"unknown model '{name}'")
        path = self.root / name
        if not path.is_dir():
            raise ModelNotFound(f"unknown model '{name}' (not in the model repository)")
        return path

    def names_on_disk(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    # ---- lookup ----

    def get(self, name: str, version: str = "") -> ServedModel:
        """The model version to serve; empty version: the highest loaded."""
        slot = self._slots.get(name)
        if slot is None or not slot.versions:
            raise ModelNotFound(f"unknown model '{name}'" if slot is None else f"model '{name}' is not loaded")
        if not version:
            return slot.versions[max(slot.versions)]
        try:
            served = slot.versions.get(int(version))
        except ValueError:
            served = None
        if served is None:
            raise ModelNotFound(
                f"model '{name}' has no version '{version}' being served (versions: {sorted(slot.versions)})"
            )
        return served

    def is_ready(self, name: str, version: str = "") -> bool:
        try:
            self.get(name, version)
        except ModelNotFound:
            return False
        return True

    def loaded(self) -> list[ServedModel]:
        return [m for slot in self._slots.values() for m in slot.versions.values()]

    def index(self, *, ready_only: bool = False) -> list[IndexEntry]:
        entries: list[IndexEntry] = []
        for name in sorted(set(self.names_on_disk()) | set(self._slots)):
            slot = self._slots.get(name)
            if slot is not None and slot.versions:
                entries.extend(IndexEntry(name, str(v), READY) for v in sorted(slot.versions))
            elif not ready_only:
                entries.append(IndexEntry(name, "", slot.state if slot else "", slot.reason if slot else ""))
        return entries

    # ---- load / unload ----

    async def load(self, name: str) -> list[ServedModel]:
        """Load (or reload) every version the policy selects; raises ModelLoadError on failure."""
        model_dir = self._model_dir(name)
        slot = self._slots.setdefault(name, _Slot())
        async with slot.lock:
            previous_state, slot.state, slot.reason = slot.state, LOADING, ""
            try:
                served = await asyncio.to_thread(self._open, model_dir)
            except ModelLoadError as e:
                slot.state, slot.reason = (READY if slot.versions else UNAVAILABLE), str(e)
                log.warning("model load failed", extra={"fields": {"model": name, "reason": str(e)}})
                raise
            except Exception as e:
                slot.state = READY if slot.versions else (previous_state or UNAVAILABLE)
                slot.reason = f"load failed: {type(e).__name__}"
                log.exception("model load failed", extra={"fields": {"model": name}})
                raise ModelLoadError(f"model '{name}': {slot.reason}") from None
            old = slot.versions
            for m in served:
                m.start()
            slot.versions = {m.version: m for m in served}
            slot.state, slot.reason = READY, ""
            for m in old.values():
                metrics.model_ready().labels(m.name, str(m.version), m.provider).set(0)
                await m.stop()
            for m in served:
                metrics.model_ready().labels(m.name, str(m.version), m.provider).set(1)
                log.info("model ready", extra={"fields": {
                    "model": m.name, "version": m.version, "provider": m.provider,
                    "max_batch_size": m.spec.max_batch_size,
                    "dynamic_batching": m.spec.dynamic_batching is not None,
                }})
            return served

    def _open(self, model_dir: Path) -> list[ServedModel]:
        """Blocking part of a load (runs on a worker thread)."""
        config = read_config(model_dir)
        filename = config.default_model_filename or DEFAULT_MODEL_FILENAME
        available = [int(p.name) for p in model_dir.iterdir()
                     if p.is_dir() and p.name.isdigit() and int(p.name) > 0 and (p / filename).is_file()]
        versions = select_versions(config, available)
        if not versions:
            raise ModelLoadError(f"model '{model_dir.name}': no version directory with {filename} "
                                 f"matches the version policy (found {sorted(available)})")
        providers = select_providers(self._allowed, cpu_only=cpu_only(config))
        served = []
        for version in versions:
            runner = OnnxRunner(model_dir / str(version) / filename, providers, intra_op_threads=self._threads,
                                cache_dir=model_dir / str(version) / ".trt-cache")
            spec, completed = build_spec(config, runner.inputs, runner.outputs)
            # The protocol's ModelMetadata has no field for it, so the provider travels in the config.
            completed.parameters["execution_provider"].string_value = runner.provider
            served.append(ServedModel(spec, version, completed, runner))
        return served

    async def unload(self, name: str) -> None:
        slot = self._slots.get(name)
        if slot is None:
            self._model_dir(name)  # NOT_FOUND if it is not in the repository either
            self._slots[name] = _Slot(state=UNAVAILABLE, reason="unloaded")
            return
        async with slot.lock:
            old, slot.versions = slot.versions, {}
            slot.state, slot.reason = UNLOADING, ""
            for m in old.values():
                metrics.model_ready().labels(m.name, str(m.version), m.provider).set(0)
                await m.stop()
            slot.state, slot.reason = UNAVAILABLE, "unloaded"
            log.info("model unloaded", extra={"fields": {"model": name, "versions": sorted(old)}})

    async def load_all(self, names: Sequence[str] | None = None) -> dict[str, str]:
        """Load ``names`` (default: every model on disk); return {name: error} for failures."""
        failures: dict[str, str] = {}
        for name in names if names is not None else self.names_on_disk():
            try:
                await self.load(name)
            except (ModelLoadError, ModelNotFound) as e:
                failures[name] = str(e)
        return failures

    async def close(self) -> None:
        for name in list(self._slots):
            if self._slots[name].versions:
                await self.unload(name)
