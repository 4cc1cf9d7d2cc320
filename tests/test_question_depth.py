"""The depth question (docs/protocol.md 11.4) and its planted controls (11.5.3), each able to fail:

* layer 1 of a greedy stack is the plain single-layer job of its method bit for bit (same seed, data, budget),
  and a stack survives the cache's save and load;
* an untrained ``random`` layer on top is an untrained ``Linear + ReLU`` (``baselines/random.py``'s draw) of
  the layer below standardised with its train statistics;
* an identity layer 2 reads exactly what layer 1 reads: every measure, bit for bit;
* the three new methods learn on ``digits`` (their loss falls, their probe beats chance);
* the answer's logic on planted tidy tables, for every answer word;
* one tiny run of ``question=depth`` end to end (slow).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from baselines.random import Random
from baselines.stack import DEAD_TOL, StackConfig, Standardise, layer_seed
from bench.config import RunConfig
from bench.engine.jobs import JobCache, JobSpec
from bench.evaluate.metrics import DEAD_TOL as METRICS_DEAD_TOL
from bench.evaluate.probe import linear_probe
from bench.protocol import PROFILES, Encoder
from bench.train import losses
from bench.train.methods import METHODS, DataInfo, NoConfig
from bench.train.trainer import data_info, fit_encoder, train
from questions.depth import estimands as E
from questions.depth.arms import arms, control_of, plain_arm, stack_arm
from questions.depth.protocol import BUDGET_PROFILE, BUDGETS, QUICK, Depth, DepthConfig, epochs_for_steps

CPU = torch.device("cpu")
K, EPOCHS, SEED = 16, 3, 7


def _stack(ds, layers, epochs=EPOCHS, seed=SEED, width=K):
    method, meta = fit_encoder(
        "stack", StackConfig(layers=layers, epochs=epochs), ds, width, seed, epochs=epochs, batch_size=128, device=CPU
    )
    assert meta["status"] == "ok", meta.get("reason")
    return method


def _plain(ds, name, epochs=EPOCHS, seed=SEED, width=K):
    method, meta = fit_encoder(
        name, RunConfig().method_config(name), ds, width, seed, epochs=epochs, batch_size=128, device=CPU
    )
    assert meta["status"] == "ok"
    return method


# ------------------------------------------------------------------------------------------- the stack
@pytest.mark.parametrize("name", ["infomax", "ae", "rbm", "random"])
def test_layer_one_is_the_plain_single_layer_job_bit_for_bit(digits, name):
    plain = _plain(digits, name)
    stack = _stack(digits, (name, name))
    a, b = plain.state_dict(), stack.layers[0].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert torch.equal(plain.encode_all(digits.test.x), stack.layer_features(digits.test.x)[0])
    other = _stack(digits, (name, name), seed=SEED + 1)  # the control can fail: another seed is another layer 1
    assert name == "random" or not torch.equal(other.layers[0].encoder.weight, stack.layers[0].encoder.weight)
    if name != "random":
        assert not torch.equal(other.layers[0].encoder.weight, plain.encoder.weight)


def test_a_stack_survives_the_cache(digits, tmp_path):
    cfg = StackConfig(layers=("infomax", "rbm", "identity"), epochs=2)
    spec = JobSpec.make("stack", cfg, "digits", RunConfig().data, K, 0, 2, 128)
    trained = JobCache(tmp_path, CPU).get(spec, digits)
    loaded = JobCache(tmp_path, CPU).load(spec, digits)
    assert trained.ok and loaded is not None and loaded.cached
    for a, b in zip(
        trained.method.layer_features(digits.test.x), loaded.method.layer_features(digits.test.x), strict=True
    ):
        assert torch.equal(a, b)
    assert loaded.method.encoder_weight() is None


def test_random_on_top_is_an_untrained_linear_relu_of_the_standardised_layer_below(digits):
    plain = _plain(digits, "infomax")
    stack = _stack(digits, ("infomax", "random"))
    h_train, h_test = plain.encode_all(digits.train.x), plain.encode_all(digits.test.x)
    mean, sd = h_train.double().mean(0), h_train.double().std(0, unbiased=False)
    sd = torch.where(sd > METRICS_DEAD_TOL * (1 + sd.max()), sd, torch.ones_like(sd))
    z = (h_test - mean.float()) / sd.float()
    torch.manual_seed(layer_seed(SEED, 1))
    linear = nn.Linear(K, K)
    torch.manual_seed(layer_seed(SEED, 1))
    ref = Random(NoConfig(), DataInfo(K, 10, None), K)  # baselines/random.py's construction draws the same weights
    assert torch.equal(ref.encoder.weight, linear.weight) and torch.equal(ref.encoder.bias, linear.bias)
    expected = torch.relu(linear(z)).detach()
    got = stack.layer_features(digits.test.x)[1]
    assert torch.allclose(got, expected, rtol=0, atol=1e-6)
    assert not torch.allclose(got, torch.relu(linear(h_test)).detach(), atol=1e-3)  # unstandardised: not it
    assert DEAD_TOL == METRICS_DEAD_TOL


def test_a_dead_unit_keeps_sd_one_and_probabilities_reach_an_rbm_unstandardised(digits):
    st = Standardise(3)
    h = torch.tensor([[1.0, 5.0, 0.0], [3.0, 5.0, 2.0], [5.0, 5.0, 4.0]])
    st.fit(h)
    assert torch.equal(st.sd[1], torch.tensor(1.0)) and torch.allclose(st(h)[:, 1], torch.zeros(3))
    dbn = _stack(digits, ("rbm", "rbm"), epochs=1)
    assert torch.equal(dbn.inputs[1].mean, torch.zeros(K)) and torch.equal(dbn.inputs[1].sd, torch.ones(K))
    _, meta = fit_encoder(
        "stack", StackConfig(layers=("ae", "rbm"), epochs=10), digits, K, 0, epochs=10, batch_size=128, device=CPU
    )
    assert meta["status"] == "failed" and "reads probabilities" in meta["reason"]


@pytest.mark.parametrize(
    "layers, words",
    [
        (("identity", "infomax"), "first layer cannot be identity"),
        (("infomax", "nope"), "unknown layer 'nope'"),
        (("infomax", "supervised"), "trains on labels"),
        (("infomax", "stack"), "unknown layer 'stack'"),
        ((), "need 1 to"),
    ],
)
def test_stack_config_errors_are_one_line(layers, words):
    with pytest.raises(ValueError, match=words):
        StackConfig(layers=layers).check()


def test_the_composites_are_unlisted_references_and_the_question_names_them():
    for name in ("stack", "infomax_mlp3", "supervised_mlp3"):
        cls = METHODS.get(name)
        assert cls.listed is False and cls.role == "reference" and cls.citation
    listed = [m for m in METHODS.names() if getattr(METHODS.get(m), "listed", True)]
    assert Depth(DepthConfig()).default_methods(listed) == list(QUICK)


# ------------------------------------------------------------------------------- they learn on digits
def _probe(features, ds) -> float:
    f = [features(s.x) for s in (ds.train, ds.val, ds.test)]
    return float(linear_probe(f[0], ds.train.y, f[1], ds.val.y, f[2], ds.test.y, ds.n_classes).test_acc[0])


def test_the_stack_learns_on_digits(digits):
    stack = _stack(digits, ("infomax", "infomax", "infomax"), epochs=30)
    for log in stack.logs:
        assert log[-1]["loss"] < log[0]["loss"]
    accs = [_probe(lambda x, i=i: stack.layer_features(x)[i], digits) for i in range(3)]
    assert min(accs) > 0.1 + 0.5, accs  # chance is 0.1


@pytest.mark.parametrize("name", ["infomax_mlp3", "supervised_mlp3"])
def test_the_three_layer_references_learn_on_digits(digits, name):
    torch.manual_seed(0)
    cls = METHODS.get(name)
    m = cls(cls.Config(), data_info(digits), K)
    log = train(m, digits.train.x, digits.train.y if m.uses_labels else None, epochs=30, batch_size=128, seed=0)
    assert log.history[-1]["loss"] < log.history[0]["loss"]
    feats = m.layer_features(digits.test.x)
    assert len(feats) == 3 and torch.equal(feats[-1], m.encode_all(digits.test.x))
    assert _probe(m.encode_all, digits) > 0.1 + 0.5
    if name == "infomax_mlp3":  # the subject's own loss terms, on the top layer
        a = m.encode(digits.train.x[:128])
        assert m.loss_terms(digits.train.x[:128]).keys() == {"lse", "entropy", "tc"}
        terms = m.loss_terms(digits.train.x[:128])
        assert torch.equal(terms["tc"], losses.tc_term(a, m.cfg.eps)) and torch.equal(terms["lse"], losses.lse_term(a))


# ----------------------------------------------------------------------------------- identity control
class _Src:
    """What a measurement sees of the run: the datasets and a matrix sink."""

    def __init__(self, ds):
        self.ds, self.matrices = ds, {}

    def dataset(self, name=None, data=None):
        return self.ds

    def matrix(self, enc, name, values):
        self.matrices[name] = values


def _measure(ds, layers, aurc=True):
    method = _stack(ds, layers)
    cfg = StackConfig(layers=layers, epochs=EPOCHS)
    enc = Encoder(JobSpec.make("stack", cfg, "digits", RunConfig().data, K, SEED, EPOCHS, 128, ds), method, "ok")
    src = _Src(ds)
    rows = Depth(DepthConfig(aurc=aurc, n_knn_train=800)).measure_layers(enc, src, None)
    return {(r["metric"], r["layer"]): r["value"] for r in rows}, src.matrices


def test_an_identity_layer_two_reads_exactly_what_layer_one_reads(digits):
    """Every measure exactly: the identity layer passes layer 1's raw code on, so its features are layer 1's bit
    for bit (a standardised copy moved values by up to 2e-6, enough to flip the probe's val-chosen L2 where two
    L2s tie on val, and one prediction of a pruned probe's L-BFGS refit)."""
    v, mats = _measure(digits, ("infomax", "identity"))
    for metric in ("acc", "val_acc", "mi", "kappa", "gaussian_tc", "energy_dep", "knn_r2", "aurc"):
        assert v[(metric, 2)] == v[(metric, 1)], metric  # exactly
    assert v[("cka_prev", 2)] == pytest.approx(1.0, abs=1e-9)
    (cka,) = mats.values()
    assert cka.shape == (3, 3) and np.allclose(np.diag(cka), 1.0)
    w, _ = _measure(digits, ("infomax", "random"))  # the control can fail: a random layer 2 reads otherwise
    assert w[("mi", 2)] != w[("mi", 1)] and w[("cka_prev", 2)] < 0.99


# -------------------------------------------------------------------------------- the answer's logic
def _table(g2, dacc, dmi, seeds=5, dataset="mnist5k", noise=0.0, width=64):
    """A planted tidy table of the infomax stack: acc(1) = .9 + small per-seed wiggle, acc(2) = acc(1) + dacc,
    the random control of layer 2 = acc(2) - g2, MI(1) = .1, MI(2) = MI(1) + dmi; ``noise`` makes seed 0 the
    opposite of the rest (intervals that straddle)."""
    rng = np.random.default_rng(0)
    rows = []

    def add(arm, role, family, layer, metric, value, seed):
        rows.append(
            {
                "dataset": dataset,
                "arm": arm,
                "role": role,
                "family": family,
                "layer": layer,
                "metric": metric,
                "value": value,
                "seed": seed,
                "width": width,
                "method": "stack",
            }
        )

    main = stack_arm(("infomax",) * 3)
    for s in range(seeds):
        flip = -1.0 if (noise and s == 0) else 1.0
        w = float(rng.normal(0, 0.002))
        a1 = 0.9 + w
        a2 = a1 + dacc * (flip * noise if noise else 1.0) + float(rng.normal(0, 0.001))
        add(main, "stack", "infomax", 1, "acc", a1, s)
        add(main, "stack", "infomax", 2, "acc", a2, s)
        add(main, "stack", "infomax", 3, "acc", a2, s)
        add(main, "stack", "infomax", 1, "mi", 0.1, s)
        add(main, "stack", "infomax", 2, "mi", 0.1 + dmi + float(rng.normal(0, 0.0005)), s)
        add(main, "stack", "infomax", 3, "mi", 0.1, s)
        add(plain_arm("random", width), "random_control", "random", 1, "acc", 0.8, s)
        g = g2 * (flip * noise if noise else 1.0) + float(rng.normal(0, 0.001))
        add(control_of("infomax", 2, width), "random_control", "infomax", 2, "acc", a2 - g, s)
        add(control_of("infomax", 3, width), "random_control", "infomax", 3, "acc", a2 - 0.01, s)
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    "table, start",
    [
        (_table(0.03, 0.002, -0.02), "Layer 2 composes, and its features are independent features of independent"),
        (_table(0.03, 0.002, +0.02), "Layer 2 composes, but its features are more dependent"),
        (_table(0.03, -0.005, 0.0), "Layer 2 composes; whether its features are more independent is undetermined"),
        (_table(-0.03, 0.002, -0.02), "It does not compose"),
        (_table(0.03, -0.05, -0.02), "It does not compose"),
        (_table(0.03, 0.002, -0.02, noise=3.0), "undetermined: "),
        (_table(0.03, 0.002, -0.02, seeds=1), "undetermined: "),
        (_table(0.03, 0.002, -0.02, dataset="mnist1d"), "undetermined: the infomax stack has no mnist5k rows"),
    ],
)
def test_the_answer_reads_the_planted_tables(table, start):
    text = E.answer(table)
    assert text.startswith(start), text
    assert "\n" not in text and not re.search(r"\.\s+[A-Z]", text)  # one sentence (the numbers carry dots)


