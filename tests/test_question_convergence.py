"""The open question ``convergence`` (docs/protocol.md 11.3): its estimands and answer on planted tidy tables (no
training), the planted controls of 11.5 where they pass through this question's own code, its measurement, its
cache keys shared with ``scaling``, and one small run end to end.

The controls themselves are tested where their measures live and are not repeated here: 1 (debiased CKA) and 2
(matched-unit |corr|) in tests/test_similarity.py, 4 (infomax with lambda_lse=0 is infomax_noem) and 6 (per-term
gradient norms) in tests/test_diagnostics.py, 8 (TOST) in tests/test_estimates.py. Below, each is checked once
more on this question's path: pair rows through :mod:`bench.evaluate.pairwise` and the view's S; control 4
through :meth:`Convergence.measure_code`; control 8 through Delta_EM's TOST.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from bench.config import RunConfig
from bench.data import DataConfig, load_dataset
from bench.engine.jobs import JobSpec
from bench.evaluate import pairwise, similarity
from bench.protocol import Encoder
from bench.train.trainer import fit_encoder
from questions.convergence import estimands as E
from questions.convergence.protocol import Convergence, ConvergenceConfig
from questions.convergence.view import ConvergenceView, stability_verdicts

N_X = (1024, 4096, 16384, 65536, 262144)
K_X = (16, 32, 64, 128, 256)
ICA_X = (8, 32, 64)
METHODS = ("infomax", "infomax_noem", "pca", "fastica", "ae", "simclr", "supervised")


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def em_rows(axis, xs, seeds, delta, metric="test_acc", noise=0.002, seed=0):
    """infomax and infomax_noem rows: noem = base + seed effect, infomax = noem + delta(x) + noise."""
    rng, col = _rng(seed), E.AXES[axis][0]
    rows = []
    for x in xs:
        for s in seeds:
            base = 0.8 + 0.01 * rng.standard_normal()
            rows.append({"axis": axis, col: x, "method": "infomax_noem", "seed": s, "metric": metric, "value": base})
            v = base + delta(x) + noise * rng.standard_normal()
            rows.append({"axis": axis, col: x, "method": "infomax", "seed": s, "metric": metric, "value": v})
    return rows


def r_em_rows(axis, xs, seeds, r, seed=1, metric="r_em_init"):
    rng, col = _rng(seed), E.AXES[axis][0]
    return [
        {"axis": axis, col: x, "method": "infomax", "seed": s, "metric": metric, "value": r(x) * math.exp(0.05 * z)}
        for x in xs
        for s in seeds
        for z in [rng.standard_normal()]
    ]


def pair_rows(axis, xs, seeds, s_of, methods=METHODS, metric="cka", ceiling=0.9, noise=0.002, seed=2):
    """Cross-seed pair rows: within a method ``ceiling``, between a and b ``s_of(x, a, b) * ceiling``, + noise."""
    rng, col = _rng(seed), E.AXES[axis][0]
    keys = [(m, s) for m in methods for s in seeds]
    rows = []
    for x in xs:
        for a, b in pairwise.cross_seed_pairs(keys):
            v = ceiling * (1.0 if a[0] == b[0] else s_of(x, a[0], b[0])) + noise * rng.standard_normal()
            rows.append(
                {"axis": axis, col: x, "method": a[0], "seed": a[1], "other": b[0], "other_seed": b[1]}
                | {"metric": metric, "value": v}
            )
    return rows


def answer(rows) -> str:
    return ConvergenceView().answer(pd.DataFrame(rows))


SEEDS = list(range(10))
RISING = lambda x, a, b: 0.97 - 0.3 / (1 + math.log2(x / 8))  # noqa: E731 - S rising to 0.92 and 0.95


def _scale_rows(
    delta_n, delta_k, r_k, seeds=SEEDS, s_of=RISING, noise=0.002, mcc_delta=lambda x: 0.0, r_trained=lambda x: 1.0
):
    """``r_k``: r_EM at init along K; the trained r_EM sits near 1 (a stationary point) unless ``r_trained``."""
    rows = em_rows("n_mnist1d", N_X, seeds, delta_n, noise=noise) + em_rows("k", K_X, seeds, delta_k, noise=noise)
    rows += em_rows("ica", ICA_X, seeds, mcc_delta, metric="mcc", noise=noise)
    rows += r_em_rows("k", K_X, seeds, r_k) + r_em_rows("n_mnist1d", N_X, seeds, lambda x: 0.03)
    rows += r_em_rows("ica", ICA_X, seeds, r_k)
    rows += r_em_rows("k", K_X, seeds, r_trained, seed=3, metric="r_em")
    return rows + pair_rows("n_mnist1d", N_X, seeds, s_of) + pair_rows("k", K_X, seeds, s_of)


# ----------------------------------------------------------------------------- the answer on planted tables
def test_em_outweighed_when_delta_shrinks_to_zero_and_r_em_falls():
    shrink = lambda x: 0.04 * (1 - math.log2(x / 16) / 4)  # noqa: E731 - 4 points at K = 16, 0 at 256
    shrink_n = lambda x: 0.04 * (1 - math.log2(x / 1024) / 8)  # noqa: E731 - 0 at N = 262,144
    a = answer(_scale_rows(shrink_n, shrink, lambda k: 4.0 / k))
    assert a.startswith("EM's effect shrinks with scale (Delta_EM"), a
    assert "while r_EM falls" in a and a.rstrip(".").split(";")[-1].strip().startswith("everything converges")
    assert "EM was outweighed" in a and "(mnist5k; TOST at 1 point: equivalent" in a


def test_no_effect_with_an_undiluted_em_term_reads_the_mechanism_does_not_matter():
    a = answer(_scale_rows(lambda x: 0.0, lambda x: 0.0, lambda k: 0.3))
    assert a.startswith("EM's effect is within the margin at the largest scale"), a
    assert "although r_EM does not fall" in a and "at scale the mechanism does not matter" in a


def test_dilution_is_read_at_init_not_on_the_trained_ratio():
    """The trained r_EM tends to 1 at any stationary point: a trained ratio that falls with K while the ratio at
    init does not is no dilution, and a ratio at init that falls is dilution whatever the trained one does."""
    zero = lambda x: 0.0  # noqa: E731
    a = answer(_scale_rows(zero, zero, lambda k: 0.3, r_trained=lambda k: 4.0 / k))
    assert "although r_EM does not fall (log2 r_EM at init" in a, a
    b = answer(_scale_rows(zero, zero, lambda k: 4.0 / k, r_trained=lambda k: 1.0))
    assert "while r_EM falls (log2 r_EM at init -1.00" in b and "EM was outweighed" in b, b


def test_an_effect_that_stays_reads_the_mechanism_still_matters():
    a = answer(_scale_rows(lambda x: 0.0, lambda x: 0.03, lambda k: 4.0 / k))
    assert a.startswith("The mechanism still matters at the largest scale: Delta_EM = +3.0"), a
    assert "K = 256 (mnist5k; TOST at 1 point: differs" in a and "N = 262,144" not in a.split(";")[0]
    b = answer(_scale_rows(lambda x: 0.0, lambda x: 0.0, lambda k: 4.0 / k, mcc_delta=lambda x: 0.1))
    assert b.startswith("The mechanism still matters") and "Delta_EM = MCC +0.10" in b


def test_two_noisy_seeds_read_undetermined():
    a = answer(_scale_rows(lambda x: 0.01, lambda x: 0.01, lambda k: 4.0 / k, seeds=[0, 1], noise=0.03))
    assert a.startswith("undetermined: "), a
    assert "whether everything converges is undetermined" in a  # two seeds: no jackknife interval
    assert ConvergenceView().answer(pd.DataFrame({"metric": [], "value": []})).startswith("undetermined: ")


def test_a_pair_that_stays_apart_reads_not_everything_converges():
    apart = lambda x, a, b: 0.5 if {a, b} == {"infomax", "pca"} else RISING(x, a, b)  # noqa: E731
    a = answer(_scale_rows(lambda x: 0.0, lambda x: 0.0, lambda k: 0.3, s_of=apart))
    assert "not everything converges: S(infomax, pca) = +0.50" in a, a
    flat = lambda x, a, b: 0.95  # noqa: E731 - high but not rising: undetermined, never "converges"
    b = answer(_scale_rows(lambda x: 0.0, lambda x: 0.0, lambda k: 0.3, s_of=flat))
    assert "whether everything converges is undetermined (0 of 42" in b, b


def test_every_table_and_figure_builds_on_a_planted_run():
    v = ConvergenceView()
    df = pd.DataFrame(_scale_rows(lambda x: 0.0, lambda x: 0.01, lambda k: 4.0 / k))
    titles = [t.title for t in v.tables(df)]
    assert any(t.startswith("Delta_EM") for t in titles) and any(t.startswith("(c)") for t in titles)
    assert [n for n, _ in v.figures(df, pd.DataFrame())][0] == v.main_figure == "delta_em"


# ----------------------------------------------------------------------------- estimands
def test_delta_is_paired_by_seed_and_drops_unpaired_seeds():
    rows = em_rows("k", (16, 32), [0, 1, 2], lambda x: 0.01, noise=0.0)
    rows = [r for r in rows if not (r["method"] == "infomax" and r["seed"] == 2 and r["width"] == 32)]
    d = E.delta(pd.DataFrame(rows), "k", "test_acc")
    assert len(d) == 5 and np.allclose(d["d"], 0.01)
    assert set(d[d["x"] == 32]["seed"]) == {0, 1}


def test_tost_on_delta_reads_equivalent_for_no_shift_and_not_for_two_points():
    """Control 8 on this question's path: the subject against itself (another draw) is equivalent; 2 points off is not."""
    same = E.delta_summary(pd.DataFrame(em_rows("k", K_X, SEEDS, lambda x: 0.0)), "k", "test_acc")
    off = E.delta_summary(pd.DataFrame(em_rows("k", K_X, SEEDS, lambda x: 0.02)), "k", "test_acc")
    assert same.tost.result == "equivalent" and same.tost.smallest_margin < 0.01
    assert off.tost.result == "differs" and off.tost.smallest_margin > 0.01
    assert same.trend == "no trend" and off.slope.covers(0.0)


