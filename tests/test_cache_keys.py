"""Cache keys that follow the data: a job's key hashes the content of the data it reads
(``JobSpec.data_hash``), not the source of the data modules. Adding a dataset, a view or a loader
invalidates no cached encoder; a change to a job's data changes its key; a worker that loads other
data than the job was keyed on refuses the job."""

from __future__ import annotations

import dataclasses
import inspect
import sys

import pytest
import torch

import bench.data as data
from bench import provenance
from bench.config import RunConfig
from bench.data import DATASETS, DataConfig, Dataset, Split, load_dataset
from bench.engine.jobs import CODE_MODULES, DATA_MODULES, JobCache, JobSpec
from bench.engine.measure import MeasureCache, MeasureTask
from bench.engine.runner import RunContext
from bench.engine.worker import run_job, run_measure
from bench.protocol import PredictionConfig, row
from bench.train.methods import METHODS

CPU = torch.device("cpu")
DEFAULT = DataConfig()
# the data modules as they were hashed before (spelled out: the old code has no DATA_MODULES to import)
DATA_CODE = (
    "bench.data",
    "bench.data.core",
    "bench.data.embedded",
    "bench.data.views",
    "bench.data.sprites",
    "bench.data.fullsize",
)


class _Stub:
    """The little of a prediction a RunContext reads to build jobs."""

    name = "_keys_stub"
    cfg = PredictionConfig(dataset="digits", width=8)

    def measure_nothing(self, enc, src):
        return [row(enc, "nothing", 0.0)]


def _ctx(tmp_path, data: DataConfig = DEFAULT) -> RunContext:
    cfg = RunConfig(seeds=[0], epochs=2, workers=1, out=str(tmp_path), data=data)
    return RunContext(cfg, _Stub(), CPU, ["infomax"])


def _never_train(*a, **k):
    pytest.fail("trained again: the cached encoder was a miss")


# ----------------------------------------------------------------------------- (1) adding a dataset keeps the cache
def load_digits_mirrored(cfg: DataConfig) -> Dataset:
    """Test-only dataset: ``digits`` mirrored left-right (a new dataset, added after the job was cached)."""
    d = load_dataset("digits", cfg)

    def flip(s: Split) -> Split:
        return Split(s.x.view(-1, 8, 8).flip(-1).reshape(-1, 64).contiguous(), s.y, s.factors)

    return dataclasses.replace(d, name="_digits_mirrored", train=flip(d.train), val=flip(d.val), test=flip(d.test))


def test_adding_a_dataset_keeps_a_cached_digits_encoder_a_hit(tmp_path, monkeypatch):
    ctx = _ctx(tmp_path)
    spec = ctx.spec("infomax", 8, 0)
    cache = JobCache(tmp_path / "cache", CPU)
    first = cache.get(spec, ctx.dataset())
    assert first.ok and not first.cached
    key = spec.key  # a property: computed again below, after the dataset is added

    # add a dataset: its loader in the registry, its source in the data modules (as a new loader there would be)
    DATASETS.register("_digits_mirrored")(load_digits_mirrored)
    try:
        real, added = provenance.module_source, inspect.getsource(load_digits_mirrored)
        monkeypatch.setattr(provenance, "module_source", lambda m: real(m) + (added if m.__name__ in DATA_CODE else ""))
        mirrored = load_dataset("_digits_mirrored")
        assert mirrored.input_dim == 64 and not torch.equal(mirrored.train.x, ctx.dataset().train.x)

        later = _ctx(tmp_path)  # the next run, after the dataset was added
        again = later.spec("infomax", 8, 0)
        assert again.key == key and spec.key == key
        monkeypatch.setattr(JobCache, "train", _never_train)
        hit = JobCache(tmp_path / "cache", CPU).get(again, later.dataset())
        assert hit.ok and hit.cached
        x = later.dataset().val.x
        assert torch.equal(hit.features(x), first.features(x))
    finally:
        DATASETS._items.pop("_digits_mirrored", None)
        data._CACHE.pop(("_digits_mirrored", DataConfig()), None)


# ----------------------------------------------------------------------------- (2) the key follows the data
def _spec(ds: Dataset) -> JobSpec:
    cfg = RunConfig()
    return JobSpec.make("infomax", cfg.method_config("infomax"), "digits", cfg.data, 8, 0, 2, 128, ds=ds)


