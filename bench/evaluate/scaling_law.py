"""The descriptive power-law fit and the reading words of "does InfoMax scale?" (protocol 11.1), apart from the
per-seed estimates of :mod:`bench.evaluate.estimates` they build on. Pure functions of numbers; no torch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bench.evaluate.estimates import WORDS, Estimate, _host, _key, estimate, seed_grid  # noqa: F401


def power_law(n, e_inf: float, a: float, c: float) -> np.ndarray:
    """``e(N) = e_inf + a N^-c``: a learning curve's error falling as a power of N towards ``e_inf``
    (Hestness et al. 2017, "Deep learning scaling is predictable, empirically")."""
    return e_inf + a * np.power(_host(n), -c)


@dataclass(frozen=True)
class PowerLawFit:
    """:func:`power_law` fitted per seed without the largest N, and its extrapolation there.

    Attributes:
        e_inf, a, c: Estimates of the parameters over seeds (``a`` in the units of N itself).
        extrapolation_error: Predicted minus observed error at the held-out largest N, per seed.
        abs_extrapolation_error: Its absolute value, per seed.
        held_out: The held-out N (the grid's largest).
        fit_points: The N the fits used.
        params: ``((seed, (e_inf, a, c)), ...)`` per fitted seed.
    """

    e_inf: Estimate
    a: Estimate
    c: Estimate
    extrapolation_error: Estimate
    abs_extrapolation_error: Estimate
    held_out: float
    fit_points: tuple
    params: tuple


def _fit_one(u: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bounded least squares of ``e_inf + a' u^-c`` on ``(u, y)``, ``u = N / N_min``; NaN if it fails."""
    from scipy.optimize import curve_fit

    e0 = 0.5 * float(y.min())
    p0 = (e0, max(float(y[0]) - e0, 1e-6), 0.5)
    try:
        popt, _ = curve_fit(
            lambda uu, e, a, c: e + a * np.power(uu, -c),
            u,
            y,
            p0=p0,
            bounds=([0.0, 0.0, 0.0], [np.inf, np.inf, np.inf]),
            maxfev=20000,
        )
    except (RuntimeError, ValueError):
        return np.full(3, np.nan)
    return popt


def fit_power_law(seed, n, err, level: float = 0.95) -> PowerLawFit:
    """Fit ``e(N) = e_inf + a N^-c`` per seed on every N but the largest, and score each fit by its
    extrapolation error at the largest N (protocol 11.1, descriptive; Hestness et al. 2017).

    Each seed's curve is fitted by bounded least squares (``scipy.optimize.curve_fit``, trust
    region reflective) with ``e_inf >= 0``, ``a >= 0`` (an error that falls with N) and ``c >= 0``,
    on ``N / N_min`` for conditioning (``a`` is converted back: ``a = a' N_min^c``). The largest N
    of the grid is never passed to the fit: it only scores the prediction, ``e_hat(N_max) -
    e(N_max)``. The parameters and errors are summarised by t-intervals over seeds. A seed missing a
    fitting point, or whose fit fails, is NaN in every estimate; one missing only the held-out point
    has parameters but no extrapolation error.

    Raises:
        ValueError: For fewer than four distinct N (three parameters need three points, plus the
            held-out one).
    """
    seeds, xs, E = seed_grid(seed, n, err)
    if xs.size < 4:
        raise ValueError(f"a held-out power-law fit needs >= 4 distinct N, got {xs.tolist()}")
    fit_x, held = xs[:-1], float(xs[-1])
    u = fit_x / fit_x[0]
    P = np.full((len(seeds), 3), np.nan)
    for i in range(len(seeds)):  # a nonlinear fit per seed: at most ~10 iterations of this loop
        y = E[i, :-1]
        if np.all(np.isfinite(y)):
            P[i] = _fit_one(u, y)
    e_inf, a_scaled, c = P.T
    a = a_scaled * np.power(fit_x[0], c)
    pred = e_inf + a_scaled * np.power(held / fit_x[0], -c)
    err_held = pred - E[:, -1]
    return PowerLawFit(
        e_inf=estimate(seeds, e_inf, level),
        a=estimate(seeds, a, level),
        c=estimate(seeds, c, level),
        extrapolation_error=estimate(seeds, err_held, level),
        abs_extrapolation_error=estimate(seeds, np.abs(err_held), level),
        held_out=held,
        fit_points=tuple(float(v) for v in fit_x),
        params=tuple(
            (s, (float(p[0]), float(aa), float(p[2])))
            for s, p, aa in zip(seeds, P, a, strict=True)
            if np.all(np.isfinite(p))
        ),
    )


@dataclass(frozen=True)
class Reading:
    """The reading of one method's scaling (protocol 11.1).

    Attributes:
        method: The method.
        word: One of ``WORDS``: "still scaling" (b_end's interval lies above 0), "stops" (it covers
            0 while every reference's lies above 0), "lands with" (neither, and b_end's mean lies
            inside some other method's interval) or "undetermined".
        lands_with: The other methods whose b_end interval holds this method's mean b_end (filled
            whatever the word; "lands with X" is how the sentence names them).
    """

    method: str
    word: str
    lands_with: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.word == "lands with":
            return f"lands with {', '.join(self.lands_with)}"
        if self.lands_with and self.word != "undetermined":
            return f"{self.word} (lands with {', '.join(self.lands_with)})"
        return self.word


def readings(
    b_end: Mapping[str, Estimate],
    references: Sequence[str] | None = None,
    gain_slope: Mapping[str, Estimate] | None = None,
) -> dict[str, Reading]:
    """The reading word of every method from its ``b_end`` (protocol 11.1, "Reading").

    * "still scaling": ``b_end``'s interval lies above 0 (``ci_low > 0``) and, where
      ``gain_slope`` gives the method's slope of g (gain over ``random`` at the same K) per doubling
      of K, g is not shrinking (that slope's interval is not wholly below 0);
    * "stops": ``b_end``'s interval covers 0 while the interval of every reference (other than the
      method itself; at least one) lies above 0: the method stopped where the others still scale,
      so the task is not simply saturated;
    * "lands with": neither, and ``b_end``'s mean lies inside another method's interval (those
      methods are listed in ``lands_with`` for every word);
    * "undetermined": otherwise (an interval undefined under two seeds, a b_end wholly below 0, or
      a method that stops where a reference stops too and lands with no one).

    Args:
        b_end: Method -> its ``b_end`` :class:`Estimate` (:func:`halvings` with ``doublings=2``).
        references: The methods "stops" is judged against (default: every method). Leave out those
            with no N dependence by construction (``raw``, ``random`` on the N axis), or none ever stops.
        gain_slope: Method -> :class:`Estimate` of g's slope per doubling of K (optional).
    """
    refs = list(b_end) if references is None else list(references)
    missing = [r for r in refs if r not in b_end]
    if missing:
        raise ValueError(f"references without a b_end: {missing}")
    out = {}
    for k, e in b_end.items():
        lands = tuple(o for o, oe in b_end.items() if o != k and oe.covers(e.mean))
        others = [r for r in refs if r != k]
        shrinking = gain_slope is not None and k in gain_slope and gain_slope[k].ci_high < 0
        if e.ci_low > 0 and not shrinking:
            word = "still scaling"
        elif e.covers(0.0) and others and all(b_end[r].ci_low > 0 for r in others):
            word = "stops"
        elif lands:
            word = "lands with"
        else:
            word = "undetermined"
        out[k] = Reading(str(k), word, lands)
    return out