def test_bias_corrected_magnitude_removes_the_upward_bias_of_abs_mean():
    rng = _rng(3)
    draws = rng.standard_normal((4000, 5))  # true mean 0: |mean| is biased up, the corrected form far less
    naive = np.abs(draws.mean(1)).mean()
    corrected = np.mean([E.bias_corrected_magnitude(d) for d in draws])
    assert naive > 0.3 and corrected < 0.6 * naive
    assert E.bias_corrected_magnitude([2.0, 2.1, 1.9, 2.0]) == pytest.approx(2.0, abs=0.01)


def test_jackknife_pseudo_values_of_a_mean_and_of_a_mean_over_pairs():
    v = {s: float(s) ** 2 for s in range(6)}
    full, pseudo = E.jackknife(lambda ss: float(np.mean([v[s] for s in ss])), list(v))
    assert pseudo == pytest.approx(v) and full == pytest.approx(np.mean(list(v.values())))
    rng, n = _rng(4), 6
    d = {(s, t): rng.standard_normal() for s in range(n) for t in range(s + 1, n)}
    u = lambda ss: float(np.mean([d[p] for p in d if set(p) <= set(ss)]))  # noqa: E731
    full, pseudo = E.jackknife(u, range(n))
    per_seed = {s: np.mean([x for p, x in d.items() if s in p]) for s in range(n)}
    for s in range(n):  # a degree-2 U-statistic: pseudo_s = (2 (n - 1) dbar_s - n U) / (n - 2)
        assert pseudo[s] == pytest.approx((2 * (n - 1) * per_seed[s] - n * full) / (n - 2))
    assert all(math.isnan(x) for x in E.jackknife(u, [0, 1])[1].values())