def _with(ds: Dataset, split: str, **parts) -> Dataset:
    return dataclasses.replace(ds, **{split: dataclasses.replace(getattr(ds, split), **parts)})


def test_a_change_to_the_data_a_job_reads_changes_its_key(digits):
    base = _spec(digits).key
    x, y = digits.train.x.clone(), digits.train.y.clone()
    x[3, 17] += 1e-3
    y[5] = (y[5] + 1) % 10
    vx = digits.val.x.clone()
    vx[0, 0] += 1.0
    changed = {
        "a train pixel": _with(digits, "train", x=x),
        "a train label": _with(digits, "train", y=y),
        "the train dtype": _with(digits, "train", x=digits.train.x.double()),
        "one train row fewer": _with(digits, "train", x=digits.train.x[1:], y=digits.train.y[1:]),
        "train factors": _with(digits, "train", factors=torch.zeros(len(digits.train.x), 1)),
        "a val pixel (the convergence flag)": _with(digits, "val", x=vx),
        "the image shape": dataclasses.replace(digits, image_shape=None),
        "the classes": dataclasses.replace(digits, n_classes=11),
    }
    keys = {what: _spec(ds).key for what, ds in changed.items()}
    assert all(k != base for k in keys.values()), [w for w, k in keys.items() if k == base]
    assert len(set(keys.values())) == len(keys)
    # what a job does not read: the test split, the name, the description
    tx = digits.test.x.clone()
    tx[0, 0] += 1.0
    same = [_with(digits, "test", x=tx), dataclasses.replace(digits, name="other", description="other")]
    assert all(_spec(ds).key == base for ds in same)


def test_another_split_seed_changes_the_data_hash_and_the_key(tmp_path):
    a, b = _ctx(tmp_path).spec("infomax", 8, 0), _ctx(tmp_path, DataConfig(split_seed=1)).spec("infomax", 8, 0)
    assert a.data_hash != b.data_hash and a.key != b.key
    assert a.data_hash == load_dataset("digits").content_hash


def test_the_data_hash_is_memoised_and_computed_from_cpu_bytes(monkeypatch):
    cfg = DataConfig(split_seed=11)  # a fresh load: no memo yet
    calls = []
    real = data.content_hash
    import bench.data.core as core  # where Dataset.content_hash looks it up

    monkeypatch.setattr(core, "content_hash", lambda ds: calls.append(1) or real(ds))
    one, two = load_dataset("digits", cfg), load_dataset("digits", cfg)
    h = one.content_hash
    assert two.content_hash == one.to("cpu").content_hash == h and len(calls) == 1  # once per loaded dataset

    def rebuilt(s: Split) -> Split:
        return Split(*(None if t is None else t.cpu().clone() for t in (s.x, s.y, s.factors)))

    fresh = dataclasses.replace(one, train=rebuilt(one.train), val=rebuilt(one.val), test=rebuilt(one.test))
    assert real(fresh) == h and fresh.content_hash == h  # replace starts a fresh memo: recomputed, equal
    assert real(load_dataset("digits", DataConfig(split_seed=12))) != h


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_data_hash_is_the_same_on_cuda():
    ds = load_dataset("digits")
    assert data.content_hash(ds.to("cuda")) == data.content_hash(ds) == ds.to("cuda").content_hash


def test_the_data_modules_are_not_in_the_code_hash(monkeypatch):
    cfg = RunConfig()
    spec = JobSpec.make("simclr", cfg.method_config("simclr"), "digits", cfg.data, 8, 0, 2, 128)
    key = spec.key
    real = provenance.module_source

    def edit(name: str):
        return lambda m: real(m) + ("\n# edit" if m.__name__ == name else "")

    for name in DATA_CODE:
        monkeypatch.setattr(provenance, "module_source", edit(name))
        assert spec.key == key, name
    monkeypatch.setattr(provenance, "module_source", edit("bench.train.augment"))
    assert spec.key != key  # what the method imports from the project stays in it


# ----------------------------------------------------------------------------- (3) a worker with other data refuses
def _foreign_spec(digits) -> JobSpec:
    """A digits job keyed on data this process does not load (a main process with other files)."""
    x = digits.train.x.clone()
    x[0, 0] += 0.5
    return _spec(_with(digits, "train", x=x))


