"""Jobs: (method, method config, dataset, width, seed, budget) -> trained encoder, cached.

A job is content-addressed: its key hashes everything that determines the trained
encoder (package version included), so a rerun and every prediction reuse the same
encoder. The cache holds ``state.pt`` (a state dict, loaded with ``weights_only=True``) and
``meta.json`` (status, failure reason, timings, loss history, diagnostics). A diverged job
is cached as failed with its reason: rerunning it would diverge again.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import inspect
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import bench
from bench.data import DataConfig, Dataset
from bench.methods import METHODS, DataInfo, Method
from bench.trainer import JobFailed, train


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

    def code_version(self) -> str:
        """Hash of the source that trains this encoder: the method's module, the project
        modules it uses (base classes, augmentations, losses), the trainer, the losses, the data
        module (scaling, splits, generators: a changed split must not reuse an encoder that may
        have trained on what is now test data) and this module (seeding, fitting).
        Editing any of them invalidates the cached encoder instead of reusing a stale one."""
        cls = METHODS.get(self.method)
        mods = {sys.modules[c.__module__] for c in cls.__mro__ if _in_project(c.__module__)}
        mods |= {sys.modules[m] for m in CODE_MODULES}
        for mod in list(mods):
            for obj in vars(mod).values():
                used = inspect.getmodule(obj)
                if used is not None and _in_project(used.__name__):
                    mods.add(used)
        srcs = [module_source(m) for m in sorted(mods, key=lambda m: m.__name__)]
        return hashlib.sha256("\n".join(srcs).encode()).hexdigest()[:12]

    def identity(self) -> dict[str, Any]:
        data_cfg = dataclasses.asdict(self.data_cfg)
        data_cfg.pop("root", None)  # where the files live does not change the encoder
        data_cfg.pop("download", None)
        return {
            "bench_version": bench.__version__,
            "code": self.code_version(),
            "libraries": library_versions(),
            "method": self.method,
            "method_cfg": dataclasses.asdict(self.method_cfg),
            "dataset": self.dataset,
            "data_cfg": data_cfg,
            "width": self.width,
            "seed": self.seed,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
        }

    @property
    def key(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str)
        return f"{self.method}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


@dataclass
class Encoder:
    """A trained (or loaded) encoder and what its training recorded."""

    spec: JobSpec
    method: Method | None
    status: str  # "ok" | "failed"
    reason: str = ""
    train_seconds: float = 0.0
    cached: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Deployed features of ``x`` (N, D) -> (N, K), in eval mode, on x's device."""
        assert self.method is not None, f"job {self.spec.key} failed: {self.reason}"
        return self.method.encode_all(x)


# project modules every encoder depends on, whatever its method
CODE_MODULES = ("bench.trainer", "bench.losses", "bench.methods", "bench.data", "bench.data_views", "bench.sprites",
                "bench.torchvision_data", "bench.jobs")
# libraries whose numerics shape a trained encoder (their version is part of the cache key)
KEY_LIBRARIES = ("torch", "numpy", "sklearn", "timm")


def module_source(module) -> str:
    """A module's source text (its name when it has none, e.g. exec'd in a test)."""
    try:
        return inspect.getsource(module)
    except (OSError, TypeError):
        return module.__name__


@functools.cache
def library_versions() -> dict[str, str]:
    """``{library: version}`` of :data:`KEY_LIBRARIES` (``"absent"`` when not importable)."""
    out = {}
    for name in KEY_LIBRARIES:
        try:
            out[name] = importlib.import_module(name).__version__
        except ImportError:
            out[name] = "absent"
    return out


def _in_project(module: str) -> bool:
    return module.split(".")[0] in ("bench", "baselines") and module not in ("bench.registry",)


def data_info(ds: Dataset) -> DataInfo:
    return DataInfo(ds.input_dim, ds.n_classes, ds.image_shape)


def build(spec: JobSpec, info: DataInfo) -> Method:
    return METHODS.get(spec.method)(spec.method_cfg, info, spec.width)


def _atomic_dir_write(final: Path, files: dict[str, bytes]) -> None:
    """Write all files into a temporary sibling directory, then rename it into place."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


class JobCache:
    """Trains or loads encoders for one dataset on one device."""

    def __init__(self, root: str | Path, device: torch.device):
        self.root = Path(root)
        self.device = device

    def path(self, spec: JobSpec) -> Path:
        return self.root / spec.key

    def load(self, spec: JobSpec, ds: Dataset) -> Encoder | None:
        d = self.path(spec)
        if not (d / "meta.json").exists():
            return None
        meta = json.loads((d / "meta.json").read_text())
        if meta["status"] != "ok":
            return Encoder(spec, None, meta["status"], meta.get("reason", ""), meta.get("train_seconds", 0.0), True, meta)
        method = build(spec, data_info(ds)).to(self.device)
        state = torch.load(d / "state.pt", map_location=self.device, weights_only=True)
        method.load_state_dict(state)
        method.eval()
        return Encoder(spec, method, "ok", "", meta["train_seconds"], True, meta)

    def get(self, spec: JobSpec, ds: Dataset, on_epoch=None) -> Encoder:
        """The cached encoder for ``spec``, training (and caching) it on a miss."""
        hit = self.load(spec, ds)
        if hit is not None:
            return hit
        enc = self.train(spec, ds, on_epoch)
        files = {"meta.json": json.dumps(enc.meta, indent=1, default=str).encode()}
        if enc.ok:
            buf = _to_bytes({k: v.detach().cpu() for k, v in enc.method.state_dict().items()})
            files["state.pt"] = buf
        _atomic_dir_write(self.path(spec), files)
        return enc

    def train(self, spec: JobSpec, ds: Dataset, on_epoch=None) -> Encoder:
        torch.manual_seed(spec.seed)
        method = build(spec, data_info(ds)).to(self.device)
        x, y = ds.train.x, ds.train.y
        y = y if method.uses_labels else None
        meta: dict[str, Any] = {"spec": spec.identity(), "key": spec.key, "device": str(self.device)}
        t0 = time.perf_counter()
        try:
            if method.kind == "gradient":
                log = train(method, x, y, epochs=spec.epochs, batch_size=spec.batch_size, seed=spec.seed, on_epoch=on_epoch)
                meta["history"] = log.history
                meta["final_loss"] = log.final
            elif method.kind == "fit":
                method.fit(x, y, spec.seed)
            a = method.encode_all(x)
            if not torch.isfinite(a).all():
                raise JobFailed("non-finite features on the training set")
        except JobFailed as e:
            meta.update(status="failed", reason=e.reason, train_seconds=time.perf_counter() - t0, history=e.history)
            return Encoder(spec, None, "failed", e.reason, meta["train_seconds"], False, meta)
        meta["train_seconds"] = time.perf_counter() - t0
        meta["status"] = "ok"
        w = method.encoder_weight()
        meta["diagnostics"] = {
            "act_scale": float(a.abs().max()),  # max |a| on train: InfoMax's -log Var is unbounded below
            "act_mean": float(a.mean()),
            "encoder_weight_norm": float(w.detach().norm()) if w is not None else float("nan"),
            "n_params_encoder": method.n_params_encoder(),
            "n_params_train": method.n_params_train(),
        }
        return Encoder(spec, method, "ok", "", meta["train_seconds"], False, meta)


def _to_bytes(state: dict[str, torch.Tensor]) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()
