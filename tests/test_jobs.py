"""Job cache and failure handling: a diverged job is recorded with its reason, never dropped."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from bench.config import RunConfig
from bench.engine.jobs import JobCache, JobSpec
from bench.engine.runner import RunContext
from bench.registry import Registry
from bench.train.methods import METHODS, Method, MethodConfig
from bench.train.trainer import batch_slices


@dataclass(frozen=True)
class _DivergeConfig(MethodConfig):
    blow_up_at: float = 0.0


class _Diverges(Method):
    """Test-only method whose loss turns NaN."""

    name = "_diverges"
    Config = _DivergeConfig

    def __init__(self, cfg, info, width):
        super().__init__(cfg, info, width)
        self.encoder = nn.Linear(info.input_dim, width)

    def encode(self, x):
        return torch.relu(self.encoder(x))

    def loss_terms(self, x, y=None):
        return {"bad": torch.log(self.encoder.weight.sum() * 0 - 1.0)}  # log(-1) = NaN


@pytest.fixture
def diverging_method():
    METHODS.register()(_Diverges)
    yield "_diverges"
    METHODS._items.pop("_diverges")


def test_failed_job_is_cached_with_reason_and_becomes_a_row(diverging_method, digits, tmp_path):
    cfg = RunConfig(workers=1, out=str(tmp_path), seeds=[0])
    spec = JobSpec.make(diverging_method, _DivergeConfig(), "digits", cfg.data, 8, 0, 2, 64)
    cache = JobCache(tmp_path / "cache", torch.device("cpu"))
    enc = cache.get(spec, digits)
    assert not enc.ok and "non-finite" in enc.reason
    again = cache.get(spec, digits)
    assert again.cached and not again.ok and again.reason == enc.reason

    class _P:
        cfg = type("C", (), {"dataset": "digits", "width": 8})()

    ctx = RunContext(
        RunConfig(workers=1, out=str(tmp_path), seeds=[0], epochs=2), _P(), torch.device("cpu"), [diverging_method]
    )
    assert list(ctx.encoders()) == []
    (row,) = ctx.failure_rows
    assert row["metric"] == "job_failed" and row["method"] == diverging_method and "non-finite" in row["note"]


def test_cache_key_changes_with_everything_that_determines_the_encoder():
    cfg = RunConfig()
    base = JobSpec.make("infomax", cfg.method_config("infomax"), "digits", cfg.data, 16, 0, 5, 128)
    variants = [
        JobSpec.make("infomax_noem", cfg.method_config("infomax_noem"), "digits", cfg.data, 16, 0, 5, 128),
        JobSpec.make(
            "infomax",
            RunConfig(method_overrides={"infomax": {"lambda_tc": 0.5}}).method_config("infomax"),
            "digits",
            cfg.data,
            16,
            0,
            5,
            128,
        ),
        JobSpec.make("infomax", cfg.method_config("infomax"), "mnist5k", cfg.data, 16, 0, 5, 128),
        JobSpec.make("infomax", cfg.method_config("infomax"), "digits", cfg.data, 32, 0, 5, 128),
        JobSpec.make("infomax", cfg.method_config("infomax"), "digits", cfg.data, 16, 1, 5, 128),
        JobSpec.make("infomax", cfg.method_config("infomax"), "digits", cfg.data, 16, 0, 6, 128),
        JobSpec.make("infomax", cfg.method_config("infomax"), "digits", cfg.data, 16, 0, 5, 64),
    ]
    keys = {v.key for v in variants} | {base.key}
    assert len(keys) == len(variants) + 1
    assert base.key == JobSpec.make("infomax", cfg.method_config("infomax"), "digits", cfg.data, 16, 0, 5, 128).key


def test_editing_the_training_code_or_a_library_version_invalidates_the_entry(monkeypatch):
    import bench.engine.jobs as jobs

    cfg = RunConfig()
    spec = JobSpec.make("pca", cfg.method_config("pca"), "digits", cfg.data, 16, 0, 5, 128)
    key = spec.key
    from bench import provenance

    real = provenance.module_source
    monkeypatch.setattr(
        provenance,
        "module_source",
        lambda m: real(m) + ("\n# edited fit" if m.__name__ == "bench.train.trainer" else ""),
    )
    assert spec.key != key  # the trainer is hashed (the data code is not: tests/test_cache_keys.py)
    monkeypatch.setattr(provenance, "module_source", real)
    assert spec.key == key
    versions = provenance.library_versions(jobs.KEY_LIBRARIES)
    assert set(versions) >= {"torch", "scikit-learn", "timm"}
    monkeypatch.setattr(provenance, "library_versions", lambda libs=(): {**versions, "scikit-learn": "0.0-other"})
    assert spec.key != key


def test_cache_hit_skips_training(digits, tmp_path, monkeypatch):
    cfg = RunConfig()
    spec = JobSpec.make("infomax", cfg.method_config("infomax"), "digits", cfg.data, 8, 0, 2, 128)
    cache = JobCache(tmp_path, torch.device("cpu"))
    first = cache.get(spec, digits)
    monkeypatch.setattr(JobCache, "train", lambda *a, **k: pytest.fail("trained again on a cache hit"))
    second = cache.get(spec, digits)
    assert second.cached and torch.equal(first.features(digits.val.x), second.features(digits.val.x))
    assert [p.name for p in tmp_path.glob(".*")] == [".locks"] and not list(
        (tmp_path / ".locks").iterdir()
    )  # no leftovers


def test_registering_a_name_twice_is_an_error():
    reg = Registry("thing")
    reg.register("a")(object)
    with pytest.raises(ValueError, match="twice"):
        reg.register("a")(int)
    assert reg.names("a*") == ["a"]


def test_batch_slices_drop_only_a_tiny_tail():
    assert batch_slices(300, 128) == [(0, 128), (128, 256)]  # tail of 44 < 64 dropped
    assert batch_slices(330, 128)[-1] == (256, 330)
    assert batch_slices(50, 128) == [(0, 50)]
