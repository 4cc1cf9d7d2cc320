"""Planted controls of the v2 statistics (docs/protocol.md, planted controls): the exact sign-flip p,
Westfall-Young, families, the headline by the intersection-union rule, and the two-primaries rule.

Each plant has a known answer: a constant difference at n = 10 is 2/1024 under the exact test; one
row's Westfall-Young p is its sign-flip p; a PA family beaten by d_z = 3 everywhere, one with a tied
member, and one with a member better than the subject give supported, inconclusive and contradicted
headlines; ablations and references never decide a headline.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.evaluate import families
from bench.evaluate.resampling import sign_flip_p, westfall_young
from bench.evaluate.stats import compare
from bench.protocol import SUBJECT, Verdict, View

SEEDS = list(range(100, 110))


def test_constant_difference_at_ten_seeds_is_two_in_1024():
    d = [0.03] * 10
    assert sign_flip_p(d) == 2 / 1024
    assert westfall_young([dict(zip(SEEDS, d, strict=True))])[0] == 2 / 1024
    c = compare({s: 0.5 for s in SEEDS}, {s: 0.47 for s in SEEDS}, "higher")
    assert c.p_perm == pytest.approx(2 / 1024) and c.verdict == "supported"


def test_sign_flip_matches_brute_force_and_wy_equals_it_for_one_row():
    rng = np.random.default_rng(3)
    for n in (6, 8, 10):
        d = rng.normal(0.4, 1.0, n)
        signs = np.array(np.meshgrid(*[[1, -1]] * n)).reshape(n, -1).T
        brute = np.mean(np.abs((signs * d).mean(1)) >= abs(d.mean()) - 1e-12)
        assert sign_flip_p(d) == pytest.approx(brute)
        assert westfall_young([dict(enumerate(d))])[0] == pytest.approx(sign_flip_p(d))


def test_no_row_can_reach_05_below_six_seeds():
    for n in range(2, 6):
        assert sign_flip_p(np.linspace(1, 2, n)) >= 2 / 2**n > 0.05
    assert (
        compare(dict(enumerate([1.0, 1.1, 0.9, 1.2, 1.05])), dict.fromkeys(range(5), 0.0), "higher").verdict
        == "inconclusive"
    )


def test_westfall_young_is_no_larger_than_bonferroni_and_steps_down():
    rng = np.random.default_rng(0)
    rows = [dict(zip(SEEDS, rng.normal(mu, 1.0, 10), strict=True)) for mu in (3.0, 1.0, 0.0, 0.0, -0.2)]
    wy = westfall_young(rows)
    raw = [sign_flip_p(list(r.values())) for r in rows]
    assert np.all(wy >= np.array(raw) - 1e-12)  # adjusted never below its own p
    assert np.all(wy <= np.minimum(1, 5 * np.array(raw)) + 1e-12)  # max-T is never worse than Bonferroni
    assert wy[0] < 0.05 and wy[2] > 0.2


class _Planted(View):
    name = "planted"
    verdicts = (Verdict("m", "higher", {}, "planted primary"),)


class _TwoPrimaries(View):
    name = "planted2"
    verdicts = (
        Verdict("m", "higher", {"k": "a"}, "first", role="primary"),
        Verdict("m", "higher", {"k": "b"}, "second", role="primary", na={"oracle": "saw the labels"}),
    )


def _tidy(effects: dict[str, float], k: str | None = None, seed: int = 0) -> pd.DataFrame:
    """The subject at 0.8 + noise; member B at subject - effect * sd(d) per seed (d_z ~ effect)."""
    rng = np.random.default_rng(seed)
    subj = 0.8 + 0.01 * rng.standard_normal(10)
    rows = [(SUBJECT, s, v) for s, v in zip(SEEDS, subj, strict=True)]
    for b, eff in effects.items():
        noise = rng.standard_normal(10)
        noise = (noise - noise.mean()) / noise.std(ddof=1)  # exactly d_z = eff
        rows += [(b, s, v - 0.01 * (eff + n)) for s, v, n in zip(SEEDS, subj, noise, strict=True)]
    df = pd.DataFrame(rows, columns=["method", "seed", "value"]).assign(metric="m", dataset="d")
    if k is not None:
        df["k"] = k
    return df


PA = {"pca": 3.0, "ae": 3.0, "simclr": 3.0, "supervised": 3.0, "gmm": 3.0}


@pytest.mark.parametrize(
    "plant, word",
    [
        ({}, "supported"),
        ({"ae": 0.0}, "inconclusive"),  # one member tied
        ({"ae": -3.0}, "contradicted"),  # one member better than the subject by d_z = 3
    ],
)
def test_planted_families_give_the_three_headlines(plant, word):
    tables = _Planted().verdict_tables(_tidy({**PA, **plant}))
    assert tables[0].headline[0] == word
    frame = tables[0].frame.set_index("baseline")
    assert set(frame["family"]) == {"PA"}
    if word == "contradicted":
        assert frame.at["ae", "verdict"] == "contradicted" and "ae" in tables[0].headline[1]
    if word == "inconclusive":
        assert "ae" in tables[0].headline[1]


def test_ablations_and_references_never_decide_the_headline():
    df = _tidy({**PA, "infomax_noem": -3.0, "lse_only": 0.0, "raw": -3.0, "random": 3.0})
    table = _Planted().verdict_tables(df)[0]
    frame = table.frame.set_index("baseline")
    assert table.headline[0] == "supported"
    assert frame.at["infomax_noem", "family"] == "AB" and frame.at["infomax_noem", "verdict"] == "contradicted"
    assert frame.at["raw", "family"] == "REF" and frame.at["raw", "verdict"] == "reference"
    assert math.isnan(frame.at["raw", "p_t"]) and np.isfinite(frame.at["raw", "mean_diff"])
    assert list(frame["family"]) == ["PA"] * 5 + ["AB"] * 2 + ["REF"] * 2  # PA first
    # Holm and WY run within a family: the PA rows' corrections count 5 rows, not 9
    pa = table.frame[table.frame["family"] == "PA"]
    assert (pa["p_holm"] <= 5 * pa["p_t"] + 1e-12).all()


def test_missing_member_blocks_supported_but_n_a_by_design_does_not():
    df = _tidy(PA)
    failed = pd.DataFrame(
        [
            {"method": "vae", "seed": s, "metric": "job_failed", "value": 1.0, "dataset": "d", "note": "diverged"}
            for s in SEEDS
        ]
    )
    table = _Planted().verdict_tables(pd.concat([df, failed], ignore_index=True))[0]
    assert table.headline[0] == "inconclusive" and "vae" in table.headline[1]
    skipped = failed.assign(metric="job_skipped", note="needs image inputs")
    table = _Planted().verdict_tables(pd.concat([df, skipped], ignore_index=True))[0]
    assert table.headline[0] == "supported"
    assert table.frame.set_index("baseline").at["vae", "verdict"] == families.NA


def test_two_primaries_rule_and_joint_corrections():
    first = _tidy({**PA, "oracle": 3.0}, k="a", seed=1)
    second = _tidy({**PA, "oracle": -3.0}, k="b", seed=2)  # the oracle's n/a cell would contradict
    tables = _TwoPrimaries().verdict_tables(pd.concat([first, second], ignore_index=True))
    assert [t.role for t in tables] == ["overall", "primary", "primary"]
    overall = tables[0].frame.set_index("baseline")
    assert tables[0].headline[0] == "supported"
    assert overall.at["oracle", "verdict"] == "supported"  # supported on the one primary that applies
    assert overall.at["oracle", "second: verdict"] == "n/a: saw the labels"
    # Holm over both primaries' PA rows: 6 + 5 = 11 tests (the n/a cell is not counted)
    both = pd.concat([t.frame for t in tables[1:]])
    pa = both[(both["family"] == "PA") & (both["na"] == "")]
    assert len(pa) == 11
    np.testing.assert_allclose(
        sorted(pa["p_holm"]),
        sorted(np.minimum(1, np.maximum.accumulate((11 - np.arange(11)) * np.sort(pa["p_t"].to_numpy())))),
    )
    # contradicted on either primary contradicts the member and the headline
    worse = _tidy({**PA, "oracle": 3.0, "ae": -3.0}, k="b", seed=2)
    tables = _TwoPrimaries().verdict_tables(pd.concat([first, worse], ignore_index=True))
    assert tables[0].frame.set_index("baseline").at["ae", "verdict"] == "contradicted"
    assert tables[0].headline[0] == "contradicted"


def test_under_trained_members_annotate_a_supported_headline():
    df = _tidy(PA)
    df["under_trained"] = (df["method"] == "gmm") & (df["seed"] < 106)  # 6 of 10 seeds
    table = _Planted().verdict_tables(df)[0]
    assert table.headline[0] == "supported (under-trained: gmm)"
    assert table.frame.set_index("baseline").at["gmm", "under_trained"] == 6


@pytest.mark.parametrize(
    "plant, flagged, word",
    [
        ({"ae": -3.0}, "ae", "contradicted (under-trained: ae)"),  # the contradicting member is flagged
        ({"ae": -3.0}, "gmm", "contradicted"),  # a flagged member the headline does not rest on
        ({"ae": 0.0}, "ae", "inconclusive (under-trained: ae)"),  # the blocking member is flagged
        ({"ae": 0.0}, "gmm", "inconclusive"),
    ],
)
def test_under_trained_members_a_headline_rests_on_are_named(plant, flagged, word):
    df = _tidy({**PA, **plant})
    df["under_trained"] = (df["method"] == flagged) & (df["seed"] < 105)  # 5 of 10 seeds: the threshold
    assert _Planted().verdict_tables(df)[0].headline[0] == word
    df["under_trained"] = (df["method"] == flagged) & (df["seed"] < 104)  # 4 of 10: below it
    assert _Planted().verdict_tables(df)[0].headline[0] == word.split(" (")[0]


def test_non_inferiority_margin_shifts_d():
    df = _tidy({"fastica": 0.0, **{k: v for k, v in PA.items() if k != "fastica"}})
    plain = _Planted().verdict_tables(df)[0].frame.set_index("baseline")

    class Margin(_Planted):
        verdicts = (Verdict("m", "higher", {}, "with margin", margin={"fastica": 0.05}),)

    shifted = Margin().verdict_tables(df)[0].frame.set_index("baseline")
    assert shifted.at["fastica", "mean_diff"] == pytest.approx(plain.at["fastica", "mean_diff"] + 0.05)
    assert shifted.at["pca", "mean_diff"] == pytest.approx(plain.at["pca", "mean_diff"])


@pytest.mark.slow
def test_every_real_view_applies_its_declared_margins_and_n_a_cells():
    """A view that overrides ``verdict_frame`` must still pass its Verdicts' ``margin`` and ``na`` on
    (P4's fastica margin and P2's oracle cells were once dropped that way)."""
    from bench.catalog import load_all
    from bench.protocol import VIEWS

    load_all()
    checked = 0
    for name in VIEWS.names():
        view = VIEWS.get(name)()
        for v in view.verdicts:
            if not (v.margin or v.na) or name == "efficiency":  # P3's rows hold d itself (tested in its own file)
                continue
            members = sorted({*v.margin, *v.na, "pca"})
            rows = [
                {
                    "method": m,
                    "seed": s,
                    "value": 0.5 - 0.01 * (i + 1) + 0.001 * (s % 3),
                    "metric": v.metric,
                    "dataset": "x",
                    "width": 64,
                    **v.where,
                }
                for i, m in enumerate(members)
                for s in SEEDS
            ]
            rows += [
                {"method": SUBJECT, "seed": s, "value": 0.5, "metric": v.metric, "dataset": "x", "width": 64, **v.where}
                for s in SEEDS
            ]
            frame = view.verdict_frame(pd.DataFrame(rows).assign(note=pd.NA), v).set_index("baseline")
            for i, m in enumerate(members):
                expected = 0.01 * (i + 1) - 0.001 * np.mean([s % 3 for s in SEEDS]) + v.margin.get(m, 0.0)
                assert frame.at[m, "mean_diff"] == pytest.approx(expected), (name, v.metric, m)
                assert frame.at[m, "na"] == v.na.get(m, ""), (name, v.metric, m)
            checked += 1
    assert checked >= 2  # P2's co-primary (oracles) and P4's MCC (fastica's margin, ica's n/a cells)