def test_the_answer_names_another_dataset_only_where_it_disagrees():
    same = pd.concat([_table(0.03, 0.002, -0.02), _table(0.03, 0.002, -0.02, dataset="dsprites")])
    assert "dsprites" not in E.answer(same)
    other = pd.concat([_table(0.03, 0.002, -0.02), _table(-0.03, 0.002, -0.02, dataset="dsprites")])
    assert "on dsprites it reads 'does not compose'" in E.answer(other)


def test_g2_pairs_by_seed_against_the_random_layer_on_the_same_layer_one():
    t = _table(0.03, 0.002, -0.02)
    e = E.stack_estimates(t, "mnist5k", "infomax")
    assert e.g[2].n == 5 and e.g[2].mean == pytest.approx(0.03, abs=0.002)
    assert e.g[1].mean == pytest.approx(0.1, abs=0.01)  # layer 1 against random@64
    assert e.dmi[2].mean == pytest.approx(-0.02, abs=0.002)


# ------------------------------------------------------------------------------------- the protocol
def test_the_quick_arms_and_their_budgets():
    pred = Depth(DepthConfig())
    names = [a.name for a in arms(pred.cfg.families, 3, 64)]
    assert names[:4] == ["infomax/infomax/infomax", "infomax/random", "infomax/infomax/random", "infomax/identity"]
    assert len(names) == 4 + 3 + 3 + 1 + 3  # 14 jobs per seed and dataset (rbm: none on mnist1d)
    assert pred.epochs_of("mnist5k", "quick", 128) == 40 and pred.epochs_of("dsprites", "quick", 128) == 10
    assert pred.epochs_of("mnist1d", "quick", 128) == 64  # 8,192 steps at 128 steps an epoch
    for ds, budget in BUDGETS.items():  # the protocol's copy of the run's budgets
        for profile in PROFILES:
            assert (
                pred.epochs_of(ds, profile, 128)
                == budget[BUDGET_PROFILE[profile]]
                == RunConfig(profile=profile).resolved_epochs(ds)
            )
    from questions.scaling.protocol import epochs_for_steps as scaling_epochs

    for n, b in [(16384, 128), (1000, 128), (437, 64)]:
        assert epochs_for_steps(8192, n, b) == scaling_epochs(8192, n, b)
    with pytest.raises(ValueError, match="datasets"):
        DepthConfig(datasets=("mnist",)).check()
    assert dataclasses.replace(DepthConfig(), epochs=2).epochs == 2


