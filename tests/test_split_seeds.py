"""Split seeds (docs/protocol.md, data and profiles): ``split_seed`` fixes the split and the generated
data; in ``confirm`` it is the job's seed, for the job and for every measurement of its encoder;
outside ``confirm`` nothing depends on the seed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bench.config import RunConfig
from bench.data import DATASETS, DataConfig, load_dataset
from bench.engine.jobs import JobSpec
from bench.engine.measure import MeasureTask
from bench.engine.runner import RunContext
from bench.protocol import Prediction, PredictionConfig, row
from bench.train import seedbatch, trainer

CPU = torch.device("cpu")
SMALL = DataConfig(n=600)  # dsprites / ica draws: small, the split logic is the same


def _fingerprint(ds) -> float:
    """One number that differs between splits (and generated draws) and not between loads."""
    return float(ds.train.x.double().sum() + 7.0 * ds.val.x.double().sum())


class _SplitProbe(Prediction):
    """Test-only prediction: its measurement reports which split ``src.dataset`` served it."""

    name = "_split_probe"
    Config = PredictionConfig

    def measure_split(self, enc, src, other: str):
        own = src.dataset(enc.spec.dataset)
        return [row(enc, "own", _fingerprint(own)), row(enc, "other", _fingerprint(src.dataset(other)))]


def _ctx(tmp_path, profile: str, seeds: list[int], dataset: str = "digits", data: DataConfig = SMALL) -> RunContext:
    # epochs given: resolved_epochs needs no EPOCHS entry for the profile (confirm's is the lead's)
    cfg = RunConfig(profile=profile, seeds=seeds, epochs=2, workers=1, out=str(tmp_path), data=data)
    return RunContext(cfg, _SplitProbe(PredictionConfig(dataset=dataset, width=8)), CPU, ["infomax"])


# ----------------------------------------------------------------------------- split_seed fixes generated data
@pytest.mark.parametrize("name", ["dsprites", "ica"])
def test_split_seed_fixes_generated_data(name):
    load = DATASETS.get(name)  # the loader itself: no memo between the two loads of one seed
    a, b, c = (
        load(DataConfig(n=600, split_seed=0)),
        load(DataConfig(n=600, split_seed=0)),
        load(DataConfig(n=600, split_seed=1)),
    )
    for part in ("train", "val", "test"):
        pa, pb, pc = getattr(a, part), getattr(b, part), getattr(c, part)
        assert torch.equal(pa.x, pb.x) and torch.equal(pa.factors, pb.factors)
        assert not torch.equal(pa.factors, pc.factors) and not torch.equal(pa.x, pc.x)
    if name == "dsprites":  # the draws themselves differ, not only their order in the split
        draws = [torch.cat([d.train.factors, d.val.factors, d.test.factors]) for d in (a, c)]
        assert not torch.equal(*(torch.unique(d, dim=0) for d in draws))


@pytest.mark.parametrize("mixing", ["linear", "nonlinear"])
def test_split_seed_fixes_ica_mixing(mixing):
    def mixing_of(seed: int) -> np.ndarray:
        """Least squares x ~ s M + c on train: the (standardised) linear mixing, or the nonlinear one's best fit."""
        ds = DATASETS.get("ica")(DataConfig(n=2000, split_seed=seed, mixing=mixing))
        s, x = ds.train.factors.double().numpy(), ds.train.x.double().numpy()
        coef, *_ = np.linalg.lstsq(np.c_[s, np.ones(len(s))], x, rcond=None)
        return coef[:-1]

    m0, again, m1 = mixing_of(0), mixing_of(0), mixing_of(1)
    assert np.array_equal(m0, again)
    assert not np.allclose(np.abs(m0), np.abs(m1), atol=0.05)  # another mixing, not only other sources


# ----------------------------------------------------------------------------- confirm: split seed = job seed
@pytest.mark.parametrize("dataset", ["digits", "dsprites", "ica"])
def test_confirm_jobs_of_two_seeds_get_their_own_split(dataset, tmp_path):
    ctx = _ctx(tmp_path, "confirm", [100, 101], dataset)
    s100, s101 = (ctx.spec("infomax", 8, s) for s in (100, 101))
    assert (s100.data_cfg.split_seed, s101.data_cfg.split_seed) == (100, 101)
    d100, d101 = ctx._job_dataset(s100), ctx._job_dataset(s101)
    assert _fingerprint(d100) == _fingerprint(load_dataset(dataset, dataclasses.replace(SMALL, split_seed=100)))
    assert _fingerprint(d100) != _fingerprint(d101)
    if d100.train.factors is not None:  # generated data: other dsprites draws, other ica sources
        assert not torch.equal(d100.train.factors, d101.train.factors)
    assert ctx.data_config({"mixing": "nonlinear"}, 101).split_seed == 101  # overrides keep the job's split


@pytest.mark.slow
def test_confirm_job_and_its_measurement_read_the_same_split(tmp_path, monkeypatch):
    trained_on: dict[int, float] = {}
    real_build = trainer.seeded_build

    def spy(name, cfg, ds, width, seed, device):  # one seed at a time or its cell's seeds together
        trained_on[seed] = _fingerprint(ds)
        return real_build(name, cfg, ds, width, seed, device)

    monkeypatch.setattr(trainer, "seeded_build", spy)
    monkeypatch.setattr(seedbatch, "seeded_build", spy)
    ctx = _ctx(tmp_path, "confirm", [100, 101])
    rows = [r for rs in ctx.measure(ctx.prediction.measure_split, "mnist5k") for r in rs]
    assert not ctx.failure_rows
    got = {(r["seed"], r["metric"]): r["value"] for r in rows}
    for s in (100, 101):
        split = dataclasses.replace(SMALL, split_seed=s)
        assert trained_on[s] == got[(s, "own")] == _fingerprint(load_dataset("digits", split))
        assert got[(s, "other")] == _fingerprint(load_dataset("mnist5k", split))  # every dataset it reads
    assert trained_on[100] != trained_on[101]
    assert [t["seed"] for t in ctx.jobs] == [100, 101]


def test_a_measurement_on_another_split_than_its_encoder_is_refused(tmp_path):
    ctx = _ctx(tmp_path, "confirm", [100])
    spec = ctx.spec("infomax", 8, 100)
    with pytest.raises(ValueError, match="split_seed"):
        MeasureTask.make(spec, ctx.prediction.measure_split, ("digits",), SMALL, "cpu")


# ----------------------------------------------------------------------------- outside confirm: unchanged
@pytest.mark.parametrize("split_seed", [0, 3])
def test_quick_jobs_and_measurements_are_unchanged(split_seed, tmp_path):
    data = dataclasses.replace(SMALL, split_seed=split_seed)
    ctx = _ctx(tmp_path, "quick", [0, 1], data=data)
    cfg = ctx.cfg
    for seed in (0, 1):
        old = JobSpec.make("infomax", cfg.method_config("infomax"), "digits", cfg.data, 8, seed, 2, 128)  # as before
        new = ctx.spec("infomax", 8, seed)
        assert new == old and new.key == old.key and new.data_cfg.split_seed == split_seed
        assert ctx.data_config(seed=seed) is cfg.data  # what a measurement task carries
    assert ctx._job_dataset(ctx.spec("infomax", 8, 1)) is ctx.dataset()  # one copy for every seed
