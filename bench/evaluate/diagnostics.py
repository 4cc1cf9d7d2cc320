"""Per-job diagnostics every open-question job records (protocol §11.0), and the EM gradient share (§11.3).

* :func:`activation_scale` - ``max |a|`` over the features (the trainer's ``act_scale``: the
  entropy term ``-sum_j log Var(a_j)`` is unbounded below, so a run can buy entropy with scale);
* :func:`dead_fraction` - share of constant features (:func:`bench.evaluate.metrics.dead_fraction`);
* :func:`seconds_per_sample` - training seconds per training sample seen;
* :func:`term_gradients` / :func:`gradient_norms` - ``||d term / d theta||`` of each named loss term
  over the model's trainable parameters, one ``torch.autograd.grad`` per term on one shared graph;
* :func:`r_em` - the EM term's share, ``r_EM = ||grad LSE|| / ||grad (H + TC)||``: the norm of the
  *summed* gradient of the InfoMax terms, not the sum of their norms.

Dilution (§11.3): LSE's gradient per input is a probability vector (the responsibilities), while
H grows with K and TC with K^2, so at large K the EM term can be outweighed; r_EM is reported
beside Delta_EM so that Delta_EM -> 0 with r_EM -> 0 reads "EM was outweighed".

The terms are those the trainer minimises, i.e. weighted (``bench.train.subject``'s ``terms``
returns ``lambda_lse LSE``, ``lambda_h H``, ``lambda_tc TC`` under the names ``lse``, ``entropy``,
``tc``, and leaves out a term whose weight is 0). LSE is summed over the batch while H and TC are
batch statistics, so r_EM depends on the batch size: pass a minibatch of the job's training batch size.
Nothing here changes the model: gradients are returned, never accumulated into ``.grad``, and the
model's train/eval mode is the caller's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from bench.evaluate.metrics import dead_fraction

__all__ = [
    "EM_TERMS",
    "INFOMAX_TERMS",
    "activation_scale",
    "dead_fraction",
    "gradient_norms",
    "job_diagnostics",
    "r_em",
    "seconds_per_sample",
    "term_gradients",
]

EM_TERMS = ("lse",)
INFOMAX_TERMS = ("entropy", "tc")

TermFn = Callable[[torch.Tensor], torch.Tensor]
Terms = Mapping[str, TermFn] | Callable[[torch.Tensor], Mapping[str, torch.Tensor]]


def activation_scale(a: torch.Tensor) -> float:
    """``max |a|`` over (N, K) features; nan when an entry is not finite."""
    if not bool(torch.isfinite(a).all()):
        return math.nan
    return float(a.detach().abs().max())


def seconds_per_sample(seconds: float, samples: int) -> float:
    """Wall seconds per training sample seen (``samples`` = epochs x N, or steps x batch size)."""
    if samples <= 0:
        raise ValueError(f"samples: need > 0, got {samples}")
    return float(seconds) / samples


def _evaluate_terms(batch: torch.Tensor, terms: Terms) -> dict[str, torch.Tensor]:
    values = {k: f(batch) for k, f in terms.items()} if isinstance(terms, Mapping) else dict(terms(batch))
    bad = [k for k, v in values.items() if v.numel() != 1]
    if bad:
        raise ValueError(f"terms: need scalar loss terms, got shapes {[tuple(values[k].shape) for k in bad]} for {bad}")
    return values


def term_gradients(
    model: nn.Module,
    batch: torch.Tensor,
    terms: Terms,
    params: Iterable[torch.Tensor] | None = None,
) -> dict[str, list[torch.Tensor]]:
    """Each named loss term's gradient with respect to the model's trainable parameters.

    The terms are evaluated once (one forward graph); each term's gradient is then one
    ``torch.autograd.grad(term, params, retain_graph=True)``, so the result equals a separate
    backward pass per term on a fresh graph. A parameter a term does not reach gets a zero gradient.

    Args:
        model: the module whose parameters are differentiated (``params`` defaults to those with
            ``requires_grad``).
        batch: one minibatch of inputs, passed to the terms.
        terms: ``{name: f(batch) -> scalar}``, or ``f(batch) -> {name: scalar}`` (e.g. a method's
            ``loss_terms``).
    Returns:
        ``{name: [grad of each parameter]}`` in the order of ``params``.
    """
    ps = [p for p in (model.parameters() if params is None else params) if p.requires_grad]
    with torch.enable_grad():
        values = _evaluate_terms(batch, terms)
        out = {}
        for name, v in values.items():
            grads = torch.autograd.grad(v.reshape(()), ps, retain_graph=True, allow_unused=True)
            out[name] = [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(ps, grads, strict=True)]
    return out


def _norm(grads: Sequence[torch.Tensor]) -> float:
    """Euclidean norm of the concatenated gradients, in float64."""
    return math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads))


def _sum(grads: Mapping[str, Sequence[torch.Tensor]], names: Sequence[str]) -> list[torch.Tensor] | None:
    present = [grads[n] for n in names if n in grads]
    if not present:
        return None
    return [torch.stack(gs).sum(0) for gs in zip(*present, strict=True)]


def r_em(
    grads: Mapping[str, Sequence[torch.Tensor]],
    em: Sequence[str] = EM_TERMS,
    infomax: Sequence[str] = INFOMAX_TERMS,
) -> float:
    """``r_EM = ||grad sum(em terms)|| / ||grad sum(infomax terms)||`` (protocol §11.3).

    Terms absent from ``grads`` (weight 0) count as 0. nan when there is no EM term or no InfoMax
    term, or both gradients are 0; inf when only the InfoMax gradient is 0.
    """
    num, den = _sum(grads, em), _sum(grads, infomax)
    if num is None or den is None:
        return math.nan
    n, d = _norm(num), _norm(den)
    if d == 0.0:
        return math.nan if n == 0.0 else math.inf
    return n / d


def gradient_norms(
    model: nn.Module,
    batch: torch.Tensor,
    terms: Terms,
    params: Iterable[torch.Tensor] | None = None,
    em: Sequence[str] = EM_TERMS,
    infomax: Sequence[str] = INFOMAX_TERMS,
) -> dict[str, float]:
    """``{"grad_norm_<term>": ||grad term||}`` for every term, plus ``"r_em"`` (:func:`r_em`)."""
    grads = term_gradients(model, batch, terms, params)
    out = {f"grad_norm_{k}": _norm(g) for k, g in grads.items()}
    out["r_em"] = r_em(grads, em, infomax)
    return out


def job_diagnostics(
    features: torch.Tensor,
    seconds_per_sample: float,
    model: nn.Module | None = None,
    batch: torch.Tensor | None = None,
    terms: Terms | None = None,
) -> dict[str, float]:
    """The §11.0 record of one job: activation scale and dead fraction of its (N, K) train features,
    its seconds per sample, and (for a gradient method: ``model``, ``batch`` and ``terms`` given)
    each loss term's gradient norm and r_EM."""
    out = {
        "act_scale": activation_scale(features),
        "dead_fraction": dead_fraction(features),
        "seconds_per_sample": float(seconds_per_sample),
    }
    if terms is not None:
        if model is None or batch is None:
            raise ValueError("terms: need the model and a batch to differentiate them")
        out.update(gradient_norms(model, batch, terms))
    return out
