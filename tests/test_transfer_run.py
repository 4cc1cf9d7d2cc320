"""P2 transfer end to end (small runs): the run-based controls of docs/protocol.md (P2) and the view's contract."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.config import RunConfig
from bench.data import DataConfig
from bench.engine.runner import execute
from bench.protocol import VIEWS, family
from bench.results import read_run
from predictions.transfer import pairs as P
from predictions.transfer.protocol import PRIMARY_SUBSET

METHODS = ["infomax", "pca", "raw", "supervised"]


def _run(tmp_path, methods, name="r", data=None, **over):
    cfg = RunConfig(
        workers=1,
        prediction="transfer",
        methods=methods,
        seeds=[0, 1],
        epochs=1,
        width=8,
        out=str(tmp_path / name),
        cache=str(tmp_path / "cache"),
        prediction_overrides={
            "pairs": ("digits_lo_hi",),
            "budgets": ("1", "5", "10", "200"),
            "draws": (2, 1, 1, 1),
            **over,
        },
        **({"data": data} if data else {}),
    )
    return read_run(execute(cfg))[0]


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    """digits_lo_hi alone: an exploratory pairs subset."""
    return _run(tmp_path_factory.mktemp("transfer"), METHODS)


@pytest.fixture(scope="module")
def primary(tmp_path_factory):
    """The three primary pairs, smallest budgets."""
    return _run(
        tmp_path_factory.mktemp("transfer"), METHODS, pairs=P.PRIMARY, budgets=("1", "5", "10"), draws=(1, 1, 1)
    )


@pytest.mark.slow
def test_every_method_and_every_reference_probes_the_same_labelled_subsets(primary):
    sums = primary[primary["metric"] == "subset_checksum"]
    assert set(sums["method"]) == set(METHODS)
    assert set(sums["reference"]) == {"transfer", "in_domain", "matched"}
    per = sums.groupby(["seed", "pair", "budget"])["value"].nunique()
    assert (per == 1).all()  # one subset set per (seed, pair, budget), whatever the method or reference
    s1 = sums[sums["budget"] == "1"].groupby(["pair", "seed"])["value"].first()
    assert s1["digits_lo_hi", 0] != s1["digits_lo_hi", 1]  # seeded by the seed


@pytest.mark.slow  # reads the module fixture's whole run
def test_raw_transfer_equals_in_domain(primary):
    raw = primary[primary["method"] == "raw"]
    gaps = raw[raw["metric"].isin(["gap", "gap_mean"])]["value"]
    assert len(gaps) and (gaps == 0).all()
    k = raw[raw["metric"] == "kappa"].set_index(["pair", "seed", "budget", "l2_mode", "scaling"])
    t, i = (k[k["reference"] == r]["value"].sort_index() for r in ("transfer", "in_domain"))
    assert len(t) and t.equals(i)


@pytest.mark.slow  # reads the module fixture's whole run
def test_step_matched_sources_and_widths(primary):
    k = primary[primary["metric"] == "kappa"]
    matched = k[k["reference"] == "matched"]
    assert set(matched["pair"]) == {"mnist_digits"}  # the lo_hi pairs' own sources are within 10%
    assert set(matched["dataset"]) == {"mnist5k~digits28c"} and "supervised" not in set(matched["method"])
    assert set(k.loc[(k["pair"] == "digits_lo_hi") & (k["method"] != "raw"), "width"]) == {32}  # K = 32 there
    assert set(k.loc[(k["pair"] == "mnist_lo_hi") & (k["method"] != "raw"), "width"]) == {8}  # the run's width
    gap = primary[(primary["metric"] == "gap") & (primary["pair"] == "mnist_lo_hi")]
    own = k[(k["pair"] == "mnist_lo_hi")].pivot_table(
        index=["method", "seed", "budget", "l2_mode", "scaling"], columns="reference", values="value"
    )
    want = (own["transfer"] - own["in_domain"]).dropna()
    got = gap.set_index(["method", "seed", "budget", "l2_mode", "scaling"])["value"]
    pd.testing.assert_series_equal(got.sort_index(), want.loc[got.index].sort_index(), check_names=False)
    assert "supervised" not in set(primary.loc[primary["metric"].isin(["gap", "gap_mean"]), "method"])


@pytest.mark.slow
def test_primary_and_coprimary_average_the_same_cells_and_the_view_reads_them(primary):
    k = primary[(primary["metric"] == "kappa") & (primary["l2_mode"] == "val") & (primary["scaling"] == "scalar")]
    for m in ("infomax", "pca"):
        for s in (0, 1):
            g = k[(k["method"] == m) & (k["seed"] == s)].groupby("reference")["value"]
            sel = primary[
                (primary["method"] == m)
                & (primary["seed"] == s)
                & (primary["pair"] == "primary")
                & (primary["budget"] == "1,5,10")
                & (primary["l2_mode"] == "val")
                & (primary["scaling"] == "scalar")
            ].set_index("metric")["value"]
            t = g.mean()
            matched = k[
                (k["method"] == m)
                & (k["seed"] == s)
                & ((k["reference"] == "matched") | ((k["reference"] == "transfer") & (k["pair"] != "mnist_digits")))
            ]
            assert sel["kappa_transfer_mean"] == pytest.approx(t["transfer"])
            assert sel["gap_mean"] == pytest.approx(matched["value"].mean() - t["in_domain"])
    view = VIEWS.get("transfer")()
    v1, v2 = view.verdicts[:2]
    assert (v1.metric, v2.metric) == ("kappa_transfer_mean", "gap_mean") and (v1.role, v2.role) == (
        "primary",
        "co-primary",
    )
    assert set(v2.na) == {"supervised", "supervised_mlp2", "supervised_cnn"} and not v1.na
    assert all(v.role == "secondary" for v in view.verdicts[2:])
    frame = view.verdict_frame(primary, v1)
    assert list(frame["baseline"]) == ["pca", "raw", "supervised"]  # raw stays (family REF)
    assert family("raw", view.pa) == "REF"
    co = view.verdict_frame(primary, v2).set_index("baseline")
    per = (
        primary[(primary["metric"] == "gap_mean")]
        .pipe(
            lambda d: d[
                (d["pair"] == "primary")
                & (d["budget"] == "1,5,10")
                & (d["l2_mode"] == "val")
                & (d["scaling"] == "scalar")
            ]
        )
        .pivot(index="seed", columns="method", values="value")
    )
    assert co.loc["pca", "mean_diff"] == pytest.approx((per["infomax"] - per["pca"]).mean())
    assert co.loc["supervised", "n"] == 0  # no co-primary values: n/a by design
    for v in view.verdicts:  # every declared cell is selectable without duplicate rows
        view.verdict_frame(primary, v)
    assert any("raw (reference)" in str(x) for t in view.tables(primary) for x in t.frame.get("method", []))
    for name, fig in view.figures(primary, pd.DataFrame()):
        assert name and fig.axes


@pytest.mark.slow  # reads the module fixture's whole run
def test_derived_rows_carry_under_trained(primary):
    derived = primary[primary["metric"].isin(["gap", "gap_mean", "kappa_transfer_mean"])]
    assert "under_trained" in derived.columns and len(derived)


@pytest.mark.slow
def test_a_pairs_subset_computes_no_primary_and_says_so(subset):
    assert not len(subset[subset["pair"] == "primary"].query("metric != 'skipped'"))
    note = subset[(subset["metric"] == "skipped") & (subset["pair"] == "primary")]["note"]
    assert len(note) == len(METHODS) * 2 and note.str.startswith(PRIMARY_SUBSET).all()
    tables = VIEWS.get("transfer")().tables(subset)
    assert any(PRIMARY_SUBSET in str(v) for t in tables for v in t.frame.get("note", []))


@pytest.mark.slow  # reads the module fixture's whole run
def test_infeasible_budgets_are_skipped_with_their_reason(subset):
    skipped = subset[(subset["metric"] == "skipped") & (subset["pair"] == "digits_lo_hi")]
    assert set(skipped["budget"]) == {"200"} and skipped["note"].str.contains("200 per class infeasible").all()
    assert not len(subset[(subset["metric"] == "kappa") & (subset["budget"] == "200")])


@pytest.mark.slow
def test_a_pair_whose_files_are_absent_is_skipped_with_its_reason(tmp_path):
    df = _run(tmp_path, ["pca"], pairs=("mnist_fashion",), data=DataConfig(root=str(tmp_path / "none")))
    assert set(df["metric"]) == {"skipped"} and set(df["pair"]) == {"mnist_fashion", "primary"}
    assert df.loc[df["pair"] == "mnist_fashion", "note"].str.contains("pair mnist_fashion skipped").all()
    assert set(df["seed"]) == {0, 1}


def test_confirm_refuses_a_pairs_subset_before_training(tmp_path):
    from bench.config import ConfigError

    cfg = RunConfig(
        workers=1,
        prediction="transfer",
        profile="confirm",
        methods=["pca"],
        seeds=[100],
        epochs=1,
        out=str(tmp_path / "r"),
        cache=str(tmp_path / "c"),
        prediction_overrides={"pairs": ("digits_lo_hi",)},
    )
    with pytest.raises(ConfigError, match="pairs: confirm needs every primary pair.*missing"):
        execute(cfg)
    assert not (tmp_path / "r").exists() and not (tmp_path / "c").exists()  # nothing trained or written
