"""Jobs: (method, method config, dataset, width, seed, budget) -> trained encoder, cached.

A job is content-addressed: its key hashes everything that determines the trained
encoder (package version included), so a rerun and every prediction reuse the same
encoder. The data enters the key by content, not by code: ``JobSpec.data_hash`` is
:attr:`bench.data.Dataset.content_hash` of the data the job reads (its train and val tensors,
their dtypes and shapes, and the sizes that shape the model), while the code in the key is the
trainer's, the losses', the method's and what they import, never the data modules'
(:data:`DATA_MODULES`): adding a dataset, a view or a loader invalidates no encoder whose data
did not change, and a changed split or loader that changes a job's data retrains that job. A
process (a worker) that loads other data than the job was keyed on refuses to train or measure
it (:func:`data_mismatch`).

The cache holds ``state.pt`` (a state dict, loaded with ``weights_only=True``) and
``meta.json`` (status, failure reason, timings, loss history, diagnostics, the convergence flag
``under_trained`` with its scores in ``convergence`` (:mod:`bench.train.convergence`), the job's identity
and the SHA-256 of ``state.pt``). A diverged job is cached as failed with its reason:
rerunning it would diverge again.

Many processes (``workers=N``, a Dask or Slurm cluster, two runs at once) share one cache
directory. Each entry is written by one writer: it holds ``.locks/KEY.lock`` (an ``flock``,
which the kernel releases when its process dies, so a SIGKILLed writer leaves no stale lock)
while it trains, and renames a complete temporary directory into place. Readers never see a
half-written entry; a waiting process polls for the entry and takes the lock over when its
holder dies. An entry whose checksum or identity does not match (truncated, foreign, written
by another version) is reported in one warning line and retrained.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import bench
from bench import provenance
from bench.data import DataConfig, Dataset, load_dataset
from bench.data.core import data_identity
from bench.protocol import Encoder
from bench.storage import (
    HOST,
    POLL_SECONDS,
    EntryLock,
    _tmp_name,
    atomic_dir_write,
    pid_alive,
    sweep_locks,
    sweep_orphans,
)
from bench.train import seedbatch
from bench.train.methods import METHODS, Method
from bench.train.trainer import build, data_info, fit_encoder

__all__ = [
    "CODE_MODULES",
    "DATA_MODULES",
    "HOST",
    "EntryLock",
    "Encoder",
    "JobCache",
    "JobSpec",
    "_tmp_name",
    "build",
    "data_info",
    "data_mismatch",
    "pid_alive",
    "sweep_orphans",
]


@dataclass(frozen=True)
class JobSpec:
    method: str
    method_cfg: Any  # the method's frozen Config dataclass
    dataset: str
    data_cfg: DataConfig
    width: int
    seed: int
    epochs: int
    batch_size: int
    data_hash: str  # Dataset.content_hash of the data the job reads (its own split): the data's part of the key
    compile: bool = False  # compile=true: bench.train.compiled's fused step (other numerics: a job of its own)

    @classmethod
    def make(
        cls,
        method: str,
        method_cfg: Any,
        dataset: str,
        data_cfg: DataConfig,
        width: int,
        seed: int,
        epochs: int,
        batch_size: int,
        ds: Dataset | None = None,
        compile: bool = False,
    ) -> JobSpec:
        """The job on ``ds`` (default: ``load_dataset(dataset, data_cfg)``, memoised), its data hash filled in."""
        ds = load_dataset(dataset, data_cfg) if ds is None else ds
        return cls(method, method_cfg, dataset, data_cfg, width, seed, epochs, batch_size, ds.content_hash, compile)

    def code_version(self) -> str:
        """Hash of the source that trains this encoder: the method's module, the project modules it uses
        (base classes, augmentations, losses), the trainer (seeding, fitting) and the losses; for a composite
        (``component_methods(cfg)``: a stack) the same of every method it trains. Editing any of them
        invalidates the cached encoder instead of reusing a stale one. Not part of it: this module (the
        cache's bookkeeping) and the data modules (:data:`DATA_MODULES`): the data enters the key by content
        (:attr:`data_hash`), so a changed split or loader retrains exactly the jobs whose data it changes."""
        cls = METHODS.get(self.method)  # a composite (a stack): the methods it trains are its code too
        parts = getattr(cls, "component_methods", lambda cfg: [])(self.method_cfg)
        mro = [c for k in (cls, *map(METHODS.get, parts)) for c in k.__mro__]
        project = provenance.PROJECT
        roots = list(dict.fromkeys(sys.modules[c.__module__] for c in mro if c.__module__.split(".")[0] in project))
        return provenance.code_hash([*roots, *CODE_MODULES], exclude=DATA_MODULES | {"bench.registry"}, length=12)

    def cell(self) -> JobSpec:
        """The job with its seed, split seed and data hash blanked: the seeds of one cell share it (they may
        train together, :meth:`JobCache.get_group`)."""
        return dataclasses.replace(
            self, seed=-1, data_hash="", data_cfg=dataclasses.replace(self.data_cfg, split_seed=-1)
        )

    def identity(self) -> dict[str, Any]:
        data_cfg = data_identity(self.data_cfg)  # no root / download; fields added later only when set
        ident = {
            "bench_version": bench.__version__,
            "code": self.code_version(),
            "libraries": provenance.library_versions(KEY_LIBRARIES),
            "method": self.method,
            "method_cfg": dataclasses.asdict(self.method_cfg),
            "dataset": self.dataset,
            "data_cfg": data_cfg,
            "data_hash": self.data_hash,
            "width": self.width,
            "seed": self.seed,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
        }
        if self.compile:  # only when set: the eager jobs' keys stay what they were
            ident["compile"] = True
            ident["compile_code"] = provenance.code_hash(
                [importlib.import_module("bench.train.compiled")], exclude=DATA_MODULES, length=12
            )
        return ident

    @property
    def key(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str)
        return f"{self.method}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


# project modules every encoder depends on, whatever its method
CODE_MODULES = (
    "bench.train.trainer",
    "bench.train.loop",
    "bench.train.seedbatch",
    "bench.train.losses",
    "bench.train.methods",
)
# the data's code: never hashed into a job's key (JobSpec.data_hash hashes the data itself)
DATA_MODULES = frozenset(
    {
        "bench.data",
        "bench.data.core",
        "bench.data.embedded",
        "bench.data.views",
        "bench.data.sprites",
        "bench.data.fullsize",
        "bench.data.mnist1d",
        "bench.data.subsets",
    }
)
# libraries whose numerics shape a trained encoder (their version is part of the cache key)
KEY_LIBRARIES = ("torch", "numpy", "scikit-learn", "timm")


def data_mismatch(spec: JobSpec, ds: Dataset) -> str:
    """Why ``ds`` is not the data ``spec`` was keyed on ("" when it is): a worker that loads other
    data (other files, other loader code) must not cache an encoder under this key."""
    if ds.content_hash == spec.data_hash:
        return ""
    return (
        f"the {spec.dataset} data loaded here (split_seed {spec.data_cfg.split_seed}) hashes to {ds.content_hash}, "
        f"but the job was keyed on {spec.data_hash}: this process loads other data (other files or loader code)"
    )


class CacheCorrupt(Exception):
    """A cache entry that cannot be trusted; the message says why."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _normal(obj: Any) -> Any:
    """JSON round trip, so an identity compares equal to what was written (tuples -> lists)."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


class JobCache:
    """Trains or loads encoders for one device; safe to share between processes and hosts."""

    def __init__(self, root: str | Path, device: torch.device, warn: Callable[[str], None] | None = None):
        self.root = Path(root)
        self.device = device
        self.warn = warn or (lambda msg: print(f"bench: warning: {msg}", file=sys.stderr, flush=True))
        self.trained: list[str] = []  # keys this process trained (the concurrency test reads them)
        sweep_orphans(self.root)
        sweep_locks(self.root / ".locks")

    def path(self, spec: JobSpec) -> Path:
        return self.root / spec.key

    def has(self, spec: JobSpec) -> bool:
        """Whether an entry is there (not yet checked: :meth:`load` does that)."""
        return (self.path(spec) / "meta.json").exists()

    def lock(self, spec: JobSpec) -> EntryLock:
        return EntryLock(self.root / ".locks" / f"{spec.key}.lock")

    def read_meta(self, spec: JobSpec) -> dict[str, Any] | None:
        """The entry's checked metadata; None when absent. Raises CacheCorrupt."""
        d = self.path(spec)
        try:
            raw = (d / "meta.json").read_bytes()
        except FileNotFoundError:
            return None
        try:
            meta = json.loads(raw)
        except ValueError:
            raise CacheCorrupt("meta.json is not valid JSON (truncated?)") from None
        if not isinstance(meta, dict) or meta.get("key") != spec.key:
            raise CacheCorrupt(
                f"meta.json belongs to another job ({meta.get('key') if isinstance(meta, dict) else '?'})"
            )
        if _normal(meta.get("spec")) != _normal(spec.identity()):
            raise CacheCorrupt("its recorded identity differs from the job's (another version?)")
        if meta.get("status") not in ("ok", "failed"):
            raise CacheCorrupt(f"unknown status {meta.get('status')!r}")
        return meta

    def load(self, spec: JobSpec, ds: Dataset, quiet: bool = False) -> Encoder | None:
        """The cached encoder, or None when absent or untrustworthy (one warning line; retrain)."""
        try:
            meta = self.read_meta(spec)
            if meta is None:
                return None
            if meta["status"] != "ok":
                return Encoder(
                    spec, None, meta["status"], meta.get("reason", ""), meta.get("train_seconds", 0.0), True, meta
                )
            try:
                data = (self.path(spec) / "state.pt").read_bytes()
            except FileNotFoundError:
                raise CacheCorrupt("state.pt is missing") from None
            if _sha256(data) != meta.get("state_sha256"):
                raise CacheCorrupt("state.pt does not match its checksum (truncated or replaced)")
            method = build(spec.method, spec.method_cfg, data_info(ds), spec.width).to(self.device)
            try:
                state = torch.load(io.BytesIO(data), map_location=self.device, weights_only=True)
                method.load_state_dict(state)
            except Exception as e:  # a checksummed file that still does not fit: another architecture
                raise CacheCorrupt(
                    f"state.pt does not load ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
                ) from None
            method.eval()
            return Encoder(spec, method, "ok", "", meta["train_seconds"], True, meta)
        except CacheCorrupt as e:
            if not quiet:
                self.warn(f"cache entry {self.path(spec)} is unusable: {e}; retraining it")
            return None

    def get(self, spec: JobSpec, ds: Dataset, on_epoch=None, on_wait: Callable[[dict], None] | None = None) -> Encoder:
        """The cached encoder for ``spec``; on a miss, train it under the entry's lock and cache it.

        When another process holds the lock, wait for its entry (polling) instead of training the
        same job twice; take over when that process dies."""
        waited = False
        while True:
            hit = self.load(spec, ds)
            if hit is not None:
                return hit
            lock = self.lock(spec)
            if lock.acquire():
                try:
                    if (self.path(spec) / "meta.json").exists():  # written while we looked (or the bad one)
                        hit = self.load(spec, ds, quiet=True)
                        if hit is not None:
                            return hit
                    return self._train_and_store(spec, ds, on_epoch)
                finally:
                    lock.release()
            if not waited and on_wait is not None:
                on_wait(lock.holder())
            waited = True
            time.sleep(POLL_SECONDS)

    def get_group(self, specs: list[JobSpec], datasets: list[Dataset], on_epoch=None) -> list[Encoder]:
        """:meth:`get` for the seeds of one cell (``specs`` differ only in their seed and split):
        the cached ones are loaded, and the missing ones whose lock this process gets train together
        (:func:`bench.train.seedbatch.train_group`: bit-identical to one at a time), each cached as its own
        entry. Seeds another process is training are waited for, one by one, as :meth:`get` does."""
        if any(s.compile for s in specs):  # a compiled step is one seed's graph: one at a time
            return [self.get(s, ds, on_epoch) for s, ds in zip(specs, datasets, strict=True)]
        found: dict[str, Encoder] = {}
        held: list[tuple[JobSpec, Dataset, EntryLock]] = []
        try:
            for spec, ds in zip(specs, datasets, strict=True):
                hit = self.load(spec, ds)
                if hit is None:
                    lock = self.lock(spec)
                    if not lock.acquire():
                        continue
                    if (self.path(spec) / "meta.json").exists():  # written while we looked
                        hit = self.load(spec, ds, quiet=True)
                    if hit is None:
                        held.append((spec, ds, lock))
                        continue
                    lock.release()
                found[spec.key] = hit
            for spec, ds, _ in held:
                if why := data_mismatch(spec, ds):  # never cache an encoder under a key that names other data
                    raise ValueError(why)
            if held:
                group = [s for s, _, _ in held]
                s0 = group[0]
                trained = seedbatch.train_group(
                    s0.method,
                    s0.method_cfg,
                    [d for _, d, _ in held],
                    s0.width,
                    [s.seed for s in group],
                    epochs=s0.epochs,
                    batch_size=s0.batch_size,
                    device=self.device,
                    on_epoch=on_epoch,
                )
                for (spec, _, lock), (method, meta) in zip(held, trained, strict=True):
                    found[spec.key] = self._store(self._encoder(spec, method, meta))
                    lock.release()  # at once: a kill while the next seed is written leaves no lock behind it
        finally:
            for _, _, lock in held:
                lock.release()
        return [found.get(spec.key) or self.get(spec, ds) for spec, ds in zip(specs, datasets, strict=True)]

    def _train_and_store(self, spec: JobSpec, ds: Dataset, on_epoch=None) -> Encoder:
        return self._store(self.train(spec, ds, on_epoch))

    def _store(self, enc: Encoder) -> Encoder:
        spec = enc.spec
        files: dict[str, bytes] = {}
        if enc.ok:
            files["state.pt"] = _to_bytes({k: v.detach().cpu() for k, v in enc.method.state_dict().items()})
            enc.meta["state_sha256"] = _sha256(files["state.pt"])
        enc.meta["written_by"] = {"pid": os.getpid(), "host": HOST}
        files["meta.json"] = json.dumps(enc.meta, indent=1, default=str).encode()
        atomic_dir_write(self.path(spec), files)
        self.trained.append(spec.key)
        return enc

    def train(self, spec: JobSpec, ds: Dataset, on_epoch=None) -> Encoder:
        if why := data_mismatch(spec, ds):  # never cache an encoder under a key that names other data
            raise ValueError(why)
        method, meta = fit_encoder(
            spec.method,
            spec.method_cfg,
            ds,
            spec.width,
            spec.seed,
            epochs=spec.epochs,
            batch_size=spec.batch_size,
            device=self.device,
            on_epoch=on_epoch,
            compile=spec.compile,
        )
        return self._encoder(spec, method, meta)

    @staticmethod
    def _encoder(spec: JobSpec, method: Method | None, meta: dict[str, Any]) -> Encoder:
        meta = {"spec": spec.identity(), "key": spec.key, **meta}
        return Encoder(spec, method, meta["status"], meta.get("reason", ""), meta["train_seconds"], False, meta)


def _to_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()
