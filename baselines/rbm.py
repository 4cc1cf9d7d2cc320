"""Bernoulli-Bernoulli restricted Boltzmann machine trained by contrastive divergence.

Hinton, G. E. (2002). Training products of experts by minimizing contrastive divergence;
Hinton, G. E., Osindero, S. & Teh, Y.-W. (2006). A fast learning algorithm for deep belief
nets; Hinton, G. E. & Salakhutdinov, R. (2006). Reducing the dimensionality of data with
neural networks; Hinton, G. E. (2010). A practical guide to training restricted Boltzmann machines
(UTML TR 2010-003); persistent chains: Tieleman, T. (2008). Training restricted Boltzmann
machines using approximations to the likelihood gradient (PCD).

Energy ``E(v, h) = -b.v - c.h - h.W v`` with ``W`` (K, D), visible bias ``b`` (D,), hidden bias
``c`` (K,). Summing out the hiddens gives the free energy

    F(v) = -b.v - sum_j softplus(c_j + W_j.v),       p(v) = exp(-F(v)) / Z,

so ``-d log p(v)/d theta = dF(v)/d theta - E_model[dF/d theta]``. CD-k replaces the model
expectation by ``v_k``, the end of k steps of block Gibbs sampling (``h ~ p(h|v)``, then
``v ~ p(v|h)``, both with ``torch.bernoulli`` on the global RNG the job seeds) started at the
data (or, with ``persistent=True``, at the previous minibatch's chain ends: PCD). The shared
trainer minimises the surrogate ``mean F(v_data) - mean F(sg(v_k))`` whose gradient is exactly
the CD-k estimate of the negative log-likelihood gradient, ``-E[h|v] v^T`` at both ends (the
hiddens summed out analytically rather than sampled). Grey levels in [0, 1] are used as the
data's visible probabilities (as Hinton et al. 2006 do for MNIST); the chain's visibles are
binary samples.

Deployed encoder: ``self.encoder = nn.Linear(D, K)`` holds ``W`` and ``c``, and the features
are the RBM's own hidden probabilities ``p(h=1|v) = sigmoid(W v + c)`` (sigmoid, not the
ReLU of the other baselines: that is what an RBM's hidden units are). The visible bias ``b``
is training-only. Init as the guide advises: ``W ~ N(0, 0.01^2)``, ``c = 0``; ``b = 0`` (the
guide's ``b_i = log p_i / (1 - p_i)`` needs the data at build time, which a method does not
see). The logged ``recon`` term is the mean-field one-step reconstruction error
``sum_i (v_i - sigmoid(W^T sigmoid(W v + c) + b)_i)^2`` (the guide's monitoring quantity),
returned detached: it is monitoring only and adds a constant to the minimised sum.

Optimiser: the suite's Adam with ``lr = 1e-3``. The original is SGD with ``lr = 0.1``,
momentum 0.5 -> 0.9 and weight cost 2e-4 (the ``rbm.m`` of Hinton & Salakhutdinov 2006), a
step size meant for plain SGD, not for Adam's normalised steps; ``k = 1`` (CD-1) as there.
RBMs model binary (or [0, 1]) visibles: data without an image shape (``ica``, standardised
reals) is declared unsupported.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.train.methods import METHODS, DataInfo, Method, MethodConfig
from bench.train.seedbatch import SeedRNG, stacked_linear


def free_energy(v: torch.Tensor, weight: torch.Tensor, hbias: torch.Tensor, vbias: torch.Tensor) -> torch.Tensor:
    """Free energy of a Bernoulli-Bernoulli RBM, ``F(v) = -b.v - sum_j softplus(c_j + W_j.v)``.

    Args:
        v: (N, D) visibles in [0, 1]; weight: (K, D) ``W``; hbias: (K,) ``c``; vbias: (D,) ``b``.
            For S seeds trained together, each with one more leading dim S (``v`` (S, N, D), ...).
    Returns:
        (N,) free energies (``p(v) = exp(-F(v)) / Z``); (S, N) for S seeds.
    """
    if v.dim() == 2:
        vb = v @ vbias
    else:  # one matrix-vector product per seed: a batched matmul with one column sums in another order
        vb = torch.stack([vs @ bs for vs, bs in zip(v, vbias, strict=True)])
    return -vb - F.softplus(_linear(v, weight, hbias)).sum(-1)


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``F.linear`` for (N, D) inputs, its stacked form for S seeds' (S, N, D)."""
    return F.linear(x, weight, bias) if x.dim() == 2 else stacked_linear(x, weight, bias)


def bernoulli(p: torch.Tensor, generator: torch.Generator | SeedRNG | None = None) -> torch.Tensor:
    """Binary samples ``torch.bernoulli(p)`` from ``generator`` (None: the global RNG); for S seeds,
    ``p`` (S, ...) and a :class:`~bench.train.seedbatch.SeedRNG`: seed s's samples from its own generator."""
    if isinstance(generator, SeedRNG):
        return torch.stack([torch.bernoulli(ps, generator=g) for ps, g in zip(p, generator.dev, strict=True)])
    return torch.bernoulli(p, generator=generator)


@dataclass(frozen=True)
class RBMConfig(MethodConfig):
    k: int = 1  # Gibbs steps per negative sample (CD-k / PCD-k)
    persistent: bool = False  # PCD (Tieleman 2008): chains carry over between minibatches
    init_std: float = 0.01  # std of the initial weights (Hinton 2010 §8)

    def check(self) -> None:
        super().check()
        if self.k < 1:
            raise ValueError(f"k: must be >= 1, got {self.k}")
        if self.init_std < 0:
            raise ValueError(f"init_std: must be >= 0, got {self.init_std}")