@pytest.mark.slow
def test_a_tiny_depth_run_answers_and_makes_questions_pdf(small_question):
    line, df = small_question(
        "depth",
        "methods=[stack,random]",
        "seeds=2",
        "depth.datasets=[mnist5k]",
        "depth.families=[infomax]",
        "depth.epochs=2",
        "depth.n_eval=300",
        "depth.n_knn_train=500",
    )
    assert "G_2 = " in line and "(infomax stack, mnist5k, 2 seeds)" in line
    acc = df[df["metric"] == "acc"]
    assert set(acc["arm"]) == {
        "infomax/infomax/infomax",
        "infomax/random",
        "infomax/infomax/random",
        "infomax/identity",
        "random@64",
    }
    assert acc.groupby("arm")["layer"].max().to_dict()["infomax/infomax/infomax"] == 3
    ident = acc[acc["arm"] == "infomax/identity"].pivot(index="seed", columns="layer", values="value")
    assert (ident[1] == ident[2]).all()  # exactly: layer 2 is layer 1's code
    main_l1 = acc[(acc["arm"] == "infomax/infomax/infomax") & (acc["layer"] == 1)].set_index("seed")["value"]
    ctrl_l1 = acc[(acc["arm"] == "infomax/random") & (acc["layer"] == 1)].set_index("seed")["value"]
    assert (main_l1 == ctrl_l1).all()  # the same layer 1, bit for bit, in both jobs
    assert set(df["epochs"].dropna()) == {2}
