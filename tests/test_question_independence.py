"""The independence question (docs/protocol.md 11.2): its planted controls of 11.5 (11: the rotation ladder;
12: robustness), the answer's logic on planted tidy tables (no training), the estimates of (c) and (d), and a
small ``question=independence`` run end to end. Control 10 (dependent data) is tests/test_dependent_data.py's;
the measures' own tests are tests/test_robustness.py's and tests/test_similarity.py's, reused here, not repeated.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from test_robustness import identity, planted  # the planted 4x-copy code of tests/test_robustness.py

from bench.data import DataConfig, load_dataset, sprites
from bench.engine.jobs import JobSpec
from bench.engine.measure import MeasureSource
from bench.evaluate import robustness as R
from bench.protocol import Encoder
from bench.train.methods import METHODS
from bench.train.trainer import build, data_info
from questions.independence import analysis as A
from questions.independence import measures as M
from questions.independence.protocol import Independence, IndependenceConfig, arm, epochs_for_steps

LAMBDAS = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _fitted(method: str, dataset: str, width: int, **cfg) -> Encoder:
    """A fit-once method (pca, fastica) on ``dataset``'s train split, as the runner hands it to a measurement."""
    ds = load_dataset(dataset)
    m = build(method, METHODS.get(method).Config(**cfg), data_info(ds), width)
    m.fit(ds.train.x, ds.train.y, 0)
    spec = JobSpec.make(method, m.cfg, dataset, DataConfig(), width, 0, 1, 128, ds=ds)
    return Encoder(spec=spec, method=m, status="ok")


def _src() -> MeasureSource:
    return MeasureSource(torch.device("cpu"), DataConfig(), lambda name, cfg: load_dataset(name, cfg))


# ----------------------------------------------------------------------------- 11.5.11 rotation ladder
@pytest.fixture(scope="module")
def ladder_rows():
    """measure_rotation of whitened PCA on mnist5k at K = 64, the question's own measurement."""
    q = Independence(IndependenceConfig(ts=(0.0, 0.5, 2.0)))
    enc = _fitted("pca", "mnist5k", 64, whiten=True)
    return pd.DataFrame(q.measure_rotation(enc, _src(), (0.0, 0.5, 2.0)))


def test_rotation_ladder_keeps_probe_accuracy_within_two_thousandths(ladder_rows):
    acc = ladder_rows[ladder_rows["metric"] == "acc"].pivot_table(index="split", columns="t", values="value")
    assert list(acc.columns) == [0.0, 0.5, 2.0] and acc[0.0].min() > 0.8
    assert (acc.sub(acc[0.0], axis=0).abs() <= 0.002).all().all(), acc
    # noise and occlusion reach the frozen probe through the rotation: retained unchanged too
    ret = ladder_rows[(ladder_rows["metric"] == "retained") & (ladder_rows["perturbation"] != "zero")]
    spread = ret.groupby(["split", "perturbation", "level"])["value"].agg(np.ptp)
    assert spread.max() <= 0.01


def test_rotation_ladder_keeps_gaussian_tc_at_zero_on_train(ladder_rows):
    tc = ladder_rows[ladder_rows["metric"] == "gaussian_tc_train"].set_index("t")["value"]
    assert len(tc) == 3 and tc.abs().max() < 1e-3
    assert float(ladder_rows[ladder_rows["metric"] == "train_whiteness"]["value"].iloc[0]) < 1e-3
    # unit zeroing does see the rotation (the other rungs are not the same code)
    zero = ladder_rows[(ladder_rows["metric"] == "retained_mean") & (ladder_rows["perturbation"] == "zero")]
    assert zero.groupby("split")["value"].agg(np.ptp).max() > 0


def test_rotation_adds_pairwise_mi_to_independent_units_at_small_k():
    """11.5.11's "MI non-decreasing in t" holds where the code's units are independent: FastICA on ``ica``
    (K = 8 Laplace sources, recovered with MCC ~ 1) gains binned MI at every rung. At mnist5k K = 64 it does not
    hold (whitened PCA's MI falls with t: its units are not independent to begin with), so it is tested here."""
    enc = _fitted("fastica", "ica", 8)
    ds = load_dataset("ica")
    f_tr, f_te = enc.features(ds.train.x), enc.features(ds.test.x)
    ts = (0.0, 0.25, 0.5, 1.0, 2.0)
    mi = [M.redundancy(f_tr @ r.float(), f_te @ r.float())["pairwise_mi"] for r in M.rotations(8, ts, seed=0)]
    assert all(b > a for a, b in zip(mi, mi[1:], strict=False)), mi  # increasing along the ladder
    assert mi[-1] > mi[0] + 0.01, mi


