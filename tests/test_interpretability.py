"""Prediction 4, interpretability: the protocol end to end on small data, the pre-activations,
and the view's verdicts (Holm across both primaries, the §8 P4 overall rule, status rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from bench.config import RunConfig
from bench.data import DataConfig
from bench.results import read_matrices, read_run
from bench.runner import execute
from bench.stats import holm
from predictions.interpretability.protocol import InterpretabilityConfig, pre_activations
from predictions.interpretability.view import InterpretabilityView


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("p4")
    cfg = RunConfig(workers=1, prediction="interpretability", methods=["infomax", "pca", "fastica", "raw"], seeds=[0, 1], epochs=2,
                    width=8, out=str(tmp / "results"), cache=str(tmp / "cache"), data=DataConfig(n=3000),
                    prediction_overrides={"settings": ("ica_linear", "dsprites_narrow", "real"),
                                          "real_datasets": ("digits",), "n_perm": 3, "trees": 5})
    run_dir = execute(cfg)
    df, _, _ = read_run(run_dir)
    return df, read_matrices(run_dir)


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
    # pca's code is linear: its pre-activations are its features
    pca = mcc[mcc["method"] == "pca"].set_index(["seed", "feature", "corr"])["value"]
    assert pca.xs("pre", level="feature").to_numpy() == pytest.approx(pca.xs("act", level="feature").to_numpy())
    names = set(mats["matrix"])
    assert {"importance_dsprites_narrow", "corr_ica_linear", "atlas_top", "atlas_top_label", "atlas_unit",
            "atlas_weight"} <= names
    assert set(mats.loc[mats["matrix"] == "atlas_top", "seed"]) == {0}  # first seed only
    imp = mats[(mats["matrix"] == "importance_dsprites_narrow") & (mats["method"] == "infomax")]
    assert (imp["i"].max() + 1, imp["j"].max() + 1) == (5, 5)


def test_the_view_builds_verdicts_tables_and_the_atlas(small_run):
    df, mats = small_run
    view = InterpretabilityView()
    tables = view.verdict_tables(df)
    assert tables[0].title.startswith("Primary, overall") and list(tables[0].frame["baseline"]) == ["fastica", "pca", "raw"]
    assert tables[1].title.startswith("Primary: MCC")  # no DCI-D at K = width in this run
    narrow = next(t.frame for t in tables if "DCI disentanglement on dsprites, K = 5" in t.title).set_index("baseline")
    assert narrow.loc["raw", "n"] == 0 and "K = D" in narrow.loc["raw", "reason"]
    assert tables[1].frame.set_index("baseline").loc["raw", "n"] == 2  # raw has K = D = 8 on ica: scored
    figs = dict(view.figures(df, mats))
    assert {"metrics", "importance", "ica_corr", "atlas_digits_infomax", "atlas_digits_fastica"} <= set(figs)
    (ax,) = figs["atlas_digits_infomax"].axes  # one mosaic: a tile and a label per unit
    labels = [t.get_text() for t in ax.texts]
    assert len(labels) == 8 and all(t == "dead" or t.startswith(f"u{i}: ") for i, t in enumerate(labels))  # K = 8


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
    where = {"mcc": dict(dataset="ica", width=8, setting="ica_linear", feature="pre", corr="pearson"),
             "dci_d": dict(dataset="dsprites", width=64, setting="dsprites_wide")}
    rows = [{"method": m, "metric": p, "seed": s, "value": v, **where[p]}
            for (m, p), vs in values.items() for s, v in enumerate(vs)]
    return pd.DataFrame(rows)


def test_holm_runs_across_all_primary_rows_and_the_overall_rule_needs_both():
    rng = np.random.default_rng(0)
    subj = {"mcc": 0.9 + 0.01 * rng.standard_normal(6), "dci_d": 0.8 + 0.01 * rng.standard_normal(6)}
    vals = {("infomax", p): list(v) for p, v in subj.items()}
    # both: clearly lower on both; one: lower on MCC only; worse: clearly higher on DCI-D
    offsets = {"both": (-0.3, -0.3), "one": (-0.3, 0.0), "worse": (-0.3, 0.3)}
    for b, (dm, dd) in offsets.items():
        vals[(b, "mcc")] = list(subj["mcc"] + dm + 0.01 * rng.standard_normal(6))
        vals[(b, "dci_d")] = list(subj["dci_d"] + dd + 0.01 * rng.standard_normal(6))
    df = _tidy(vals)
    tables = InterpretabilityView().verdict_tables(df)
    overall, mcc, dci = tables[0].frame.set_index("baseline"), tables[1].frame, tables[2].frame
    assert len(mcc) == len(dci) == 3
    assert np.concatenate([mcc["p_holm"], dci["p_holm"]]) == pytest.approx(holm(np.r_[mcc["p_t"], dci["p_t"]]))
    assert dict(overall["verdict"]) == {"both": "supported", "one": "inconclusive", "worse": "contradicted"}
    assert overall.loc["both", "p_holm"] == pytest.approx(max(mcc.set_index("baseline").loc["both", "p_holm"],
                                                              dci.set_index("baseline").loc["both", "p_holm"]))


def test_a_skipped_method_is_a_row_in_its_settings_tables_only():
    vals = {("infomax", "mcc"): [0.9, 0.8, 0.85], ("infomax", "dci_d"): [0.5, 0.6, 0.55],
            ("pca", "mcc"): [0.5, 0.6, 0.55], ("pca", "dci_d"): [0.4, 0.5, 0.45],
            ("mae", "dci_d"): [0.4, 0.5, 0.45]}
    df = _tidy(vals)
    skipped = pd.DataFrame([{"method": "mae", "metric": "job_skipped", "dataset": "ica", "width": 8, "seed": s,
                             "value": 1.0, "note": "needs images"} for s in range(3)])
    tables = InterpretabilityView().verdict_tables(pd.concat([df, skipped], ignore_index=True))
    mcc, dci = tables[1].frame.set_index("baseline"), tables[2].frame.set_index("baseline")
    assert mcc.loc["mae", "n"] == 0 and mcc.loc["mae", "reason"] == "needs images"
    assert dci.loc["mae", "n"] == 3 and (tables[2].frame["dataset"] == "dsprites").all()
    assert tables[0].frame.set_index("baseline").loc["mae", "verdict"] == "inconclusive"


def test_a_baseline_without_a_dci_value_has_no_joint_p():
    vals = {("infomax", "mcc"): [0.9, 0.8, 0.85], ("infomax", "dci_d"): [0.5, 0.6, 0.55],
            ("lse_only", "mcc"): [0.5, 0.6, 0.55], ("lse_only", "dci_d"): [float("nan")] * 3}
    overall = InterpretabilityView().verdict_tables(_tidy(vals))[0].frame.set_index("baseline").loc["lse_only"]
    assert overall["verdict"] == "inconclusive" and np.isnan(overall["p_holm"])


def test_config_checks():
    InterpretabilityConfig().check()
    with pytest.raises(ValueError, match="settings"):
        InterpretabilityConfig(settings=("mnist",)).check()
    with pytest.raises(ValueError, match="mig_bins"):
        InterpretabilityConfig(mig_bins=(1,)).check()


def test_a_failed_nonlinear_ica_job_is_not_a_missing_seed_of_the_linear_tables():
    vals = {("infomax", "mcc"): [0.9, 0.8, 0.85], ("infomax", "dci_d"): [0.5, 0.6, 0.55],
            ("pca", "mcc"): [0.5, 0.6, 0.55], ("pca", "dci_d"): [0.4, 0.5, 0.45]}
    df = _tidy(vals)
    df.loc[df["metric"] == "mcc", "data"] = "mixing=linear"
    failed = pd.DataFrame([{"method": "pca", "metric": "job_failed", "dataset": "ica", "width": 8, "seed": 3,
                            "value": 1.0, "note": "diverged", "data": "mixing=nonlinear"}])
    mcc = InterpretabilityView().verdict_tables(pd.concat([df, failed], ignore_index=True))[1].frame
    pca = mcc.set_index("baseline").loc["pca"]
    assert pca["n"] == 3 and pca["n_missing"] == 0 and not pca["reason"]  # the failure belongs to the nonlinear setting