def test_jackknife_interval_covers_where_the_naive_per_seed_interval_does_not():
    """Seed effects shared by every pair of a seed: the t-interval over pseudo-values covers ~95%, the one over
    the per-seed means of pairs covers far less (the pairs are not independent)."""
    from bench.evaluate.inference import t_interval

    rng, n, cover_j, cover_naive = _rng(5), 8, 0, 0
    pairs_ = [(s, t) for s in range(n) for t in range(s + 1, n)]
    for _ in range(400):
        a = rng.standard_normal(n)
        d = {p: a[p[0]] + a[p[1]] + 0.3 * rng.standard_normal() for p in pairs_}
        u = lambda ss, d=d: float(np.mean([x for p, x in d.items() if set(p) <= set(ss)]))  # noqa: E731
        _, pseudo = E.jackknife(u, range(n))
        _, lo, hi = t_interval(list(pseudo.values()))
        cover_j += lo <= 0 <= hi
        _, lo, hi = t_interval([np.mean([x for p, x in d.items() if s in p]) for s in range(n)])
        cover_naive += lo <= 0 <= hi
    assert 0.9 <= cover_j / 400 <= 0.99 and cover_naive / 400 < 0.8


def test_pair_rows_give_the_similarity_module_s_and_its_ceilings():
    """Controls 1 on this question's path: per-pair CKA equals similarity.cka, and S from pair rows equals
    similarity.similarity_matrix (its ceilings included); a planted S is read back."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(300, 6, generator=g)
    codes = {}
    for m, k in (("a", 8), ("b", 12), ("c", 5)):
        mix = torch.randn(6, k, generator=g)
        for s in range(4):
            codes[(m, s)] = torch.relu(z @ mix + 0.7 * torch.randn(300, k, generator=g))
    keys = pairwise.cross_seed_pairs(codes)
    assert all(a[1] != b[1] for a, b in keys) and len(keys) == 3 * 6 + 3 * 12
    values = pairwise.cka_pairs(codes, keys)
    for a, b in keys[:5]:
        assert values[a, b] == pytest.approx(similarity.cka(codes[a], codes[b]), abs=1e-12)
    p = pd.DataFrame(
        [{"method": a[0], "seed": a[1], "other": b[0], "other_seed": b[1], "value": v} for (a, b), v in values.items()]
    )
    ps = E.PairSet(p)
    ref = similarity.similarity_matrix({m: {s: codes[(m, s)] for s in range(4)} for m in "abc"})
    for (ma, mb), sim in ref.items():
        assert ps.similarity(ma, mb) == pytest.approx(sim.s, abs=1e-12)
    assert ps.between("a", "a") == pytest.approx(ref["a", "a"].cka_w_a, abs=1e-12)
    trends = E.pair_trends(pd.DataFrame(pair_rows("k", (16, 32), [0, 1, 2, 3], lambda x, a, b: 0.7, noise=0.0)), "k")
    assert all(t.s == pytest.approx((0.7, 0.7)) for t in trends)


def test_matched_pairs_see_a_permuted_copy_but_not_a_rotated_one():
    """Control 2 on this question's path (pairwise.matched_pairs)."""
    g = torch.Generator().manual_seed(1)
    a = torch.randn(600, 16, generator=g).pow(3)
    perm = a[:, torch.randperm(16, generator=g)] * torch.tensor([1.0, -1.0] * 8)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    u, _, _ = torch.linalg.svd(a.double() - a.double().mean(0), full_matrices=False)
    w = u * math.sqrt(len(a))  # whitened: every rotation of it is whitened too
    rot = w @ q
    fit, score = (
        {0: a[:300], 1: perm[:300], 2: w[:300], 3: rot[:300]},
        {0: a[300:], 1: perm[300:], 2: w[300:], 3: rot[300:]},
    )
    m = pairwise.matched_pairs(fit, score, [(0, 1), (2, 3)])
    assert m[0, 1].score == pytest.approx(1.0) and m[2, 3].score < 0.5
    assert similarity.cka(w, rot) == pytest.approx(1.0, abs=1e-9)