def test_rotations_are_the_ladder_of_the_identity():
    rs = M.rotations(6, (0.0, 1.0), seed=2)
    assert torch.equal(rs[0], torch.eye(6, dtype=torch.float64))
    assert torch.allclose(rs[1] @ rs[1].T, torch.eye(6, dtype=torch.float64), atol=1e-12)


# ----------------------------------------------------------------------------- 11.5.12 robustness
def test_level_zero_gives_the_clean_accuracy_exactly(digits):
    lin = torch.nn.Linear(64, 32)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(32, 64, generator=_gen(7)) / 4)
        lin.bias.copy_(torch.randn(32, generator=_gen(8)) / 4)

    def encode(x):
        return torch.relu(lin(x))

    s = digits
    rows = M.outcomes(
        encode, s.train.x, s.train.y, s.val.x, s.val.y, s.test.x, s.test.y, 10,
        image_shape=s.image_shape, fractions=(0.0,), sigmas=(0.0,), occlusions=(0.0,),
    )  # fmt: skip
    for split in ("val", "test"):
        these = [r for r in rows if r["split"] == split and not r.get("summary")]
        assert [r["perturbation"] for r in these] == ["none", "zero", "noise", "occlude"]
        clean = these[0]["accuracy"]
        # every level 0 gives the clean accuracy exactly (zeroing averages its draws from integer hit counts)
        assert [r["accuracy"] for r in these[1:]] == [clean, clean, clean]
        assert all(r["retained"] == 1.0 for r in rows if r["split"] == split and not r.get("summary"))


def test_a_code_copied_four_times_retains_more_under_unit_zeroing():
    out = {}
    for copies in (1, 4):
        g = _gen(0)
        (ftr, ytr), (fva, yva), (fte, yte) = (planted(n, g, copies=copies) for n in (1500, 1000, 1000))
        rows = M.outcomes(identity, ftr, ytr, fva, yva, fte, yte, 10, sigmas=(), occlusions=())
        out[copies] = {r["split"]: r["retained"] for r in rows if r.get("summary") and r["perturbation"] == "zero"}
    for split in ("val", "test"):
        assert out[4][split] > out[1][split] + 0.05, out


def test_val_halves_are_disjoint_stratified_and_cover_val():
    y = torch.tensor([3, 1, 1, 2, 3, 3, 1, 2, 2, 2, 1])
    a, b = M.val_halves(y)
    assert sorted(torch.cat([a, b]).tolist()) == list(range(len(y)))
    for c in (1, 2, 3):
        na, nb = int((y[a] == c).sum()), int((y[b] == c).sum())
        assert na - nb in (0, 1)


def test_outcomes_choose_the_probe_on_half_a_and_score_half_b():
    g = _gen(1)
    (ftr, ytr), (fva, yva), (fte, yte) = (planted(n, g) for n in (600, 400, 400))
    rows = M.outcomes(identity, ftr, ytr, fva, yva, fte, yte, 10, fractions=(), sigmas=(), occlusions=())
    a, b = M.val_halves(yva)
    probe = R.fit_frozen_probe(ftr, ytr, fva[a], yva[a], 10)
    clean = {r["split"]: r["accuracy"] for r in rows if r["perturbation"] == "none"}
    assert clean["val"] == float(probe.accuracy(probe.standardize(fva[b]), yva[b])[0])
    assert clean["test"] == float(probe.accuracy(probe.standardize(fte), yte)[0])


# ----------------------------------------------------------------------------- (a) the answer's logic
def dose_table(peak: float = 0.3, gain: float = 0.03, noise: float = 0.002, seeds: int = 10, val_peak=None):
    """A planted dose sweep of the subject on mnist5k: every Y flat at 0.8 but robustness, which is ``gain``
    higher at ``peak`` (on val at ``val_peak`` if given), with N(0, noise) per seed and split."""
    rng = np.random.default_rng(0)
    rows = []
    for s in range(seeds):
        for lam in LAMBDAS:
            for split in ("val", "test"):
                at = val_peak if split == "val" and val_peak is not None else peak
                for metric, extra, bump in (
                    ("retained_mean", {"perturbation": "all"}, gain * (lam == at)),
                    ("acc", {}, 0.0),
                    ("kappa", {}, 0.0),
                ):
                    v = 0.8 + bump + rng.normal(0, noise)
                    rows.append(
                        {"part": "dose", "dataset": "mnist5k", "method": "infomax", "tc": "corr", "lambda_tc": lam}
                        | {"seed": s, "metric": metric, "split": split, "value": v, **extra}
                    )
    return pd.DataFrame(rows)


