"""P3 parameter efficiency: parameter counts, curve reading, the comparison rows and the runs (the
copy controls of docs/protocol.md, planted controls, are in test_efficiency_controls.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.config import RunConfig
from bench.engine.runner import execute
from bench.evaluate import stats
from bench.evaluate.stats import FIELDS
from bench.results import read_run
from bench.train.methods import METHODS, DataInfo
from predictions.efficiency import curves as C
from predictions.efficiency import protocol as P
from predictions.efficiency import tables as T
from predictions.efficiency.view import EfficiencyView

D, H = 784, 28  # mnist-sized 28x28 grey images
SINGLE_LAYER = (
    "ae",
    "barlow_twins",
    "beta_vae",
    "byol",
    "dae",
    "fastica",
    "infomax",
    "infomax_noem",
    "infomax_softmax",
    "lse_only",
    "moco",
    "pca",
    "random",
    "rbm",
    "sae",
    "simclr",
    "supervised",
    "swav",
    "vae",
    "vicreg",
)


def _cnn(k: int, width: int = 8, cin: int = 1) -> int:
    """resnet10t at channel width c (stages c x (1, 2, 4, 8)) with a stride-1 3x3 stem to c, one
    BasicBlock per stage, avg-pool shortcuts, + Linear(8c, K). Each BatchNorm(n) holds 4n floats
    (weight, bias, running mean, running var)."""
    c = (width, 2 * width, 4 * width, 8 * width)
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
    listed = [n for n in METHODS.names() if getattr(METHODS.get(n), "listed", True)]  # what P3 can run by default
    assert set(HAND) == set(listed), "a registered method has no hand count"
    info = DataInfo(D, 10, (1, H, H))
    for name in listed:
        cls = METHODS.get(name)
        m = cls(cls.Config(), info, k)
        assert C.deployed_floats(m) == HAND[name](k), name
    mae_cfg = METHODS.get("mae").Config()
    assert (mae_cfg.depth, mae_cfg.mlp_ratio) == (2, 4.0)  # the hand count's defaults


@pytest.mark.parametrize("c", [4, 5, 6, 8, 10, 12, 3, 7])
def test_the_cnn_deployed_floats_match_the_hand_count_at_every_channel_width(c):
    info = DataInfo(D, 10, (1, H, H))
    cls = METHODS.get("supervised_cnn")
    assert C.deployed_floats(cls(cls.Config(channels=c), info, 64)) == _cnn(64, c)
    assert P.counted_params("supervised_cnn", info, 64, channels=c) == _cnn(64, c)


def test_the_cnn_sweep_brackets_twice_the_subjects_p_and_a_narrow_one_is_refused():
    """c in {4..12} at projection 64 spans P 2.2e4 to 1.8e5 on mnist (docs/protocol.md), around
    2 P_S(K) = 2 K (D + 1) for K in {16, 32, 64}; c = 8 alone does not bracket them."""
    cfg = P.EfficiencyConfig()
    assert cfg.cnn_channels == (4, 5, 6, 8, 10, 12) and cfg.cnn_width == 64 and cfg.primary_widths == (16, 32, 64)
    counts = [_cnn(64, c) for c in cfg.cnn_channels]
    assert counts == sorted(counts) and 2.1e4 < counts[0] < 2.3e4 and 1.7e5 < counts[-1] < 1.9e5
    assert all(counts[0] <= 2 * k * (D + 1) <= counts[-1] for k in cfg.primary_widths)
    info = DataInfo(D, 10, (1, H, H))
    assert P.counted_params("infomax", info, 16) == 16 * (D + 1)
    assert P.cnn_sweep_error(info, cfg.primary_widths, cfg.cnn_channels, 64) == ""
    why = P.cnn_sweep_error(info, cfg.primary_widths, (8,), 64)
    assert why.startswith("cnn_channels: ") and "25120 (K=16)" in why and "100480 (K=64)" in why


def test_training_only_parts_are_counted_apart():
    info = DataInfo(D, 10, (1, H, H))
    ae = METHODS.get("ae")(METHODS.get("ae").Config(), info, 8)
    assert C.deployed_floats(ae) == 8 * D + 8 and ae.n_params_train() == 8 * D + D  # the decoder
    mlp = METHODS.get("supervised_mlp2")(METHODS.get("supervised_mlp2").Config(), info, 8)
    assert mlp.n_params_train() == 8 * 10 + 10  # the head


def test_isotonic_known_answer_pools_adjacent_violators():
    assert C.isotonic([1, 2, 3], [0.5, 0.7, 0.6])[1] == pytest.approx([0.5, 0.65, 0.65])  # docs/protocol.md
    assert C.isotonic([1, 2, 3, 4], [0.9, 0.5, 0.7, 0.6])[1] == pytest.approx([0.675] * 4)  # pooled twice
    assert C.isotonic([1, 2, 2, 3], [0.5, 0.8, 0.6, 0.9])[1] == pytest.approx([0.5, 0.7, 0.9])  # one P: its mean
    ps, f = C.isotonic([4.0, np.nan, 0.0, 1], [0.6, 0.9, 0.99, 0.5])  # NaN and P <= 0 dropped, sorted
    assert ps.tolist() == [1, 4] and f.tolist() == [0.5, 0.6]


def test_a_non_monotone_curve_is_read_through_its_isotonic_fit_not_its_running_maximum():
    p, acc = np.array([8.0, 1, 4, 2]), np.array([0.9, 0.5, 0.7, 0.8])  # unsorted; dip at P = 4
    ps, r = C.isotonic(p, acc)
    assert ps.tolist() == [1, 2, 4, 8] and r == pytest.approx([0.5, 0.75, 0.75, 0.9])  # v1's running max: 0.8, 0.8
    assert C.read_at(p, acc, 4.0)[0] == pytest.approx(0.75)  # neither the raw 0.7 nor the running max 0.8
    assert C.read_at(p, acc, 2**1.5)[0] == pytest.approx(0.75)
    assert C.read_at(p, acc, 2**2.5)[0] == pytest.approx(0.825)  # linear in log P
    assert C.reach(p, acc, 0.85) == (pytest.approx(2 ** (2 + 2 / 3)), "")  # first crossing of the fit
    assert C.reach(p, acc, 0.6)[0] == pytest.approx(2**0.4)


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
            recs += [
                {"method": m, "width": 2 ** (i + 3), "seed": s, "params": pi, "acc": ai}
                for i, (pi, ai) in enumerate(zip(p, a, strict=True))
            ]
    return pd.DataFrame(recs)


def _acc(p):  # a smooth saturating curve in P
    return 0.95 - 0.9 * np.power(p, -0.25)


P_S = np.array([8.0, 16, 32, 64, 128]) * 785


def _tidy(recs: list[dict], dataset: str = "mnist5k") -> pd.DataFrame:
    df = pd.DataFrame(recs)
    df["dataset"], df["study"] = dataset, "main"
    return df


def test_unjudged_rows_carry_d_g_and_missing_baselines_without_a_correction_or_a_verdict():
    rng = np.random.default_rng(0)
    recs = [
        {
            "method": b,
            "seed": s,
            "width": 0,
            "metric": m,
            "value": v + 0.002 * rng.standard_normal(),
            "note": "",
            "under_trained": s == 0 and b == "worse",
        }
        for b, v, g in (("better", 0.05, 0.02), ("worse", -0.05, 0.0))
        for s in range(10)
        for m, v in (("delta_2p", v), ("g_2p", g))
    ]
    recs += [
        {"method": m, "seed": s, "width": 0, "metric": x, "value": math.nan, "note": "K=16: P* outside the sweep"}
        for m in ("far", "raw")
        for s in range(10)
        for x in ("delta_2p", "g_2p")
    ]
    recs += [
        {
            "method": "skipped",
            "seed": s,
            "width": 16,
            "metric": "job_skipped",
            "value": 1.0,
            "note": "needs image inputs",
        }
        for s in range(10)
    ]
    frame = T.unjudged_rows(_tidy(recs), "delta_2p", "infomax", "higher", na={"raw": "reads no parameters"})
    assert list(frame.columns) == ["dataset", *FIELDS, *T.G_COLUMNS]
    assert frame["baseline"].tolist() == ["better", "far", "raw", "skipped", "worse"]
    f = frame.set_index("baseline")
    assert (f["verdict"] == "inconclusive").all() and (f["p_holm"].fillna(-1) == f["p_t"].fillna(-1)).all()
    assert f.loc["better", "direction"] == "as predicted" and f.loc["worse", "direction"] == "opposite"
    assert f.loc["better", "p_perm"] == pytest.approx(2 / 1024) and len(f.loc["better", "diffs"]) == 10
    assert f.loc["better", "p_perm"] == stats.sign_flip_p([d for _, d in f.loc["better", "diffs"]])
    assert f.loc["worse", "under_trained"] == 1 and f.loc["better", "under_trained"] == 0
    assert f.loc["better", "g_B"] == pytest.approx(0.02, abs=0.002) and f.loc["better", "g_B n"] == 10
    assert f.loc["far", "g_B n"] == 0 and "outside the sweep" in f.loc["far", "g_B note"]
    assert f.loc["raw", "na"] == "reads no parameters" and f.loc["better", "na"] == ""
    for b, why in (("far", "outside the sweep"), ("skipped", "image")):
        assert f.loc[b, "n"] == 0 and why in f.loc[b, "reason"]


def test_derived_rows_are_under_trained_if_any_contributing_encoder_is():
    cur = _curves({"infomax": (P_S, _acc(P_S)), "b": (P_S * 2, _acc(P_S))}, range(3))
    cur["under_trained"] = pd.Series([False] * len(cur), dtype=object)
    cur.loc[(cur["method"] == "b") & (cur["seed"] == 1) & (cur["width"] == 128), "under_trained"] = True
    cur.loc[(cur["method"] == "infomax") & (cur["seed"] == 2) & (cur["width"] == 8), "under_trained"] = None
    recs = pd.DataFrame(C.delta_rows(cur, "infomax", (16, 32, 64), 0.01))
    flag = recs.groupby("seed")["under_trained"].agg(lambda v: set(v))
    assert flag[0] == {False} and flag[1] == {True} and flag[2] == {None}  # any flagged; unknown without the flag
    assert set(recs["metric"]) == {"delta_2p", "g_2p", "gap_2p", "multiplier"}
    assert C.flag_any([False, np.nan]) is None and C.flag_any([pd.NA, 1.0]) is True and C.flag_any([]) is None


def test_the_report_text_holds_no_verdict_word():
    view = EfficiencyView()
    cur = _curves({"infomax": (P_S, _acc(P_S)), "supervised": (P_S * 2, _acc(P_S))}, range(3), noise=0.01)
    rows = [{"metric": "probe_acc", "value": a, **r} for r in cur.to_dict("records") for a in [r["acc"]]]
    rows += [{"metric": "params_deployed", "value": r["params"], **r} for r in cur.to_dict("records")]
    df = _tidy(rows + C.delta_rows(cur, "infomax", (16, 32, 64), 0.01))
    texts = [view.protocol, view.title, *(v.note for v in view.verdicts), *(v.title for v in view.verdicts)]
    for t in view.tables(df):
        texts += [t.title, t.note]
        if not t.verdict:  # the verdict tables' p columns are the report's to hide in exploratory profiles
            texts += [*map(str, t.frame.columns), *(str(v) for v in t.frame.to_numpy().ravel())]
    for word in ("supported", "contradicted", "inconclusive", "p-value", "p <", "p_t", "significant"):
        assert not [x for x in texts if word in x.lower()], word
    assert view.pa == ("supervised", "supervised_mlp2", "supervised_cnn")
    assert [v.role for v in view.verdicts] == ["primary", "secondary"]
    assert view.verdicts[0].margin == {}  # delta is already in the rows' d: declaring it would add it twice


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


def test_raw_fraction_table_reads_the_isotonic_fit():
    cur = _curves(
        {"raw": (np.array([0.0]), np.array([0.9])), "a": (P_S, np.array([0.5, 0.9, 0.7, 0.95, 0.96]))}, range(2)
    )
    cur.loc[cur["method"] == "raw", "width"] = 784
    tab = T.raw_fraction_table(cur, (0.9, 1.0)).set_index("method")
    assert tab.loc["a"].iloc[0].startswith(f"{0.81 / 0.9 * 0 + C.reach(P_S, [0.5, 0.9, 0.7, 0.95, 0.96], 0.81)[0]:.3g}")
    assert tab.loc["a"].iloc[1].startswith(f"{C.reach(P_S, [0.5, 0.9, 0.7, 0.95, 0.96], 0.9)[0]:.3g}")


def _run(tmp_path, methods, name="r", **over):
    cfg = RunConfig(
        workers=1,
        prediction="efficiency",
        dataset="digits",
        methods=methods,
        seeds=[0, 1],
        epochs=1,
        out=str(tmp_path / name),
        cache=str(tmp_path / "c"),
        prediction_overrides=over,
    )
    return read_run(execute(cfg))[0]


@pytest.mark.slow
def test_the_run_on_digits_sweeps_caps_and_keys_its_rows(tmp_path):
    df = _run(tmp_path, ["infomax", "pca", "supervised_mlp2", "raw"], widths=(16, 32, 128), primary_widths=(16,))
    acc = df[df["metric"] == "probe_acc"]
    pca128 = acc[(acc["method"] == "pca") & (acc["width"] == 128)]
    assert len(pca128) == 4 and pca128["value"].isna().all() and pca128["note"].str.contains("at most D").all()
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
    g = df[(df["metric"] == "g_2p") & (df["width"] == 0) & (df["study"] == "main")]
    assert set(g["method"]) == set(delta["method"])
    assert "under_trained" in delta.columns
    # secondary: every method, the subject too, trained on [0-4] and probed on [5-9]
    sec = df[df["study"] == "unseen_classes"]
    assert set(sec["dataset"]) == {"digits[5-9]"} and set(sec["method"]) == {"infomax", "pca", "supervised_mlp2", "raw"}
    src = sec[sec["metric"] == "probe_acc"].groupby("method")["source"].agg(set)
    assert all(v == {"digits[0-4]"} for m, v in src.items() if m != "raw"), src
    ref = df[(df["study"] == "in_domain_reference") & (df["metric"] == "probe_acc")]
    assert set(ref["method"]) == {"infomax"} and set(ref["source"]) == {"digits[5-9]"}
    assert not ref["metric"].isin(["delta_2p", "g_2p"]).any()
    view = EfficiencyView()
    tabs = view.tables(df)
    assert [t.verdict for t in tabs[:2]] == [True, True] and "unseen classes" in tabs[1].title
    assert set(tabs[1].frame["baseline"]) == {"pca", "supervised_mlp2", "raw"}  # the in-domain subject is no row
    assert any(t.title.startswith("unseen_classes: reference") for t in tabs)
    assert tabs[-1].title.startswith("Does InfoMax scale?") and "saturates" in tabs[-1].note
    assert [n for n, _ in view.figures(df, None)] == ["accuracy_vs_params", "delta_2p", "multipliers"]


@pytest.mark.slow
def test_the_cnn_is_swept_over_its_channel_width_and_read_at_twice_the_subjects_p(tmp_path):
    """On digits (D = 64) c in {2, 3} at projection 4 spans P 5.2e3 to 1.1e4 around 2 P_S(64) = 8320."""
    over = {"widths": (32, 64), "primary_widths": (64,), "cnn_channels": (2, 3), "cnn_width": 4, "secondary": False}
    df = _run(tmp_path, ["infomax", "supervised_cnn"], **over)
    cnn = df[(df["method"] == "supervised_cnn") & (df["metric"] == "params_deployed")]
    assert sorted(cnn["channels"].unique()) == [2, 3] and set(cnn["width"]) == {4} and len(cnn) == 4
    info = DataInfo(64, 10, (1, 8, 8))
    for c, v in zip(cnn["channels"], cnn["value"], strict=True):
        assert v == P.counted_params("supervised_cnn", info, 4, channels=int(c))
    d = df[(df["metric"] == "delta_2p") & (df["method"] == "supervised_cnn")]
    assert len(d) == 2 and d["value"].notna().all()
    frame = EfficiencyView().verdict_frame(df, EfficiencyView.verdicts[0]).set_index("baseline")
    assert frame.loc["supervised_cnn", "n"] == 2
    # on digits the CNN's sweep is exploratory: a K outside it is n/a with the reason, never refused
    df = _run(tmp_path, ["infomax", "supervised_cnn"], name="r2", **{**over, "cnn_channels": (2,)})
    d = df[(df["metric"] == "delta_2p") & (df["method"] == "supervised_cnn")]
    assert d["value"].isna().all() and d["note"].str.contains("outside the sweep").all()


def test_on_mnist5k_a_cnn_sweep_that_does_not_bracket_is_refused_by_the_config_check():
    P.EfficiencyConfig().check()  # the declared sweep brackets
    P.EfficiencyConfig(dataset="digits", cnn_channels=(8,)).check()  # exploratory elsewhere
    with pytest.raises(ValueError, match=r"^cnn_channels: .*25120 \(K=16\)"):
        P.EfficiencyConfig(cnn_channels=(8,)).check()
    with pytest.raises(ValueError, match=r"^cnn_channels: .*100480 \(K=64\)"):
        P.EfficiencyConfig(cnn_channels=(4, 5, 6, 8)).check()


def test_a_refused_cnn_sweep_is_one_line_and_exit_2_before_training(tmp_path, capsys):
    from bench.cli import main

    rc = main(
        [
            "run",
            "prediction=efficiency",
            "methods=[infomax,supervised_cnn]",
            "seeds=[0]",
            "epochs=1",
            "efficiency.cnn_channels=[6,8]",
            "workers=1",
            f"out={tmp_path / 'r'}",
            f"cache={tmp_path / 'c'}",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "efficiency: cnn_channels: " in err[0], err
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


def test_confirm_trains_the_subject_and_its_pa_members_only():
    pred = P.Efficiency(P.EfficiencyConfig())
    names = METHODS.names()
    assert pred.default_methods(names, "confirm") == sorted(
        ["infomax", "raw", "supervised", "supervised_cnn", "supervised_mlp2"], key=names.index
    )
    assert pred.default_methods(names, "quick") == names
    assert P.sweep_widths(P.EfficiencyConfig(), "confirm") == P.QUICK_WIDTHS