def test_a_worker_refuses_a_job_keyed_on_other_data(digits, tmp_path):
    root = tmp_path / "cache"
    bad = _foreign_spec(digits)
    out = run_job(bad, str(root), "cpu", torch.get_num_threads())
    assert out["status"] == "failed" and out["worker_error"] and out["key"] == bad.key
    assert bad.data_hash in out["reason"] and digits.content_hash in out["reason"]
    assert not JobCache(root, CPU).has(bad)  # nothing cached under the wrong key
    good = run_job(_spec(digits), str(root), "cpu", torch.get_num_threads())
    assert good["status"] == "ok" and not good.get("worker_error")
    with pytest.raises(ValueError, match="other data"):  # in-process too: the cache refuses to train it
        JobCache(root, CPU).get(bad, digits)
    assert not JobCache(root, CPU).has(bad)


def test_a_measuring_worker_refuses_a_job_keyed_on_other_data(digits, tmp_path):
    root = tmp_path / "cache"
    bad = _foreign_spec(digits)
    task = MeasureTask.make(bad, _Stub().measure_nothing, (), bad.data_cfg, "cpu")
    out = run_measure(task, str(root), "cpu", torch.get_num_threads())
    assert out["status"] == "failed" and out["worker_error"] and out["measured"] is None
    assert bad.data_hash in out["reason"] and "other data" in out["reason"]
    assert not JobCache(root, CPU).has(bad) and not MeasureCache(root).has(task.key)


def test_a_stack_key_hashes_the_methods_its_layers_train(monkeypatch):
    """A composite's key covers the source of every method it trains, and only those: editing ``baselines.ae``
    retrains an ae stack, not an infomax one."""
    from baselines.stack import StackConfig

    cfg = RunConfig()
    specs = {
        layers: JobSpec.make("stack", StackConfig(layers=layers), "digits", cfg.data, 8, 0, 2, 128)
        for layers in (("infomax", "ae"), ("infomax", "infomax"), ("rbm", "rbm", "identity"))
    }
    keys = {layers: s.key for layers, s in specs.items()}
    real = provenance.module_source

    def edit(name: str):
        return lambda m: real(m) + ("\n# edit" if m.__name__ == name else "")

    for module, changed in (
        ("baselines.ae", {("infomax", "ae")}),
        ("baselines.rbm", {("rbm", "rbm", "identity")}),
        (METHODS.get("infomax").__module__, {("infomax", "ae"), ("infomax", "infomax")}),
    ):
        monkeypatch.setattr(provenance, "module_source", edit(module))
        assert {layers for layers, s in specs.items() if s.key != keys[layers]} == changed, module
    monkeypatch.setattr(provenance, "module_source", real)
    plain = JobSpec.make("infomax", cfg.method_config("infomax"), "digits", cfg.data, 8, 0, 2, 128)
    # a plain method's code hash is what it was before composites: its own classes' modules and the trainer's
    # (not a literal key: the key also hashes the library versions, which CI's minimum-versions pass changes)
    cls = METHODS.get("infomax")
    own = dict.fromkeys(
        sys.modules[c.__module__] for c in cls.__mro__ if c.__module__.split(".")[0] in provenance.PROJECT
    )
    before = provenance.code_hash([*own, *CODE_MODULES], exclude=DATA_MODULES | {"bench.registry"}, length=12)
    assert plain.code_version() == before


def test_a_pretrain_n_naming_the_whole_default_set_shares_the_default_key(tmp_path):
    """mnist1d at its default 16,384 draws and mnist5k at all 3,500 train rows are the default data: one key.
    Any other N keeps its own key, and so does a class view (its pretrain_n cuts the view)."""
    ctx = _ctx(tmp_path)

    def key(dataset, data):
        return ctx.spec("infomax", 8, 0, dataset, data).key

    assert key("mnist1d", {"pretrain_n": 16_384}) == key("mnist1d", None)
    assert key("mnist1d", {"pretrain_n": 4_096}) != key("mnist1d", None)
    assert key("mnist5k", {"pretrain_n": 3_500}) == key("mnist5k", None)
    assert key("mnist5k", {"pretrain_n": 1_750}) != key("mnist5k", None)
    assert ctx.dataset("mnist1d", {"pretrain_n": 16_384}) is ctx.dataset("mnist1d")
    view = ctx.data_config({"pretrain_n": 875}, name="mnist5k[0-4]")
    assert view.pretrain_n == 875