def test_stability_verdicts_only_under_confirm():
    seeds = list(range(100, 110))
    rows = pair_rows(
        "k",
        (64, 256),
        seeds,
        lambda x, a, b: 1.0,
        methods=("infomax",),
        metric="matched_corr_live",
        ceiling=0.8,
        noise=0.02,
    )
    rows += pair_rows(
        "k",
        (64, 256),
        seeds,
        lambda x, a, b: 1.0,
        methods=("infomax_noem",),
        metric="matched_corr_live",
        ceiling=0.6,
        noise=0.02,
        seed=9,
    )
    df = pd.DataFrame(rows)
    assert stability_verdicts(df, "confirm") == {64.0: "supported", 256.0: "supported"}
    assert stability_verdicts(df, "quick") == {64.0: "exploratory: as predicted", 256.0: "exploratory: as predicted"}
    flipped = df.assign(method=df["method"].map({"infomax": "infomax_noem", "infomax_noem": "infomax"}))
    flipped["other"] = flipped["method"]
    assert set(stability_verdicts(flipped, "confirm").values()) == {"contradicted"}
    (st,) = [s for s in E.stability(df, "k") if s.x == 64.0]
    assert st.subject == pytest.approx(0.8, abs=0.01) and st.diff.ci_low > 0.15


