"""Prediction 4, interpretability: the protocol end to end on small data, the pre-activations, the
view's declarations (two primaries, fastica's margin, n/a by design on ica, the PA family) and its
unjudged comparison rows (status rows scoped to their setting), the dSprites ridge probe."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from bench.config import RunConfig
from bench.data import DataConfig, load_dataset
from bench.engine.jobs import data_info
from bench.engine.runner import execute
from bench.protocol import SUBJECT, family
from bench.results import read_matrices, read_run
from bench.train.methods import METHODS
from predictions.interpretability import ridge
from predictions.interpretability.protocol import InterpretabilityConfig, pre_activations
from predictions.interpretability.view import ICA_NA, InterpretabilityView


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("p4")
    cfg = RunConfig(
        workers=1,
        prediction="interpretability",
        methods=["infomax", "pca", "fastica", "raw"],
        seeds=[0, 1],
        epochs=2,
        width=8,
        out=str(tmp / "results"),
        cache=str(tmp / "cache"),
        data=DataConfig(n=3000),
        prediction_overrides={
            "settings": ("ica_linear", "dsprites_narrow", "real"),
            "real_datasets": ("digits",),
            "n_perm": 3,
            "trees": 5,
        },
    )
    run_dir = execute(cfg)
    df, _, _ = read_run(run_dir)
    return df, read_matrices(run_dir)


@pytest.mark.slow
def test_the_protocol_writes_every_setting_and_the_matrices_the_figures_need(small_run):
    df, mats = small_run
    mcc = df[df["metric"] == "mcc"]
    assert set(mcc["feature"]) == {"pre", "act"} and set(mcc["corr"]) == {"pearson", "spearman"}
    assert (mcc["width"] == 8).all() and mcc["value"].between(0, 1).all()
    dci = df[df["metric"] == "dci_d"]
    assert set(dci["setting"]) == {"dsprites_narrow"} and len(dci) == 8
    assert (dci["width"] == 5).sum() == 6 and dci.loc[dci["method"] == "raw", "value"].isna().all()  # raw: K = D
    assert set(df.loc[df["metric"] == "mig", "bins"]) == {10, 20, 50}
    assert set(df.loc[df["metric"] == "mig_factor", "factor"]) == {"shape", "scale", "orientation", "pos_x", "pos_y"}
    assert set(df.loc[df["metric"] == "sparse_auroc", "k"]) == {1, 5}
    assert set(df.loc[df["metric"] == "purity", "m"]) == {10}  # digits has < 500 test images
    unnameable = df[df["metric"] == "unnameable_at_m"]
    assert len(unnameable) == 8 and set(unnameable["m"]) == {10}  # a count per encoder, of its K units
    assert (unnameable["value"] >= 0).all() and (unnameable["value"] <= unnameable["width"]).all()
    assert (unnameable["value"] % 1 == 0).all() and unnameable.loc[unnameable["method"] == "raw", "value"].min() > 0
    r2 = df[df["metric"] == "r2"]
    assert set(r2["factor"]) == {"pos_x", "pos_y", "scale"} and set(r2["budget"]) == {"16", "64", "256", "all"}
    r2_mean = df[df["metric"] == "r2_mean"].set_index(["method", "seed"]).sort_index()["value"]
    assert r2_mean.drop("raw").le(1).all() and r2_mean.loc["raw"].isna().all()  # raw: K = D, no K = 5 score
    assert "under_trained" in df.columns  # every row is one encoder's row(): it carries the job's flag
    # pca's code is linear: its pre-activations are its features
    pca = mcc[mcc["method"] == "pca"].set_index(["seed", "feature", "corr"])["value"]
    assert pca.xs("pre", level="feature").to_numpy() == pytest.approx(pca.xs("act", level="feature").to_numpy())
    names = set(mats["matrix"])
    assert {
        "importance_dsprites_narrow",
        "corr_ica_linear",
        "atlas_top",
        "atlas_top_label",
        "atlas_unit",
        "atlas_weight",
    } <= names
    assert set(mats.loc[mats["matrix"] == "atlas_top", "seed"]) == {0}  # first seed only
    # the atlas's thumbnails are the run's own: the top inputs' test rows, quantised (digits: 8 x 8, kept)
    thumb = {n: g for n, g in mats[(mats["method"] == "infomax")].groupby("matrix") if n.startswith("atlas_")}
    index = thumb["atlas_thumb_index"].sort_values("i")["value"].to_numpy(int)
    assert set(thumb["atlas_top"]["value"].astype(int)) == set(index)
    assert thumb["atlas_thumb_shape"].sort_values("j")["value"].tolist() == [8, 8, 8, 8]
    x = load_dataset("digits").test.x.numpy()[index]
    q = np.round((x - x.min()) / (x.max() - x.min()) * 255)
    stored = thumb["atlas_thumb"].pivot(index="i", columns="j", values="value").to_numpy()
    assert np.abs(stored - q).max() <= 1  # float32 rounding at a half level
    imp = mats[(mats["matrix"] == "importance_dsprites_narrow") & (mats["method"] == "infomax")]
    assert (imp["i"].max() + 1, imp["j"].max() + 1) == (5, 5)


@pytest.mark.slow
def test_the_view_builds_comparison_rows_tables_and_the_atlas(small_run):
    df, mats = small_run
    view = InterpretabilityView()
    mcc, dci_wide, dci_narrow = (view.verdict_frame(df, view.verdicts[i]) for i in (0, 1, 5))
    assert list(mcc["baseline"]) == ["fastica", "pca", "raw"]  # REF members stay in the frames
    assert mcc.set_index("baseline").loc["raw", "n"] == 2  # raw has K = D = 8 on ica: scored
    assert dci_wide.empty  # no DCI-D at K = width in this run
    narrow = dci_narrow.set_index("baseline")
    assert narrow.loc["raw", "n"] == 0 and "K = D" in narrow.loc["raw", "reason"]
    titles = [t.title for t in view.tables(df)]
    assert any(t.startswith("Summary per method") for t in titles)
    figs = dict(view.figures(df, mats))
    assert {"metrics", "importance", "ica_corr", "atlas_digits_infomax", "atlas_digits_fastica"} <= set(figs)
    (ax,) = figs["atlas_digits_infomax"].axes  # one mosaic: a tile and a label per unit
    labels = [t.get_text() for t in ax.texts]
    assert len(labels) == 8 and all(t == "dead" or t.startswith(f"u{i}: ") for i, t in enumerate(labels))  # K = 8
    assert "atlas_missing" not in figs


def test_a_run_without_thumbnails_says_so_in_one_line(small_run):
    """A run made before the protocol stored thumbnails: no atlas, and one line that says why."""
    df, mats = small_run
    old = mats[~mats["matrix"].str.startswith("atlas_thumb")]
    figs = dict(InterpretabilityView().figures(df, old))
    assert not [n for n in figs if n.startswith("atlas_digits")]
    (text,) = [t.get_text() for t in figs["atlas_missing"].texts]
    assert "no thumbnails" in text and "infomax on digits" in text and "fastica on digits" in text


def test_thumbnails_pool_quantise_and_come_back_at_full_size():
    from predictions.interpretability.figures import _thumbnails
    from predictions.interpretability.protocol import thumbnails

    rng = np.random.default_rng(0)
    images = rng.normal(size=(5, 28 * 28))
    got = thumbnails(images, np.array([3, 7, 9, 20, 41]), (28, 28))
    assert got["atlas_thumb"].shape == (5, 14 * 14) and got["atlas_thumb_shape"].tolist() == [[14, 14, 28, 28]]
    assert got["atlas_thumb"].min() == 0 and got["atlas_thumb"].max() == 255
    assert np.array_equal(got["atlas_thumb"], np.round(got["atlas_thumb"]))
    back, shape = _thumbnails(got)
    assert shape == (28, 28) and sorted(back) == [3, 7, 9, 20, 41] and back[7].shape == (28, 28)
    pooled = images[1].reshape(14, 2, 14, 2).mean(axis=(1, 3))
    assert np.corrcoef(back[7][::2, ::2].ravel(), pooled.ravel())[0, 1] > 0.999


def test_two_primaries_the_fastica_margin_and_n_a_by_design_on_ica_are_declared():
    view = InterpretabilityView
    primaries = [v for v in view.verdicts if v.role == "primary"]
    assert [(v.metric, v.where) for v in primaries] == [
        ("mcc", {"setting": "ica_linear", "feature": "pre", "corr": "pearson"}),
        ("dci_d", {"setting": "dsprites_wide"}),
    ]
    assert all(v.role == "secondary" for v in view.verdicts if v not in primaries)
    assert primaries[0].margin == {"fastica": 0.05} and not primaries[1].margin
    assert not any(v.margin for v in view.verdicts[1:])
    # n/a by design on ica = exactly the methods that cannot run on its data, on every ica verdict
    ica = load_dataset("ica", DataConfig(n=600))
    listed = [m for m in METHODS.names() if getattr(METHODS.get(m), "listed", True)]  # a prediction's default methods
    cannot = {m for m in listed if METHODS.get(m).unsupported(data_info(ica))}
    assert set(ICA_NA) == cannot == {"supervised", "supervised_mlp2", "supervised_cnn", "mae", "rbm"}
    for v in view.verdicts:
        assert v.na == (ICA_NA if v.where.get("setting", "").startswith("ica") else {}), v.label
    # the PA family: every method but the subject, AB and REF (view.pa = None), 19 at the time of writing (a new
    # baseline joins it); on MCC (ica) exactly the five that cannot run on ica's data are n/a by design
    assert view.pa is None
    pa = [m for m in listed if m != SUBJECT and family(m, view.pa) == "PA"]
    assert len(pa) >= 19 and len(pa) - len([m for m in pa if m not in primaries[0].na]) == len(ICA_NA) == 5
    assert "verdict_tables" not in view.__dict__  # judged by the base View, not here


@pytest.mark.slow
def test_report_text_of_the_view_holds_no_verdict_word_or_p_value(small_run):
    df, _ = small_run
    view = InterpretabilityView()
    own = [t for t in view.tables(df) if not t.verdict]
    texts = [
        view.protocol,
        view.title,
        *(v.label + " " + v.note for v in view.verdicts),
        *(t.title + " " + t.note for t in own),
    ]
    for text in texts:
        low = text.lower()
        assert not any(w in low for w in ("supported", "contradicted", "inconclusive", "holm", "p-value", "p_")), text
    assert "14 rows on MCC" in view.protocol and "+ 19 on DCI-D" in view.protocol


def test_true_dsprites_factors_give_ridge_r2_near_1_and_one_hot_shape_gives_position_r2_near_0():
    ds = load_dataset("dsprites", DataConfig(n=4000))
    names = list(ds.factor_names)
    cols = [names.index(n) for n in ("pos_x", "pos_y", "scale")]
    t = [s.factors[:, cols] for s in (ds.train, ds.val, ds.test)]
    budgets, draws = ("16", "64", "256", "all"), (10, 5, 3, 1)
    true = ridge.budget_r2([s.factors for s in (ds.train, ds.val, ds.test)], t, budgets, draws, seed=0)
    assert all(v.min() > 0.95 for v in true.values()), true
    shape = names.index("shape")
    onehot = [torch.nn.functional.one_hot(s.factors[:, shape].long(), 3).double() for s in (ds.train, ds.val, ds.test)]
    r2 = ridge.budget_r2(onehot, t, budgets, draws, seed=0)
    assert abs(r2["all"][:2]).max() < 0.02 and max(v[:2].max() for v in r2.values()) < 0.05, r2  # pos_x, pos_y


def test_ridge_draws_depend_on_seed_and_budget_only():
    a = ridge.random_subsets(1000, "16", 10, seed=3)
    assert len(a) == 10 and all(len(s) == 16 for s in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, ridge.random_subsets(1000, "16", 10, seed=3), strict=True))
    assert not np.array_equal(a[0], ridge.random_subsets(1000, "16", 10, seed=4)[0])
    assert [len(s) for s in ridge.random_subsets(1000, "all", 1, seed=3)] == [1000]


def test_pre_activations_are_wx_plus_b_for_single_layer_encoders():
    class Fake(nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def encoder_weight(self):
            return self.encoder.weight if isinstance(self.encoder, nn.Linear) else None

    torch.manual_seed(0)
    x = torch.randn(50, 4)
    lin = Fake(nn.Linear(4, 3))
    z, is_pre = pre_activations(lin, x, torch.relu(lin.encoder(x)))
    assert is_pre and torch.allclose(z, x @ lin.encoder.weight.T + lin.encoder.bias)
    deep = Fake(nn.Sequential(nn.Linear(4, 3), nn.ReLU()))
    feats = deep.encoder(x)
    z, is_pre = pre_activations(deep, x, feats)
    assert not is_pre and z is feats


def _tidy(values: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """Tidy rows of the two primaries: (method, primary) -> per-seed values."""
    where = {
        "mcc": dict(dataset="ica", width=8, setting="ica_linear", feature="pre", corr="pearson"),
        "dci_d": dict(dataset="dsprites", width=64, setting="dsprites_wide"),
    }
    rows = [
        {"method": m, "metric": p, "seed": s, "value": v, **where[p]}
        for (m, p), vs in values.items()
        for s, v in enumerate(vs)
    ]
    return pd.DataFrame(rows)


def test_a_skipped_method_is_a_row_in_its_settings_tables_only():
    vals = {
        ("infomax", "mcc"): [0.9, 0.8, 0.85],
        ("infomax", "dci_d"): [0.5, 0.6, 0.55],
        ("pca", "mcc"): [0.5, 0.6, 0.55],
        ("pca", "dci_d"): [0.4, 0.5, 0.45],
        ("mae", "dci_d"): [0.4, 0.5, 0.45],
    }
    df = _tidy(vals)
    skipped = pd.DataFrame(
        [
            {
                "method": "mae",
                "metric": "job_skipped",
                "dataset": "ica",
                "width": 8,
                "seed": s,
                "value": 1.0,
                "note": "needs images",
            }
            for s in range(3)
        ]
    )
    view, both = InterpretabilityView(), pd.concat([df, skipped], ignore_index=True)
    mcc, dci = (view.verdict_frame(both, v) for v in view.verdicts[:2])
    assert (dci["dataset"] == "dsprites").all()
    mcc, dci = mcc.set_index("baseline"), dci.set_index("baseline")
    assert mcc.loc["mae", "n"] == 0 and mcc.loc["mae", "reason"] == "needs images"
    assert dci.loc["mae", "n"] == 3


def test_config_checks():
    InterpretabilityConfig().check()
    with pytest.raises(ValueError, match="settings"):
        InterpretabilityConfig(settings=("mnist",)).check()
    with pytest.raises(ValueError, match="mig_bins"):
        InterpretabilityConfig(mig_bins=(1,)).check()
    with pytest.raises(ValueError, match="factor_budgets"):
        InterpretabilityConfig(factor_budgets=("0",), factor_draws=(1,)).check()
    with pytest.raises(ValueError, match="factor_draws"):
        InterpretabilityConfig(factor_draws=(1,)).check()


def test_a_failed_nonlinear_ica_job_is_not_a_missing_seed_of_the_linear_tables():
    vals = {
        ("infomax", "mcc"): [0.9, 0.8, 0.85],
        ("infomax", "dci_d"): [0.5, 0.6, 0.55],
        ("pca", "mcc"): [0.5, 0.6, 0.55],
        ("pca", "dci_d"): [0.4, 0.5, 0.45],
    }
    df = _tidy(vals)
    df.loc[df["metric"] == "mcc", "data"] = "mixing=linear"
    failed = pd.DataFrame(
        [
            {
                "method": "pca",
                "metric": "job_failed",
                "dataset": "ica",
                "width": 8,
                "seed": 3,
                "value": 1.0,
                "note": "diverged",
                "data": "mixing=nonlinear",
            }
        ]
    )
    view = InterpretabilityView()
    mcc = view.verdict_frame(pd.concat([df, failed], ignore_index=True), view.verdicts[0])
    pca = mcc.set_index("baseline").loc["pca"]
    assert pca["n"] == 3 and pca["n_missing"] == 0 and not pca["reason"]  # the failure belongs to the nonlinear setting
