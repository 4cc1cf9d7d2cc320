"""P2 transfer mechanics and the planted controls of PROTOCOL.md §9 (P2) (predictions/transfer/)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bench.config import RunConfig
from bench.data import DataConfig, load_dataset
from bench.probe import L2_GRID, accuracy, fit_logreg, standardize
from bench.protocol import VIEWS
from bench.results import read_run
from bench.runner import execute
from predictions.transfer import pairs as P
from predictions.transfer.probing import budget_probe, fit_subsets, ridge_r2
from predictions.transfer.protocol import TransferConfig

SMALL = {"budgets": ("1", "5", "10", "200", "all"), "draws": (3, 2, 1, 1, 1)}


def _run(tmp_path, methods, name="r", data=None, **over):
    cfg = RunConfig(workers=1, prediction="transfer", methods=methods, seeds=[0, 1], epochs=2, width=8,
                    out=str(tmp_path / name), cache=str(tmp_path / "cache"),
                    prediction_overrides={"pairs": ("digits_lo_hi",), **SMALL, **over},
                    **({"data": data} if data else {}))
    return read_run(execute(cfg))[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("transfer"), ["infomax", "pca", "raw", "supervised"])


# ------------------------------------------------------------------------------ kappa on planted codes
def _labels(n_per_class: int, c: int, g: torch.Generator) -> torch.Tensor:
    return torch.arange(c).repeat_interleave(n_per_class)[torch.randperm(c * n_per_class, generator=g)]


def test_one_hot_labels_give_kappa_1_and_a_constant_code_gives_0():
    g = torch.Generator().manual_seed(0)
    c = 5
    y = [_labels(n, c, g) for n in (40, 20, 20)]  # train, val, test (balanced test)
    subsets = [s for b in ("1", "5", "all") for s in P.draw_subsets(y[0], b, 3, seed=0, pair="planted")]
    onehot = [torch.nn.functional.one_hot(t, c).float() for t in y]
    res = budget_probe(onehot[0], y[0], onehot[1], y[1], onehot[2], y[2], c, subsets)
    assert torch.allclose(P.kappa(res.test_acc, c), torch.ones(len(subsets), dtype=torch.float64))
    assert torch.allclose(P.kappa(res.fixed_acc, c), torch.ones(len(subsets), dtype=torch.float64))
    const = [torch.ones(len(t), 8) for t in y]
    res = budget_probe(const[0], y[0], const[1], y[1], const[2], y[2], c, subsets)
    assert P.kappa(res.test_acc, c).abs().max() < 1e-9  # one class predicted: 1/C of a balanced test
    assert P.kappa(0.2, 5) == 0.0 and P.kappa(1.0, 5) == 1.0 and P.kappa(0.6, 5) == pytest.approx(0.5)


def test_each_gathered_subset_is_the_same_problem_as_fitting_it_alone():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 6, generator=g)
    y = (x[:, :3] @ torch.randn(3, 4, generator=g)).argmax(1)
    subsets = [np.arange(0, 300, 7), np.arange(5, 200, 3), np.arange(1, 300, 7)]
    xs = standardize(x)[0].double()
    for l2 in (1e-2, 1e-4):
        w, b = fit_subsets(xs, y, 4, l2, subsets, max_iter=300)
        for i, s in enumerate(subsets):
            w1, b1 = fit_logreg(xs[s], y[s], 4, l2, max_iter=1000)
            assert torch.allclose(w[i], w1[0], atol=2e-3)
            assert torch.allclose(b[i] - b[i].mean(), b1[0] - b1[0].mean(), atol=2e-3)
            assert accuracy(xs, y, w[i : i + 1], b[i : i + 1]) == accuracy(xs, y, w1, b1)


def _digits_code(k: int = 24):
    """Features of the digits splits through a seeded random projection and a ReLU (a stand-in encoder)."""
    d = load_dataset("digits")
    proj = torch.randn(d.train.x[0].numel(), k, generator=torch.Generator().manual_seed(0))
    return d, [torch.relu(s.x.flatten(1).float() @ proj) for s in (d.train, d.val, d.test)]


def _weighted_budget_probe(f_train, y_train, f_val, y_val, f_test, y_test, n_classes, subsets, fixed_l2=1e-2):
    """The former formulation, kept as a reference: the G probes as ONE L-BFGS problem on all N shared
    train rows, probe g weighting its rows 1 / |S_g| and every other row 0 (``fit_logreg``'s weight)."""
    x_tr, x_va, x_te = standardize(f_train.float(), f_val.float(), f_test.float())
    weight = torch.zeros(len(subsets), len(x_tr), dtype=torch.float64)
    for g, idx in enumerate(subsets):
        weight[g, torch.as_tensor(idx, dtype=torch.int64)] = 1.0 / len(idx)
    masks = torch.ones(len(subsets), x_tr.shape[1])
    grid = {float(v) for v in L2_GRID}
    best_val = best_test = best_l2 = fixed = init = None
    for l2 in sorted(grid | {fixed_l2}, reverse=True):
        init = fit_logreg(x_tr, y_train, n_classes, l2, masks, init=init, weight=weight)
        test, val = accuracy(x_te, y_test, *init), accuracy(x_va, y_val, *init)
        fixed = test if l2 == fixed_l2 else fixed
        if best_val is None:
            best_val, best_test, best_l2 = val, test, torch.full_like(val, l2)
            continue
        better = val > best_val
        best_val, best_test = torch.where(better, val, best_val), torch.where(better, test, best_test)
        best_l2 = torch.where(better, torch.full_like(best_l2, l2), best_l2)
    return best_test, best_l2, fixed


def test_budget_probe_agrees_with_the_weighted_formulation_on_a_real_code():
    d, f = _digits_code()
    budgets, draws = ("1", "5", "10", "all"), (6, 4, 3, 1)
    plan = [(b, s) for b, k in zip(budgets, draws, strict=True) for s in P.draw_subsets(d.train.y, b, k, 0, "ref")]
    subsets = [s for _, s in plan]
    new = budget_probe(f[0], d.train.y, f[1], d.val.y, f[2], d.test.y, d.n_classes, subsets)
    old_test, old_l2, old_fixed = _weighted_budget_probe(f[0], d.train.y, f[1], d.val.y, f[2], d.test.y,
                                                         d.n_classes, subsets)
    at = np.array([b for b, _ in plan])
    for b in budgets:  # per budget, the mean over draws (what the protocol reports)
        i = torch.as_tensor(np.flatnonzero(at == b))
        assert abs(float(new.test_acc[i].mean() - old_test[i].mean())) <= 0.02, b
        assert abs(float(new.fixed_acc[i].mean() - old_fixed[i].mean())) <= 0.02, b
    assert float((new.l2 == old_l2).double().mean()) >= 0.75  # the same val-chosen L2 for most probes
    assert float((new.test_acc - old_test).abs().max()) <= 0.05


def test_a_probe_does_not_depend_on_the_other_subsets_in_the_batch():
    d, f = _digits_code()
    ones, fives = P.draw_subsets(d.train.y, "1", 2, 0, "alone"), P.draw_subsets(d.train.y, "5", 1, 0, "alone")
    a = ones[0]
    alone = budget_probe(f[0], d.train.y, f[1], d.val.y, f[2], d.test.y, d.n_classes, [a])
    crowd = budget_probe(f[0], d.train.y, f[1], d.val.y, f[2], d.test.y, d.n_classes, [fives[0], ones[1], a])
    assert abs(float(alone.test_acc[0] - crowd.test_acc[2])) <= 1e-3
    assert abs(float(alone.fixed_acc[0] - crowd.fixed_acc[2])) <= 1e-3
    assert float(alone.l2[0]) == float(crowd.l2[2])


# ------------------------------------------------------------------------------ the labelled draws
def test_draws_are_stratified_at_random_never_a_prefix_and_seeded_without_the_method():
    y = torch.arange(5).repeat_interleave(40)  # class-sorted, as the mnist5k train split comes back
    a = P.draw_subsets(y, "5", 4, seed=0, pair="mnist_lo_hi")
    assert len(a) == 4 and all(len(s) == 25 for s in a)
    assert all(torch.bincount(y[torch.as_tensor(s)], minlength=5).tolist() == [5] * 5 for s in a)
    prefix = np.concatenate([np.arange(k * 40, k * 40 + 5) for k in range(5)])
    assert not any(np.array_equal(s, prefix) for s in a) and not np.array_equal(a[0], a[1])
    again = P.draw_subsets(y, "5", 4, seed=0, pair="mnist_lo_hi")
    assert all(np.array_equal(s, t) for s, t in zip(a, again, strict=True))
    for other in (P.draw_subsets(y, "5", 4, 1, "mnist_lo_hi"), P.draw_subsets(y, "5", 4, 0, "digits_lo_hi")):
        assert not np.array_equal(a[0], other[0])
    assert np.array_equal(P.draw_subsets(y, "all", 3, 0, "x")[0], np.arange(200))
    assert len(P.draw_subsets(y, "all", 3, 0, "x")) == 1


def test_every_method_and_both_references_probe_the_same_labelled_subsets(run):
    sums = run[run["metric"] == "subset_checksum"]
    assert set(sums["method"]) == {"infomax", "pca", "raw", "supervised"} and set(sums["reference"]) == {"transfer", "in_domain"}
    per = sums.groupby(["seed", "budget"])["value"].nunique()
    assert (per == 1).all()  # one subset set per (seed, budget), whatever the method or reference
    s1 = sums[sums["budget"] == "1"].groupby("seed")["value"].first()
    assert s1[0] != s1[1]  # seeded by the seed


def test_infeasible_budgets_are_rejected_with_their_reason(run):
    y = torch.tensor([0] * 10 + [1] * 3)
    assert P.infeasible(y, 2, "3") == "" and P.infeasible(y, 2, "all") == ""
    assert "class 1 has 3 train examples" in P.infeasible(y, 2, "4")
    skipped = run[run["metric"] == "skipped"]
    assert set(skipped["budget"]) == {"200"} and skipped["note"].str.contains("200 per class infeasible").all()
    assert not len(run[(run["metric"] == "kappa") & (run["budget"] == "200")])
    for bad in ({"budgets": ("1", "5", "10", "0"), "draws": (1, 1, 1, 1)}, {"budgets": ("1", "5", "10", "x")},
                {"draws": (1, 2)}, {"budgets": ("5", "10"), "draws": (1, 1)}, {"pairs": ("nope",)}):
        with pytest.raises(ValueError, match="budgets|draws|pairs"):
            TransferConfig(**bad).check()


# ------------------------------------------------------------------------------ the run's numbers
def test_raw_transfer_equals_in_domain(run):
    raw = run[run["method"] == "raw"]
    gaps = raw[raw["metric"].isin(["gap", "gap_mean"])]["value"]
    assert len(gaps) and (gaps == 0).all()
    t = raw[(raw["metric"] == "kappa") & (raw["reference"] == "transfer")].set_index(["seed", "budget", "l2_mode"])
    i = raw[(raw["metric"] == "kappa") & (raw["reference"] == "in_domain")].set_index(["seed", "budget", "l2_mode"])
    assert t["value"].sort_index().equals(i["value"].sort_index())


def test_primary_and_coprimary_average_the_same_cells_and_the_view_reads_them(run):
    k = run[(run["metric"] == "kappa") & (run["l2_mode"] == "val") & run["budget"].isin(P.PRIMARY_BUDGETS)]
    for m in ("infomax", "pca"):
        for s in (0, 1):
            g = k[(k["method"] == m) & (k["seed"] == s)].set_index(["reference", "budget"])["value"]
            prim = run[(run["metric"] == "kappa_transfer_mean") & (run["method"] == m) & (run["seed"] == s)
                       & (run["budget"] == "1,5,10") & (run["l2_mode"] == "val")]["value"]
            gap = run[(run["metric"] == "gap_mean") & (run["method"] == m) & (run["seed"] == s)
                      & (run["budget"] == "1,5,10") & (run["l2_mode"] == "val")]["value"]
            assert float(prim.iloc[0]) == pytest.approx(g["transfer"].mean())
            assert float(gap.iloc[0]) == pytest.approx(g["transfer"].mean() - g["in_domain"].mean())
    view = VIEWS.get("transfer")()
    tabs = view.verdict_tables(run)
    assert tabs[0].title.startswith("Primary") and tabs[1].title.startswith("Co-primary")
    for t in tabs[:2]:
        assert list(t.frame["baseline"]) == ["pca", "supervised"]  # raw: a reference row, never a verdict
    assert list(tabs[1].frame["in-domain"]) == ["", "oracle"]  # supervised in-domain saw the target's labels
    ind = run[(run["reference"] == "in_domain") & (run["metric"] == "kappa")]
    assert ind.loc[ind["method"] == "supervised", "note"].str.startswith("oracle").all()
    assert ind.loc[ind["method"] != "supervised", "note"].isna().all()
    d = tabs[1].frame.set_index("baseline").loc["pca", "mean_diff"]
    sub = run[(run["metric"] == "gap_mean") & (run["budget"] == "1,5,10") & (run["l2_mode"] == "val")]
    per = sub.pivot(index="seed", columns="method", values="value")
    assert d == pytest.approx((per["infomax"] - per["pca"]).mean())
    assert any("raw (reference)" in str(v) for t in view.tables(run) for v in t.frame.get("method", []))


def test_a_pair_whose_files_are_absent_is_skipped_with_its_reason(tmp_path):
    df = _run(tmp_path, ["pca"], pairs=("mnist_fashion",), data=DataConfig(root=str(tmp_path / "none")))
    assert set(df["metric"]) == {"skipped"} and set(df["pair"]) == {"mnist_fashion"}
    assert df["note"].str.contains("pair mnist_fashion skipped").all() and set(df["seed"]) == {0, 1}


# ------------------------------------------------------------------------------ dSprites
@pytest.fixture(scope="module")
def sprites():
    return load_dataset("dsprites", DataConfig(n=3000))


def test_dsprites_true_factors_give_r2_near_1_and_one_hot_shape_near_0(sprites):
    cols = [sprites.factor_names.index(f) for f in ("pos_x", "pos_y", "scale")]
    t = [s.factors[:, cols] for s in (sprites.train, sprites.val, sprites.test)]
    n = len(sprites.train.x)
    for b in ("64", "all"):
        subsets = P.random_subsets(n, b, 3, seed=0, pair="dsprites")
        true = [s.factors for s in (sprites.train, sprites.val, sprites.test)]
        r2 = ridge_r2(true[0], t[0], true[1], t[1], true[2], t[2], subsets)
        assert r2.shape == (len(subsets), 3) and r2.min() > 0.99
        shape = [torch.nn.functional.one_hot(s.y, 3).float() for s in (sprites.train, sprites.val, sprites.test)]
        r2 = ridge_r2(shape[0], t[0], shape[1], t[1], shape[2], t[2], subsets)
        assert r2[:, :2].abs().max() < (0.1 if b == "64" else 0.02)  # position: nothing to read from shape


def test_dsprites_rows_per_factor_and_budget(tmp_path):
    df = _run(tmp_path, ["pca"], pairs=("dsprites",), data=DataConfig(n=1500), factor_budgets=("16", "all"),
              factor_draws=(2, 1))
    r2 = df[df["metric"] == "r2"]
    assert set(r2["factor"]) == {"pos_x", "pos_y", "scale"} and set(r2["budget"]) == {"16", "all"}
    assert len(r2) == 2 * 3 * 2 and r2["value"].le(1).all()
    mean = df[df["metric"] == "r2_mean"].set_index("seed")["value"]
    assert mean.to_dict() == pytest.approx(r2.groupby("seed")["value"].mean().to_dict())
    assert isinstance(VIEWS.get("transfer")().tables(df)[0].frame, pd.DataFrame)