# ----------------------------------------------------------------------------- the measurement and the cells
class _Src:
    """What a measurement sees: the device and datasets (a stub of bench.engine.measure.MeasureSource)."""

    device = torch.device("cpu")

    def dataset(self, name, data=None):
        return load_dataset(name, DataConfig(**{k: v for k, v in (data or {}).items() if v is not None}))


def _measured(method: str, **cfg) -> dict[str, float]:
    data = DataConfig(pretrain_n=256)
    ds = load_dataset("mnist1d", data)
    conf = RunConfig(method_overrides={method: cfg} if cfg else {}).method_config(method)
    model, meta = fit_encoder(
        method, conf, ds, 16, 3, epochs=2, batch_size=128, device=torch.device("cpu"), track=False
    )
    spec = JobSpec.make(method, conf, "mnist1d", data, 16, 3, 2, 128, ds)
    rows = Convergence(ConvergenceConfig()).measure_code(Encoder(spec, model, "ok", meta=meta), _Src())
    return {r["metric"]: r["value"] for r in rows}


def test_the_measurement_reads_infomax_without_lse_as_infomax_noem_value_for_value():
    """Control 4 on this question's path: every value of measure_code, gradient norms included, is the same."""
    zero, noem, full = _measured("infomax", lambda_lse=0.0), _measured("infomax_noem"), _measured("infomax")
    assert set(zero) == set(noem) >= {"test_acc", "kappa_10", "dead_fraction", "act_scale", "grad_norm_tc", "r_em"}
    for k in zero:
        assert zero[k] == noem[k] or (math.isnan(zero[k]) and math.isnan(noem[k])), k
    assert math.isnan(zero["r_em"]) and full["r_em"] > 0 and full["grad_norm_lse"] > 0
    assert full["r_em_init"] > 0 and full["stationarity"] >= 0 and full["grad_norm_lse_init"] != full["grad_norm_lse"]
    assert full["test_acc"] != zero["test_acc"]


class _CellSrc:
    seeds, methods = [0, 1, 2], ["infomax", "infomax_noem", "pca"]

    def measure(self, fn, *args, methods=None, widths=None, dataset=None, **kw):
        for m in methods:
            for s in self.seeds:
                if (m, s) != ("infomax", 1):  # this job diverged: no rows come back
                    yield [
                        {
                            "dataset": dataset,
                            "method": m,
                            "width": widths[0],
                            "seed": s,
                            "metric": "test_acc",
                            "value": 0.5,
                        }
                    ]


def test_every_em_job_of_a_cell_gets_a_diverged_row():
    rows = Convergence(ConvergenceConfig())._cell(
        _CellSrc(), _CellSrc.methods, "mnist5k", None, 16, None, {"axis": "k"}
    )
    div = {(r["method"], r["seed"]): r["value"] for r in rows if r["metric"] == "diverged"}
    assert div == {(m, s): float((m, s) == ("infomax", 1)) for m in ("infomax", "infomax_noem") for s in range(3)}
    assert all(r["axis"] == "k" and r["width"] == 16 for r in rows)


