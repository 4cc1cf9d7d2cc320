"""Every pair of many codes at once: debiased CKA and unit-matched |corr| per pair (protocol 11.0, 11.3).

:mod:`bench.evaluate.similarity` answers one pair (:func:`~bench.evaluate.similarity.cka`,
:func:`~bench.evaluate.similarity.matched_unit_corr`) or one summary over seeds
(:func:`~bench.evaluate.similarity.similarity_matrix`: the mean over seed pairs). An estimate with an
interval over seeds (a jackknife over seeds, the open question ``convergence``) needs the value of
every single pair of codes, so that any subset of seeds can be summarised again without recomputing
features. Here each code is prepared once (standardised, centred, its self-HSIC computed) and every
requested pair is then one cross product:

* :func:`cka_pairs` - ``{(a, b): CKA(codes[a], codes[b])}`` for the requested pairs of keys; the
  values equal :func:`bench.evaluate.similarity.cka` pair by pair (debiased, standardised units by
  default), so the mean over a method's cross-seed pairs is its ceiling ``CKA_w`` exactly as
  :func:`~bench.evaluate.similarity.cka_within` computes it;
* :func:`matched_pairs` - ``{(a, b): UnitMatch}``, matching fit on ``fit`` inputs and scored on
  ``score`` inputs (:func:`~bench.evaluate.similarity.matched_unit_corr`, pair by pair);
* :func:`cross_seed_pairs` - the pairs of (method, seed) keys a similarity compares: within a
  method, distinct seeds once (s < t); between two methods, every (s, t) with s != t.

Keys are any hashable values (``(method, seed)`` tuples here). Codes are (n, K) arrays or tensors on
the same n inputs in the same order.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from itertools import combinations

from bench.evaluate.similarity import Array, UnitMatch, _cka, _prepare, matched_unit_corr


def cross_seed_pairs(keys: Iterable[tuple[str, int]]) -> list[tuple[tuple[str, int], tuple[str, int]]]:
    """The (method, seed) pairs a cross-seed similarity reads, in a fixed order.

    Within one method: every unordered pair of distinct seeds once (``s < t``; what its ceiling
    ``CKA_w`` averages). Between methods ``A < B`` (by name): every ordered pair ``(A_s, B_t)`` with
    ``s != t`` (what ``CKA(A, B)`` averages; a same-seed pair may share a data order, so it is left out,
    as in :func:`bench.evaluate.similarity.ceiling_normalised`)."""
    ks = sorted(set(keys))
    out = []
    for a, b in combinations(ks, 2):  # sorted: a's method <= b's method; same method -> a's seed < b's
        if a[1] != b[1]:
            out.append((a, b))
    return out


def cka_pairs(
    codes: Mapping[Hashable, Array],
    pairs: Sequence[tuple[Hashable, Hashable]],
    *,
    standardised: bool = True,
    debiased: bool = True,
) -> dict[tuple[Hashable, Hashable], float]:
    """``{(a, b): CKA(codes[a], codes[b])}`` for every pair of ``pairs``, each code prepared once.

    Equal to :func:`bench.evaluate.similarity.cka` on every pair (same estimator, same dead-unit
    rule); nan where a code is constant or non-finite. All codes must hold the same n >= 4 inputs."""
    used = {k for p in pairs for k in p}
    prepared = {k: _prepare(codes[k], standardised) for k in used}
    rows = {c.x.shape[0] for c in prepared.values()}
    if len(rows) > 1:
        raise ValueError(f"every code must hold the same inputs; got row counts {sorted(rows)}")
    if rows and min(rows) < 4:
        raise ValueError(f"need at least 4 rows, got {min(rows)}")
    return {(a, b): _cka(prepared[a], prepared[b], debiased) for a, b in pairs}


def matched_pairs(
    fit: Mapping[Hashable, Array],
    score: Mapping[Hashable, Array],
    pairs: Sequence[tuple[Hashable, Hashable]],
) -> dict[tuple[Hashable, Hashable], UnitMatch]:
    """``{(a, b): matched_unit_corr(fit[a], fit[b], score[a], score[b])}`` for every pair of ``pairs``:
    units matched one to one on the ``fit`` inputs, scored on the ``score`` inputs
    (:func:`bench.evaluate.similarity.matched_unit_corr`; its ``score`` counts a dead unit 0 and its
    ``score_live`` leaves pairs with a dead unit out)."""
    return {(a, b): matched_unit_corr(fit[a], fit[b], score[a], score[b]) for a, b in pairs}