def test_answer_some_redundancy_helps_on_confirm():
    ans = A.answer(dose_table(), "confirm")
    assert ans.startswith("Some redundancy helps: retained accuracy at lambda*=0.3 beats lambda_tc=10 by ")
    assert 2.5 < float(ans.split(" by ")[1].split()[0]) < 3.5  # the planted 3 points
    tab = A.directional(dose_table(), confirm=True).set_index("outcome")
    assert tab.loc["robustness", "verdict"] == "contradicted" and tab.loc["acc", "verdict"] == "supported"


def test_answer_no_when_every_outcome_is_within_a_point_of_lambda_10():
    ans = A.answer(dose_table(gain=0.0, noise=0.001), "confirm")
    assert ans.startswith("No: the most independent dose is within 1 point"), ans


def test_answer_undetermined_when_the_data_cannot_decide():
    ans = A.answer(dose_table(gain=0.0, noise=0.05), "confirm")
    assert ans.startswith("undetermined:"), ans


def test_exploratory_profiles_give_the_direction_only():
    ans = A.answer(dose_table(), "quick")
    assert ans.startswith(
        "undetermined: no verdict on profile quick (direction only): retained accuracy at lambda*=0.3"
    )
    assert A.directional(dose_table(), confirm=False)["verdict"].eq("").all()
    assert A.answer(pd.DataFrame({"metric": [], "value": []}), "quick").startswith("undetermined: the run has no")
    assert A.answer(dose_table(seeds=1), "confirm").startswith("undetermined")  # one seed: no interval


def test_lambda_star_is_chosen_on_val_never_on_test():
    df = dose_table(peak=0.1, val_peak=3.0)  # test would pick 0.1
    tab = A.directional(df, confirm=True).set_index("outcome")
    assert tab.loc["robustness", "lambda_star"] == 3.0
    assert tab.loc["robustness", "D"] < 0.005  # Y(3) - Y(10) on test: no bump there


def test_leave_one_seed_out_keeps_a_seed_from_choosing_its_own_dose():
    val = pd.DataFrame({0.1: [0.9, 0.5, 0.5], 3.0: [0.6, 0.6, 0.6], 10.0: [0.5, 0.5, 0.5]}, index=[0, 1, 2])
    assert A.choose(val) == 3.0 or A.choose(val) == 0.1
    assert A.loso(val)[0] == 3.0  # seed 0's own luck at 0.1 does not pick 0.1 for it
    assert A.loso(val)[1] == 0.1 and A.choose(val.iloc[:, 1:]) == 3.0
    tie = pd.DataFrame({0.3: [0.5], 10.0: [0.5]})
    assert A.choose(tie) == 10.0  # ties go to the more independent dose


# ----------------------------------------------------------------------------- (c) and (d)
def test_slope_of_mcc_in_the_factors_correlation():
    rows = []
    for arm_name, slope in (("infomax", -0.2), ("fastica", 0.0)):
        for s in range(4):
            for x in (0.0, 0.24, 0.48, 0.74):
                for metric, v in (("mcc", 0.9 + slope * x + 0.001 * s), ("pair_source_corr", x)):
                    rows.append(
                        {"part": "factors", "setting": "ica", "arm": arm_name, "seed": s, "law": "copula", "rho": x}
                        | {"metric": metric, "value": v}
                    )
    df = pd.DataFrame(rows)
    s = A.slopes(df, "ica")
    assert s["infomax"].mean == pytest.approx(-0.2) and s["fastica"].mean == pytest.approx(0.0, abs=1e-12)
    (d,) = A.slope_differences(df, "ica")
    assert d.baseline == "fastica" and d.mean_diff == pytest.approx(-0.2)


def test_factor_outcomes_read_the_matched_pair_like_with_like():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((4000, 2))
    s = np.column_stack([g[:, 0], 0.6 * g[:, 0] + 0.8 * g[:, 1]])  # Pearson 0.6
    keep = M.factor_outcomes(s[:2000, ::-1], s[:2000], s[2000:, ::-1], s[2000:], [(0, 1)])  # the factors, permuted
    assert keep["mcc"] == pytest.approx(1.0, abs=1e-3) and abs(keep["pair_excess"]) < 0.01  # clipped to train
    white = np.linalg.cholesky(np.cov(s[:2000].T)).T
    z = s @ np.linalg.inv(white)  # decorrelated: the pair's dependence removed
    out = M.factor_outcomes(z[:2000], s[:2000], z[2000:], s[2000:], [(0, 1)])
    assert out["pair_excess"] == pytest.approx(-0.6, abs=0.05)