@METHODS.register()
class RBM(Method):
    """Bernoulli-Bernoulli RBM trained by CD-1 (sigmoid hidden probabilities as features)."""

    name = "rbm"
    citation = (
        "Hinton 2002, Training products of experts by minimizing contrastive divergence; "
        "Hinton et al. 2006; Hinton 2010, A practical guide to training RBMs; Tieleman 2008 (PCD)"
    )
    Config = RBMConfig

    def __init__(self, cfg: RBMConfig, info: DataInfo, width: int):
        super().__init__(cfg, info, width)
        cfg.check()
        self.encoder = nn.Linear(info.input_dim, width)
        with torch.no_grad():
            self.encoder.weight.normal_(0.0, cfg.init_std)
            self.encoder.bias.zero_()
        self.visible_bias = nn.Parameter(torch.zeros(info.input_dim))
        self.register_buffer("chains", None, persistent=False)  # PCD state, (n_chains, D)

    @classmethod
    def unsupported(cls, info: DataInfo) -> str | None:
        if info.image_shape is None:
            return "Bernoulli visibles need inputs in [0, 1]; this data is real-valued (no image shape)"
        return None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.encoder(x))

    def visible_probs(self, h: torch.Tensor) -> torch.Tensor:
        """``p(v=1|h) = sigmoid(W^T h + b)``: (N, K) -> (N, D)."""
        return visible_probs(h, self.encoder.weight, self.visible_bias)

    def gibbs(self, v: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``k`` steps of block Gibbs sampling ``v -> h -> v``; returns binary visibles (N, D)."""
        return gibbs(v, k, self.encoder.weight, self.encoder.bias, self.visible_bias, generator)

    def negative_sample(self, x: torch.Tensor) -> torch.Tensor:
        """The chain ends for the negative phase: CD starts at the data, PCD at the old chains."""
        chains = negative_sample(x, self.chains, self.cfg, *self.weights())
        if self.cfg.persistent:
            self.chains = chains
        return chains

    def weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``W`` (K, D), ``c`` (K,), ``b`` (D,)."""
        return self.encoder.weight, self.encoder.bias, self.visible_bias

    def loss_terms(self, x, y=None):
        return terms(x, self.negative_sample(x), *self.weights())

    # seeds trained together (bench.train.seedbatch): the same sampler and terms on stacked tensors, each
    # seed's Gibbs samples from its own generator; PCD chains are the stacked buffer b["chains"]. Bit-identical;
    # small inputs only: 0.96-1.05x at mnist5k, K = 64, S = 10 on one CPU thread (the S per-seed Bernoulli
    # draws and the (S, B, D) tensors cost what the fewer dispatches save; 1.8x on digits)
    batched = True
    batch_max_dim = 256

    def loss_terms_batched(self, p, b, x, y, rng):
        w, c, vb = p["encoder.weight"], p["encoder.bias"], p["visible_bias"]
        chains = negative_sample(x, b.get("chains"), self.cfg, w, c, vb, rng)
        if self.cfg.persistent:
            b["chains"] = chains
        return terms(x, chains, w, c, vb)


def visible_probs(h: torch.Tensor, weight: torch.Tensor, vbias: torch.Tensor) -> torch.Tensor:
    """``p(v=1|h) = sigmoid(W^T h + b)``: (N, K) -> (N, D) ((S, N, K) -> (S, N, D) for S seeds)."""
    return torch.sigmoid(h @ weight + vbias.unsqueeze(-2))


@torch.no_grad()
def gibbs(
    v: torch.Tensor,
    k: int,
    weight: torch.Tensor,
    hbias: torch.Tensor,
    vbias: torch.Tensor,
    generator: torch.Generator | SeedRNG | None = None,
) -> torch.Tensor:
    """``k`` steps of block Gibbs sampling ``v -> h -> v`` (samples from ``generator``, see :func:`bernoulli`)."""
    for _ in range(k):
        h = bernoulli(torch.sigmoid(_linear(v, weight, hbias)), generator)
        v = bernoulli(visible_probs(h, weight, vbias), generator)
    return v


def negative_sample(
    x: torch.Tensor,
    chains: torch.Tensor | None,
    cfg: RBMConfig,
    weight: torch.Tensor,
    hbias: torch.Tensor,
    vbias: torch.Tensor,
    generator: torch.Generator | SeedRNG | None = None,
) -> torch.Tensor:
    """The chain ends for the negative phase: CD starts at the data ``x``, PCD at the old ``chains``
    (binary samples of the data the first time)."""
    if not cfg.persistent:
        return gibbs(x, cfg.k, weight, hbias, vbias, generator)
    if chains is None:
        chains = bernoulli(x.detach(), generator)
    return gibbs(chains, cfg.k, weight, hbias, vbias, generator)


def terms(
    x: torch.Tensor, v_model: torch.Tensor, weight: torch.Tensor, hbias: torch.Tensor, vbias: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The CD surrogate and the (detached) mean-field reconstruction error of data ``x`` (B, D) and
    chain ends ``v_model``; for S seeds' (S, B, D), the S per-seed values."""
    cd = free_energy(x, weight, hbias, vbias).mean(-1) - free_energy(v_model, weight, hbias, vbias).mean(-1)
    with torch.no_grad():
        recon = (x - visible_probs(torch.sigmoid(_linear(x, weight, hbias)), weight, vbias)).pow(2).sum(-1).mean(-1)
    return {"cd": cd, "recon": recon}