@pytest.mark.slow
def test_the_shared_axes_ask_for_the_scaling_questions_encoders(tmp_path):
    """Same dataset, data, width, epochs and seed give the same cache key: convergence's N, K and epochs jobs are
    all among scaling's (only ica and the lambda_lse sensitivity are its own)."""
    from bench.arguments import configs
    from bench.engine.jobs import JobCache
    from bench.engine.plan import enumerate_prediction

    cache = JobCache(tmp_path / "cache", torch.device("cpu"))
    cfgs = {q: configs([f"question={q}"])[q] for q in ("scaling", "convergence")}
    specs = {q: enumerate_prediction(c, torch.device("cpu"), cache).specs for q, c in cfgs.items()}
    theirs = {s.key for s in specs["scaling"]}
    own = [s for s in specs["convergence"] if s.key not in theirs]
    assert {(s.dataset, s.method) for s in own} == {("ica", "infomax"), ("ica", "infomax_noem"), ("mnist5k", "infomax")}
    assert all(s.method_cfg.lambda_lse in (0.1, 10.0) for s in own if s.dataset == "mnist5k")
    assert len(specs["convergence"]) == 440 and len(own) == 30 + 10


@pytest.mark.slow
def test_a_small_convergence_run_answers_and_makes_questions_pdf(small_question):
    line, df = small_question(
        "convergence",
        "methods=[infomax,infomax_noem,pca]",
        "seeds=2",
        "convergence.n_mnist1d=[256,512]",
        "convergence.steps_mnist1d=8",
        "convergence.widths=[8,16]",
        "convergence.epochs_axis=[1,2]",
        "convergence.ica_sources=[4]",
        "convergence.lambda_lse=[0.1]",
        "convergence.lambda_widths=[8]",
        "convergence.n_similarity=200",
        "epochs=1",
    )
    assert "whether everything converges is undetermined" in line  # two seeds: no jackknife interval
    assert set(df["axis"].dropna()) == {"n_mnist1d", "k", "steps", "ica", "lambda_lse"}
    cka = df[df["metric"] == "cka"]
    assert (cka["seed"] != cka["other_seed"]).all() and len(cka) == 2 * 2 * (3 * 1 + 3 * 2)  # axes x points x pairs
    assert set(df[df["metric"] == "diverged"]["value"]) == {0.0}
    assert df[(df["metric"] == "r_em") & (df["method"] == "infomax")]["value"].gt(0).all()
    steps = df[(df["axis"] == "steps") & (df["metric"] == "test_acc")]
    assert sorted(steps["epochs"].unique()) == [1, 2] and set(df[df["axis"] == "ica"]["method"]) <= {
        "infomax",
        "infomax_noem",
    }


def test_the_lambda_table_keeps_the_batch_2k_cells_apart():
    from questions.convergence.tables import lambda_table

    rows = []
    for s in range(5):
        rows += [
            {"axis": "k", "method": m, "width": 1024, "seed": s, "metric": "test_acc", "value": v}
            for m, v in (("infomax", 0.90), ("infomax_noem", 0.88))
        ]
        for lam in (0.1, 10.0):
            for b, v in ((np.nan, 0.89), (2048.0, 0.80)):
                rows.append(
                    {"axis": "lambda_lse", "lambda_lse": lam, "batch_size": b, "method": "infomax", "width": 1024}
                    | {"seed": s, "metric": "test_acc", "value": v + 0.001 * s}
                )
    t = lambda_table(pd.DataFrame(rows)).frame
    assert list(t["batch"]) == ["run's"] * 3 + ["2K"] * 2  # lambda_lse = 1 (the k axis) only at the run's batch
    assert list(t["lambda_lse"]) == [0.1, 1.0, 10.0, 0.1, 10.0]
    assert np.allclose(t["Delta_EM acc"], [0.012, 0.02, 0.012, -0.078, -0.078])