def test_marginal_tv_sees_a_coupling_move_the_position_marginals():
    rng = np.random.default_rng(0)
    tv = {}
    for s in (None, 0.2):
        law = sprites.position_law(s)
        cell = rng.choice(law.size, size=20_000, p=law.ravel())
        tv[s] = M.marginal_tv(np.column_stack(np.unravel_index(cell, law.shape)), 16)
    assert tv[None] < 0.03 and tv[0.2] > tv[None] + 0.02, tv


def test_the_view_reads_a_planted_table():
    from questions.independence.view import IndependenceView

    v = IndependenceView()
    v.profile = "quick"
    df = dose_table(seeds=3)
    tabs = v.tables(df)
    assert tabs[0].title.startswith("(a) Y(lambda*)") and "direction" in tabs[0].frame.columns
    assert [name for name, _ in v.figures(df, pd.DataFrame())] == ["dose_response"]
    assert v.answer(df).startswith("undetermined: no verdict on profile quick")


def test_zoo_rank_correlations_and_their_bootstrap():
    rng = np.random.default_rng(1)
    rows = []
    for i in range(8):
        for s in range(5):
            red = i / 10 + rng.normal(0, 0.005)
            rows.append({"method": f"m{i}", "seed": s, "redundancy": red, "robustness": red, "acc": rng.random()})
    c = A.zoo_correlations(pd.DataFrame(rows), n_boot=300)
    assert c["n_methods"] == 8 and c["rho"] == pytest.approx(1.0) and c["partial"] == pytest.approx(1.0, abs=0.05)
    assert c["rho_ci"][0] > 0.5
    few = A.zoo_correlations(pd.DataFrame(rows[:15]))
    assert math.isnan(few["rho"])  # three methods: no rank correlation


# ----------------------------------------------------------------------------- config and names
def test_config_names_and_budget():
    assert arm("pca", {"whiten": True}) == "pca[whiten=True]" and arm("infomax", {"lambda_tc": 0.3}) == (
        "infomax[lambda_tc=0.3]"
    )
    assert arm("ae") == "ae" and epochs_for_steps(8192, 16384, 128) == 64
    for bad in ({"parts": ("nope",)}, {"ts": (0.5, 1.0)}, {"rhos": (1.0,)}, {"couplings": (0.0,)}):
        with pytest.raises(ValueError):
            IndependenceConfig(**bad).check()
    IndependenceConfig().check()
    Independence(IndependenceConfig()).check_profile("confirm")
    with pytest.raises(ValueError, match="confirm needs the dose part"):
        Independence(IndependenceConfig(lambdas=(0.0, 1.0))).check_profile("confirm")
    Independence(IndependenceConfig(lambdas=(0.0, 1.0))).check_profile("quick")
    assert Independence(IndependenceConfig()).default_methods(["raw", "infomax", "vicreg"], "full") == [
        "infomax",
        "vicreg",
    ]


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_a_small_independence_run_answers_and_makes_questions_pdf(small_question):
    line, df = small_question(
        "independence",
        "methods=[infomax,pca]",
        "seeds=2",
        "epochs=1",
        "independence.lambdas=[0,10]",
        "independence.logdet_lambdas=[]",
        "independence.dose_datasets=[mnist1d]",
        "independence.steps_mnist1d=128",
        "independence.rhos=[0,0.5]",
        "independence.couplings=[none,0.2]",
        "independence.ts=[0,1]",
        "data.n=2000",
    )
    assert "answer: undetermined: no verdict on profile quick (direction only)" in line
    assert set(df["part"].dropna()) == {"dose", "rotation", "factors", "zoo"}
    assert not df["metric"].isin(["job_failed", "measure_failed"]).any()
    dose = df[(df["part"] == "dose") & (df["metric"] == "acc")]
    assert sorted(dose["lambda_tc"].unique()) == [0.0, 10.0] and set(dose["dataset"]) == {"mnist1d"}
    assert set(dose["split"]) == {"val", "test"} and len(dose) == 2 * 2 * 2
    assert set(df[df["part"] == "factors"]["arm"]) == {"infomax", "infomax[lambda_tc=0]"}
    assert set(df[df["part"] == "rotation"]["arm"]) == {"pca[whiten=True]"}
    zoo = df[(df["part"] == "zoo") & (df["metric"] == "kappa")]
    assert set(zoo["method"]) == {"infomax", "pca"} and zoo["value"].between(-1, 1).all()
    assert A.directional(df)["dataset"].tolist() == ["mnist1d", "mnist1d"]  # no transfer pair on mnist1d
