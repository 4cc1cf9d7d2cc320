"""P3 parameter efficiency: parameter counts, curve reading and the planted controls of PROTOCOL.md §9 (P3)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.config import RunConfig
from bench.methods import METHODS, DataInfo
from bench.results import read_run
from bench.runner import execute
from bench.stats import FIELDS
from predictions.efficiency import curves as C
from predictions.efficiency import tables as T
from predictions.efficiency.view import EfficiencyView

D, H = 784, 28  # mnist-sized 28x28 grey images
SINGLE_LAYER = ("ae", "barlow_twins", "beta_vae", "byol", "dae", "fastica", "infomax", "infomax_noem",
                "infomax_softmax", "lse_only", "moco", "pca", "random", "rbm", "sae", "simclr", "supervised", "swav",
                "vae", "vicreg")


def _cnn(k: int, c: tuple[int, ...] = (8, 16, 32, 64), cin: int = 1) -> int:
    """resnet10t with a stride-1 3x3 stem, one BasicBlock per stage, avg-pool shortcuts, + Linear(c4, K).
    Each BatchNorm(n) holds 4n floats (weight, bias, running mean, running var)."""
    stem = 9 * cin * c[0] + 4 * c[0]
    first = 2 * 9 * c[0] ** 2 + 2 * 4 * c[0]  # two 3x3 convs, no downsample
    later = sum(9 * a * b + 4 * b + 9 * b * b + 4 * b + a * b + 4 * b for a, b in zip(c, c[1:], strict=False))
    return stem + first + later + c[-1] * k + k


def _mae(k: int, depth: int = 2, ratio: float = 4.0, patch: int = 4) -> int:
    """patch embedding p K + K, fixed sin-cos positional embedding L K, per block two LayerNorms (4K),
    qkv 3K^2 + 3K, proj K^2 + K, MLP 2 h K + h + K (h = ratio K), final LayerNorm 2K."""
    p, n_patch, h = patch * patch, (H // patch) ** 2, int(ratio * k)
    block = 4 * k + 3 * k * k + 3 * k + k * k + k + 2 * h * k + h + k
    return p * k + k + n_patch * k + depth * block + 2 * k


HAND = {
    **{m: (lambda k: k * D + k) for m in SINGLE_LAYER},  # Linear(D, K): weight + bias
    "gmm": lambda k: 2 * k * D + k,  # diagonal GMM: means, variances (K x D each), K log-weights
    "raw": lambda k: 0,  # the identity reads no parameter
    "supervised_mlp2": lambda k: 2 * k * (D + 1) + k * (2 * k + 1),  # Linear(D, 2K) + Linear(2K, K)
    "supervised_cnn": _cnn,
    "mae": _mae,
}


@pytest.mark.parametrize("k", [8, 16])
def test_every_method_deployed_floats_match_a_hand_count(k):
    assert set(HAND) == set(METHODS.names()), "a registered method has no hand count"
    info = DataInfo(D, 10, (1, H, H))
    for name in METHODS.names():
        cls = METHODS.get(name)
        m = cls(cls.Config(), info, k)
        assert C.deployed_floats(m) == HAND[name](k), name
    mae_cfg = METHODS.get("mae").Config()
    assert (mae_cfg.depth, mae_cfg.mlp_ratio) == (2, 4.0)  # the hand count's defaults


def test_training_only_parts_are_counted_apart():
    info = DataInfo(D, 10, (1, H, H))
    ae = METHODS.get("ae")(METHODS.get("ae").Config(), info, 8)
    assert C.deployed_floats(ae) == 8 * D + 8 and ae.n_params_train() == 8 * D + D  # the decoder
    mlp = METHODS.get("supervised_mlp2")(METHODS.get("supervised_mlp2").Config(), info, 8)
    assert mlp.n_params_train() == 8 * 10 + 10  # the head


def test_a_non_monotone_curve_is_read_through_its_running_maximum():
    p, acc = np.array([8.0, 1, 4, 2]), np.array([0.9, 0.5, 0.7, 0.8])  # unsorted; dip at P = 4
    ps, r = C.running_max(p, acc)
    assert ps.tolist() == [1, 2, 4, 8] and r.tolist() == [0.5, 0.8, 0.8, 0.9]
    assert C.read_at(p, acc, 4.0)[0] == pytest.approx(0.8)  # not the raw 0.7
    assert C.read_at(p, acc, 2 ** 2.5)[0] == pytest.approx(0.85)  # linear in log P
    assert C.reach(p, acc, 0.85) == (pytest.approx(2 ** 2.5), "")  # first crossing of the running max
    assert C.reach(p, acc, 0.75)[0] == pytest.approx(2 ** (0.25 / 0.3))


def test_never_extrapolated_and_censored_on_both_sides():
    p, acc = np.array([10.0, 20, 40]), np.array([0.6, 0.7, 0.8])
    for outside in (5.0, 80.0):
        v, why = C.read_at(p, acc, outside)
        assert math.isnan(v) and "outside the sweep" in why
    assert C.read_at(p, acc, 40.0 * (1 + 1e-12))[0] == pytest.approx(0.8)  # the exact end is inside
    assert C.reach(p, acc, 0.5) == (10.0, "left")
    assert C.reach(p, acc, 0.9) == (40.0, "right")
    assert math.isnan(C.read_at([0.0], [0.9], 1.0)[0])  # raw: P = 0 has no curve


def _curves(methods: dict[str, tuple[np.ndarray, np.ndarray]], seeds, noise=0.0, seed0=0) -> pd.DataFrame:
    """One row per (method, width, seed): ``methods[m] = (P per width, mean acc per width)`` + seed noise."""
    g = np.random.default_rng(seed0)
    recs = []
    for m, (p, acc) in methods.items():
        for s in seeds:
            a = acc + noise * g.standard_normal(len(acc))
            recs += [{"method": m, "width": 2 ** (i + 3), "seed": s, "params": pi, "acc": ai}
                     for i, (pi, ai) in enumerate(zip(p, a, strict=True))]
    return pd.DataFrame(recs)


def _acc(p):  # a smooth saturating curve in P
    return 0.95 - 0.9 * np.power(p, -0.25)


P_S = np.array([8.0, 16, 32, 64, 128]) * 785


def _tidy(recs: list[dict], dataset: str = "mnist5k") -> pd.DataFrame:
    df = pd.DataFrame(recs)
    df["dataset"], df["study"] = dataset, "main"
    return df


def test_a_baseline_shifted_by_two_in_parameters_gives_delta_near_zero():
    p_b = P_S * 2 * 1.3  # B's grid does not meet 2 P_S: the reading interpolates
    p_b = np.concatenate([[P_S[0]], p_b])
    cur = _curves({"infomax": (P_S, _acc(P_S)), "shifted": (p_b, _acc(p_b / 2))}, range(10), noise=0.002)
    recs = C.delta_rows(cur, "infomax", (16, 32, 64), 0.01)
    d = np.array([r["value"] for r in recs if r["metric"] == "delta_2p"]) - 0.01
    assert d.shape == (10,) and abs(d.mean()) < 0.003
    m = [r for r in recs if r["metric"] == "multiplier" and r["width"] in (16, 32, 64)]
    assert all(r["censored"] == "" for r in m)
    assert np.median([r["value"] for r in m]) == pytest.approx(2.0, rel=0.1)


def test_a_copy_of_the_subject_is_inconclusive():
    cur = _curves({"infomax": (P_S, _acc(P_S))}, range(5), noise=0.01, seed0=3)
    calib = T.self_copy_deltas(cur, "infomax", (16, 32, 64), 0.01)
    same_p = calib[calib["factor"] == 1].iloc[0]
    assert same_p["verdict (alone)"] == "inconclusive" and same_p["n"] == 5
    # through the view's verdict machinery: a copy's differences at the same P are noise
    copy = cur.assign(method="copy", seed=(cur["seed"] + 1) % 5)
    recs = C.delta_rows(pd.concat([cur, copy]), "infomax", (16, 32, 64), 0.0, factor=1.0)
    frame = T.one_sample_verdicts(_tidy(recs), "delta_2p", "infomax", "higher")
    assert frame["verdict"].tolist() == ["inconclusive"]
    # at twice the parameters the copy is a doubling ahead: d = delta - (gain of one doubling), reported
    twice = calib[calib["factor"] == 2].iloc[0]
    gain = np.mean([_acc(2 * P_S[i]) - _acc(P_S[i]) for i in (1, 2, 3)])
    assert twice["mean d"] == pytest.approx(0.01 - gain, abs=0.01)


def test_censored_multipliers_are_reported_as_such_with_no_interval():
    low = (P_S, np.full(5, 0.2))  # never reaches the subject: right-censored, m > P_max / P_S(32) = 4
    high = (P_S * 3, np.full(5, 0.99))  # its smallest model already beats it: m <= 3 P_S(8) / P_S(32) = 0.75
    cur = _curves({"infomax": (P_S, _acc(P_S)), "low": low, "high": high}, range(3))
    df = _tidy(C.delta_rows(cur, "infomax", (16, 32, 64), 0.01))
    tab = T.multiplier_table(df, widths=[32]).set_index("baseline")
    assert tab.loc["low", "n_right"] == 3 and tab.loc["low", "n_uncensored"] == 0
    assert tab.loc["low", "right: m >"] == "4" and tab.loc["low", "95% CI"].startswith("n/a")
    assert tab.loc["high", "n_left"] == 3 and tab.loc["high", "left: m <="] == "0.75"
    assert tab.loc["high", "95% CI"].startswith("n/a")


def test_one_sample_verdicts_holm_and_missing_baselines():
    rng = np.random.default_rng(0)
    recs = [{"method": b, "seed": s, "width": 0, "metric": "delta_2p", "value": v + 0.002 * rng.standard_normal(),
             "note": ""} for b, v in (("better", 0.05), ("worse", -0.05)) for s in range(10)]
    recs += [{"method": "far", "seed": s, "width": 0, "metric": "delta_2p", "value": math.nan,
              "note": "K=16: P* outside the sweep"} for s in range(10)]
    recs += [{"method": "skipped", "seed": s, "width": 16, "metric": "job_skipped", "value": 1.0,
              "note": "needs image inputs"} for s in range(10)]
    frame = T.one_sample_verdicts(_tidy(recs), "delta_2p", "infomax", "higher")
    assert list(frame.columns) == ["dataset", *FIELDS] and frame["baseline"].tolist() == ["better", "far", "skipped",
                                                                                           "worse"]
    f = frame.set_index("baseline")
    assert f.loc["better", "verdict"] == "supported" and f.loc["worse", "verdict"] == "contradicted"
    assert f.loc["better", "p_holm"] >= f.loc["better", "p_t"]
    for b, why in (("far", "outside the sweep"), ("skipped", "image")):
        assert f.loc[b, "n"] == 0 and f.loc[b, "verdict"] == "inconclusive" and why in f.loc[b, "reason"]


def test_saturating_fit_and_slopes_known_answers():
    p = np.repeat(P_S, 3)
    f = C.fit_saturating(p, _acc(p))
    assert f["a"] == pytest.approx(0.95, abs=1e-3) and abs(f["heldout_err"]) < 1e-3
    assert C.log2_slope([1, 2, 4, 8], [0.5, 0.6, 0.7, 0.8]) == pytest.approx(0.1)
    flat = (P_S, np.array([0.80, 0.85, 0.88, 0.89, 0.89]))
    rising = (P_S, np.array([0.50, 0.60, 0.70, 0.80, 0.90]))
    cur = _curves({"infomax": flat, "b1": rising, "b2": rising}, range(3), noise=0.002)
    assert "saturates earlier" in T.scaling_sentence(T.scaling_table(cur), "infomax")
    cur = _curves({"infomax": rising, "b1": flat, "b2": flat}, range(3), noise=0.002)
    assert "saturates later" in T.scaling_sentence(T.scaling_table(cur), "infomax")


def test_raw_fraction_table_reads_the_running_maximum():
    cur = _curves({"raw": (np.array([0.0]), np.array([0.9])), "a": (P_S, np.array([0.5, 0.9, 0.7, 0.95, 0.96]))},
                  range(2))
    cur.loc[cur["method"] == "raw", "width"] = 784
    tab = T.raw_fraction_table(cur, (0.9, 1.0)).set_index("method")
    assert tab.loc["a"].iloc[0].startswith(f"{0.81 / 0.9 * 0 + C.reach(P_S, [0.5, 0.9, 0.7, 0.95, 0.96], 0.81)[0]:.3g}")
    assert tab.loc["a"].iloc[1].startswith(f"{C.reach(P_S, [0.5, 0.9, 0.7, 0.95, 0.96], 0.9)[0]:.3g}")


def test_the_run_on_digits_sweeps_caps_and_keys_its_rows(tmp_path):
    cfg = RunConfig(workers=1, prediction="efficiency", dataset="digits", methods=["infomax", "pca", "supervised_mlp2", "raw"],
                    seeds=[0, 1], epochs=1, out=str(tmp_path / "r"), cache=str(tmp_path / "c"),
                    prediction_overrides={"widths": (16, 32, 128), "primary_widths": (16,)})
    df, _, _ = read_run(execute(cfg))
    acc = df[df["metric"] == "probe_acc"]
    pca128 = acc[(acc["method"] == "pca") & (acc["width"] == 128)]
    assert len(pca128) == 2 and pca128["value"].isna().all() and pca128["note"].str.contains("at most D").all()
    raw = df[(df["method"] == "raw") & (df["metric"] == "params_deployed")]
    assert set(raw["width"]) == {64} and (raw["value"] == 0).all()
    p = df[(df["metric"] == "params_deployed") & (df["study"] == "main")].set_index(["method", "width"])["value"]
    assert p[("infomax", 16)].iloc[0] == 16 * 65 and p[("supervised_mlp2", 16)].iloc[0] == 32 * 65 + 16 * 33
    steps = df[(df["metric"] == "train_steps") & (df["study"] == "main")].set_index("method")["value"]
    n_train = 1257  # digits' 70% train split
    assert steps["infomax"].iloc[0] == math.ceil(n_train / 128) and steps["pca"].isna().all()
    delta = df[(df["metric"] == "delta_2p") & (df["study"] == "main")]
    assert set(delta["method"]) == {"pca", "supervised_mlp2", "raw"} and (delta["width"] == 0).all()
    assert delta.loc[delta["method"] == "raw", "note"].str.contains("no point with P > 0").all()
    sec = df[df["study"] == "unseen_classes"]
    assert set(sec["dataset"]) == {"digits[5-9]"} and set(sec["method"]) == {"infomax", "supervised_mlp2", "raw"}
    src = sec[sec["metric"] == "probe_acc"].groupby("method")["source"].first()
    assert src["supervised_mlp2"] == "digits[0-4]" and src["infomax"] == "digits[5-9]"
    view = EfficiencyView()
    tabs = view.tables(df)
    assert [t.verdict for t in tabs[:2]] == [True, True] and "unseen classes" in tabs[1].title
    assert tabs[-1].title.startswith("Does InfoMax scale?") and "saturates" in tabs[-1].note
    assert [n for n, _ in view.figures(df, None)] == ["accuracy_vs_params", "delta_2p", "multipliers"]
