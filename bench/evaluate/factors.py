"""Factor-recovery and nameability metrics (docs/protocol.md §8 P4): pure functions of arrays.

Codes are ``(N, K)`` arrays (N rows, K units), factors ``(N, F)``; every metric that fits
anything (a matching, a tree ensemble, bin edges, class means, a tail, a feature choice) fits it
on train and scores on test. :func:`clip_to_train` is applied first by the protocol so that one
outlier row changes no metric. Nothing here trains an encoder.

- :func:`mcc`: mean correlation coefficient after one-to-one matching (Hyvarinen & Morioka 2016;
  Khemakhem et al. 2020).
- :func:`importance_matrix`, :func:`dci`: DCI (Eastwood & Williams 2018).
- :func:`mutual_info_matrix`, :func:`mig_per_factor`: MIG (Chen, Li, Grosse & Duvenaud 2018).
- :func:`sap_per_factor`: SAP (Kumar, Sattigeri & Balakrishnan 2018).
- :func:`modularity`: modularity (Ridgeway & Mozer 2018).
- :func:`purity`: label purity of each unit's top test images (ties at random), minus its permuted-label
  value; the units it cannot name (``unnameable``).
- :func:`sparse_probe`: k-sparse probing (Gurnee et al. 2023), features chosen on train.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata

DEAD_TOL = 1e-6  # a unit whose train std is below this is dead (constant)
TREE_DEPTH = 8  # fixed depth of the DCI tree ensemble
TREE_COUNT = 20
TREE_TRAIN = 5000  # train rows subsampled for the trees
# rotational symmetry order of each dSprites shape (bench.data.sprites.SHAPES order): the square is
# unchanged by a quarter turn, the ellipse by a half turn, the heart only by a full turn
SHAPE_SYMMETRY = (4, 2, 1)


def clip_to_train(f_train: np.ndarray, *fs: np.ndarray, q: float = 0.001) -> list[np.ndarray]:
    """Clip every code to its train range [q, 1 - q] quantiles, per unit.

    One outlier row (1e6 in one unit) otherwise dominates Pearson correlations and equal-width
    bins; clipped, it is one row at the train extreme. Shapes: (N_train, K), (N_i, K) -> the same.
    """
    lo, hi = np.quantile(f_train, [q, 1 - q], axis=0)
    return [np.clip(f, lo, hi) for f in (f_train, *fs)]


def reduce_orientation(factors: np.ndarray, n_orient: int = 16, shape_col: int = 0, orient_col: int = 2) -> np.ndarray:
    """dSprites orientation index modulo each shape's rotational symmetry.

    ``o' = o mod (n_orient / SHAPE_SYMMETRY[shape])``: a square at o and o + 4 (a quarter turn of
    16 steps) draws the same pixels, so its orientation is only defined modulo 4; the ellipse's
    modulo 8; the heart's is kept. (N, F) -> (N, F), other columns unchanged.
    """
    out = np.array(factors, copy=True)
    period = n_orient // np.asarray(SHAPE_SYMMETRY)[out[:, shape_col].astype(int)]
    out[:, orient_col] = np.mod(out[:, orient_col], period)
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(K, F) Pearson correlations between the columns of a (N, K) and b (N, F); 0 for a constant column."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    na, nb = np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=0)
    c = (a.T @ b) / np.maximum(np.outer(na, nb), 1e-300)
    c[na < DEAD_TOL * np.sqrt(len(a))] = 0.0
    return c


def mcc(
    f_train: np.ndarray, s_train: np.ndarray, f_test: np.ndarray, s_test: np.ndarray, kind: str = "pearson"
) -> tuple[float, np.ndarray]:
    """Mean correlation coefficient after one-to-one matching, matching learnt on train.

    ``C_ij = |corr(f_i, s_j)|`` on train; the assignment ``pi`` maximising ``sum_j C_{pi(j) j}``
    (``scipy.optimize.linear_sum_assignment``, units matched to at most one source) is kept, and
    ``MCC = 1/F sum_j |corr_test(f_{pi(j)}, s_j)|``. ``kind="spearman"`` correlates ranks.
    (Hyvarinen & Morioka 2016, "Unsupervised feature extraction by time-contrastive learning";
    Khemakhem et al. 2020, iVAE.) A ReLU of a Laplace(0, 1) source correlates
    ``1/sqrt(1.5) = 0.816`` with it: the ceiling of MCC on activations of a ReLU code.

    Args:
        f_train, f_test: (N, K) codes (K >= F for a full matching).
        s_train, s_test: (N, F) true sources.
        kind: "pearson" or "spearman".

    Returns:
        (MCC on test, the (K, F) test |corr| matrix).
    """
    if kind not in ("pearson", "spearman"):
        raise ValueError(f"kind: 'pearson' or 'spearman', got {kind!r}")
    if kind == "spearman":
        f_train, s_train, f_test, s_test = (rankdata(a, axis=0) for a in (f_train, s_train, f_test, s_test))
    c_train = np.abs(_corr(f_train, s_train))
    rows, cols = linear_sum_assignment(-c_train)
    c_test = np.abs(_corr(f_test, s_test))
    return float(c_test[rows, cols].sum() / s_test.shape[1]), c_test


def importance_matrix(
    f_train: np.ndarray,
    v_train: np.ndarray,
    f_test: np.ndarray,
    v_test: np.ndarray,
    model: str = "trees",
    seed: int = 0,
    max_train: int = TREE_TRAIN,
    n_estimators: int = TREE_COUNT,
    max_depth: int = TREE_DEPTH,
) -> tuple[np.ndarray, np.ndarray]:
    """DCI importance matrix R (K, F) and per-factor informativeness (test accuracy) (F,).

    Per discrete factor j, a classifier predicts v_j from all K units, fit on at most ``max_train``
    train rows: ``model="trees"``: extra-trees (Geurts et al. 2006), ``n_estimators`` trees of
    depth ``max_depth``, every unit considered at every split (a unit with no information then
    never wins a split, so noise units get no importance); ``"boosting"``: gradient boosting
    (depth 3, the choice of Eastwood & Williams 2018 and disentanglement_lib), slower, used as the
    reference in the tests. ``R_ij`` = the impurity importance of unit i (they sum to 1 per
    factor, 0 when nothing was split). Informativeness I_j = test accuracy of that classifier.
    """
    from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier

    rng = np.random.default_rng(seed)
    sub = rng.permutation(len(f_train))[:max_train]
    r = np.zeros((f_train.shape[1], v_train.shape[1]))
    acc = np.zeros(v_train.shape[1])
    for j in range(v_train.shape[1]):
        if model == "trees":
            clf = ExtraTreesClassifier(
                n_estimators=n_estimators, max_depth=max_depth, max_features=None, random_state=seed, n_jobs=1
            )
        elif model == "boosting":
            clf = GradientBoostingClassifier(n_estimators=n_estimators, max_depth=3, random_state=seed)
        else:
            raise ValueError(f"model: 'trees' or 'boosting', got {model!r}")
        clf.fit(f_train[sub], v_train[sub, j].astype(int))
        r[:, j] = clf.feature_importances_
        acc[j] = float((clf.predict(f_test) == v_test[:, j].astype(int)).mean())
    return r, acc


def _entropy(p: np.ndarray, base: int, axis: int) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.nansum(np.where(p > 0, p * np.log(p), 0.0), axis=axis) / np.log(base)


def dci(r: np.ndarray) -> tuple[float, float]:
    """DCI disentanglement and completeness of an importance matrix R (K units, F factors).

    ``P_ij = R_ij / sum_j R_ij``; ``D_i = 1 - H_F(P_i.)`` (entropy in base F);
    ``D = sum_i rho_i D_i`` with ``rho_i = sum_j R_ij / sum_ij R_ij`` (units without importance
    weigh nothing). ``C_j = 1 - H_K(R_.j / sum_i R_ij)``; ``C = sum_j (sum_i R_ij / sum R) C_j``.
    (Eastwood & Williams 2018, "A framework for the quantitative evaluation of disentangled
    representations"; weights as in disentanglement_lib.) Returns (D, C) in [0, 1].
    """
    k, f = r.shape
    total = r.sum()
    if total <= 0 or f < 2:
        return float("nan"), float("nan")
    rows = r.sum(1, keepdims=True)
    d_i = 1.0 - _entropy(r / np.where(rows > 0, rows, 1.0), f, axis=1)
    disent = float(np.sum(rows[:, 0] / total * d_i))
    cols = r.sum(0, keepdims=True)
    c_j = 1.0 - _entropy(r / np.where(cols > 0, cols, 1.0), max(k, 2), axis=0)
    return disent, float(np.sum(cols[0] / total * c_j))


def discretize(f_train: np.ndarray, f: np.ndarray, bins: int = 20) -> np.ndarray:
    """Equal-frequency bins from train quantiles: (N, K) -> (N, K) int bin indices in [0, bins).

    Edges are the train ``b/bins`` quantiles, b = 1..bins-1; tied edges (a ReLU unit's zeros)
    merge bins, so a unit that is 0 on 70% of train gets one bin for its zeros."""
    edges = np.quantile(f_train, np.linspace(0, 1, bins + 1)[1:-1], axis=0)  # (bins-1, K)
    return np.stack([np.searchsorted(edges[:, i], f[:, i], side="right") for i in range(f.shape[1])], axis=1)


def mutual_info_matrix(codes: np.ndarray, factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plug-in mutual information (nats) between discrete codes and discrete factors.

    ``I(c_i; v_j) = sum_{a,b} p(a, b) log(p(a, b) / (p(a) p(b)))`` from joint counts.
    Args: codes (N, K) ints >= 0, factors (N, F) ints >= 0. Returns ((K, F) MI, (F,) entropies H(v_j)).
    """
    n, k = codes.shape
    nb = int(codes.max()) + 1
    mi = np.zeros((k, factors.shape[1]))
    h = np.zeros(factors.shape[1])
    for j in range(factors.shape[1]):
        v = factors[:, j].astype(np.int64)
        nv = int(v.max()) + 1
        flat = (np.arange(k) * nb * nv)[None, :] + codes * nv + v[:, None]
        p = np.bincount(flat.ravel(), minlength=k * nb * nv).reshape(k, nb, nv) / n
        pa, pb = p.sum(2, keepdims=True), p.sum(1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            mi[:, j] = np.where(p > 0, p * np.log(p / (pa * pb)), 0.0).sum((1, 2))
        pv = pb[0, 0]
        h[j] = -np.sum(pv[pv > 0] * np.log(pv[pv > 0]))
    return np.maximum(mi, 0.0), h


def mig_per_factor(mi: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Mutual information gap per factor, ``(I_(1)j - I_(2)j) / H(v_j)``, I_(1) >= I_(2) the two
    largest ``I(c_i; v_j)`` over units; MIG is its mean over factors (Chen et al. 2018,
    "Isolating sources of disentanglement in VAEs"). Duplicated live units make the gap 0.
    Args: mi (K, F), h (F,). Returns (F,)."""
    top = -np.sort(-mi, axis=0)
    second = top[1] if len(top) > 1 else 0.0
    return (top[0] - second) / np.maximum(h, 1e-12)


def modularity(mi: np.ndarray) -> float:
    """Modularity (Ridgeway & Mozer 2018, "Learning deep disentangled embeddings with the
    F-statistic loss"): per unit, ``theta_i = max_j m_ij`` and
    ``delta_i = sum_{j != argmax} m_ij^2 / (theta_i^2 (F - 1))``; modularity = mean over units of
    ``1 - delta_i``, 0 for a unit with no information (as disentanglement_lib). Args: mi (K, F)."""
    k, f = mi.shape
    theta = mi.max(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = ((mi**2).sum(1) - theta**2) / (theta**2 * (f - 1))
    return float(np.mean(np.where(theta > 0, 1.0 - delta, 0.0)))


def sap_per_factor(
    f_train: np.ndarray, v_train: np.ndarray, f_test: np.ndarray, v_test: np.ndarray, chunk: int = 128
) -> np.ndarray:
    """Separated attribute predictability (Kumar et al. 2018, "Variational inference of
    disentangled latent concepts from unlabeled observations").

    Score ``S_ij`` = balanced test accuracy of predicting discrete factor j from unit i alone
    with a nearest-class-mean rule on that unit (class means fit on train; a vectorised
    one-dimensional classifier in place of disentanglement_lib's per-unit LinearSVC);
    per factor the gap ``S_(1)j - S_(2)j`` between the two best units; SAP is its mean.
    Args: codes (N, K), factors (N, F) ints. Returns (F,).
    """
    k = f_train.shape[1]
    s = np.zeros((k, v_train.shape[1]))
    for j in range(v_train.shape[1]):
        vt, ve = v_train[:, j].astype(int), v_test[:, j].astype(int)
        classes = np.unique(vt)
        onehot = (vt[:, None] == classes[None, :]).astype(float)
        mu = (f_train.T @ onehot) / onehot.sum(0)  # (K, C)
        test_oh = ve[:, None] == classes[None, :]
        for a in range(0, k, chunk):
            pred = np.abs(f_test[:, a : a + chunk, None] - mu[None, a : a + chunk]).argmin(2)  # (N, k')
            hit = (classes[pred][:, :, None] == classes[None, None, :]) & test_oh[:, None, :]
            s[a : a + chunk, j] = np.mean(hit.sum(0) / np.maximum(test_oh.sum(0), 1), axis=1)
    top = -np.sort(-s, axis=0)
    return top[0] - (top[1] if k > 1 else 0.0)


@dataclass
class Purity:
    """Per-unit results of :func:`purity` (arrays of length K; ``top`` is (m, K) test indices)."""

    purity: np.ndarray
    permuted: np.ndarray
    majority: np.ndarray
    tail: np.ndarray
    dead: np.ndarray
    top: np.ndarray
    unnameable: np.ndarray  # dead, or fewer than m test rows strictly above the unit's lowest test score

    @property
    def mean(self) -> float:
        return float(self.purity.mean())

    @property
    def excess(self) -> float:
        return float((self.purity - self.permuted).mean())


def tie_keys(seed: int, dataset: str, n_rows: int, n_units: int, split: str) -> np.ndarray:
    """(n_rows, n_units) random tie-break keys drawn from (seed, dataset, split) only, never from the
    method: every method's tied rows are ordered by the same keys. Drawn unit by unit, so unit i's
    keys do not depend on how many units the code has."""
    ss = np.random.SeedSequence([int(seed), zlib.crc32(dataset.encode()), zlib.crc32(split.encode())])
    return np.random.default_rng(ss).random((n_units, n_rows)).T


def _top(scores: np.ndarray, m: int, keys: np.ndarray) -> np.ndarray:
    """(m, K) row indices of each column's m largest scores, largest first; tied scores are
    ordered by ``keys`` (N, K), so a tie is broken at random, never by row order (test rows come
    class-sorted: a stable sort would hand the tied rows of a unit one class)."""
    return np.lexsort((keys, -scores), axis=0)[:m]


def _majority(labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """labels (..., m, K) -> (fraction of the majority label, majority label), each (..., K)."""
    counts = (labels[..., None] == np.arange(n_classes)).sum(-3)
    return counts.max(-1) / labels.shape[-2], counts.argmax(-1)


def purity(
    f_train: np.ndarray,
    y_train: np.ndarray,
    f_test: np.ndarray,
    y_test: np.ndarray,
    n_classes: int,
    m: int = 20,
    n_perm: int = 20,
    seed: int = 0,
    dataset: str = "",
) -> Purity:
    """Label purity of each unit's top-m test images, minus its value under permuted labels.

    Unit i's score is ``t_i f_i``; the tail ``t_i`` is +1 for a code that is never negative on
    train, else the sign whose top ``m_tr = round(m N_train / N_test)`` train images (the same
    quantile) have the purer labels (chosen on train). Purity_i = share of the majority label
    among the m test images with the largest score; permuted_i = the same with the test labels
    permuted (mean of ``n_perm`` draws; about the chance purity of m random images). Tied scores
    are ordered by random keys drawn from (``seed``, ``dataset``) (:func:`tie_keys`), never the
    method. A dead unit (train std < 1e-6) is not nameable: purity 0 and permuted 0.
    ``unnameable``: dead, or fewer than m test rows strictly above the unit's lowest test score
    (its top m then holds rows it does not tell apart from its resting value: those are chosen
    by the tie-break, and its purity measures the tie-break).

    Args: f_train (N, K), y_train (N,), f_test (M, K), y_test (M,) ints in [0, n_classes).
    """
    m = min(m, len(f_test))
    m_tr = min(max(m, round(m * len(f_train) / len(f_test))), len(f_train))
    k = f_train.shape[1]
    key_tr = tie_keys(seed, dataset, len(f_train), k, "train")
    key_te = tie_keys(seed, dataset, len(f_test), k, "test")
    dead = f_train.std(0) < DEAD_TOL
    signed = f_train.min(0) < -DEAD_TOL
    p_pos, _ = _majority(y_train[_top(f_train, m_tr, key_tr)], n_classes)
    p_neg, _ = _majority(y_train[_top(-f_train, m_tr, key_tr)], n_classes)
    tail = np.where(signed & (p_neg > p_pos), -1.0, 1.0)
    score = f_test * tail
    top = _top(score, m, key_te)
    unnameable = dead | ((score > score.min(0)).sum(0) < m)
    pur, maj = _majority(y_test[top], n_classes)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(dataset.encode()), 1]))
    perms = np.stack([rng.permutation(y_test) for _ in range(n_perm)])  # (P, M)
    perm, _ = _majority(perms[:, top], n_classes)
    return Purity(np.where(dead, 0.0, pur), np.where(dead, 0.0, perm.mean(0)), maj, tail, dead, top, unnameable)


def auroc(f: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, K) one-vs-rest AUROC of every unit for every class, from ranks (ties averaged):
    ``AUC = (sum of the positives' ranks - n_+(n_+ + 1)/2) / (n_+ n_-)`` (Mann-Whitney)."""
    ranks = rankdata(f, axis=0)
    onehot = (y[:, None] == np.arange(n_classes)).astype(float)
    npos = onehot.sum(0)[:, None]
    return (onehot.T @ ranks - npos * (npos + 1) / 2) / np.maximum(npos * (len(y) - npos), 1.0)


def sparse_probe(
    f_train: np.ndarray,
    y_train: np.ndarray,
    f_test: np.ndarray,
    y_test: np.ndarray,
    n_classes: int,
    ks: tuple[int, ...] = (1, 5),
) -> dict[int, float]:
    """k-sparse probing (Gurnee et al. 2023, "Finding neurons in a haystack"), chosen on train.

    Per class c (one vs rest): units ranked by train ``|AUROC - 0.5|``; k = 1: the test AUROC of
    the best unit read with its train sign; k > 1: a logistic regression (L2, C = 1) on the top k
    standardised units, fit on train, its test AUROC. Returns k -> mean over classes.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    a_tr, a_te = auroc(f_train, y_train, n_classes), auroc(f_test, y_test, n_classes)
    order = np.argsort(-np.abs(a_tr - 0.5), axis=1, kind="stable")
    mu, sd = f_train.mean(0), np.maximum(f_train.std(0), 1e-12)
    zt, ze = (f_train - mu) / sd, (f_test - mu) / sd
    out = {}
    for k in ks:
        scores = []
        for c in range(n_classes):
            if k == 1:
                j = order[c, 0]
                scores.append(a_te[c, j] if a_tr[c, j] >= 0.5 else 1.0 - a_te[c, j])
                continue
            cols = order[c, :k]
            clf = LogisticRegression(C=1.0, max_iter=500).fit(zt[:, cols], y_train == c)
            scores.append(roc_auc_score(y_test == c, clf.decision_function(ze[:, cols])))
        out[k] = float(np.mean(scores))
    return out
