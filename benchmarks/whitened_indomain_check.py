# Reproduces the README's note on the transfer co-primary against PCA (PROTOCOL §8 P2 doubt).
"""Is PCA's weak in-domain kappa the per-unit standardisation (an exact whitening on the train split)?
Same PCA code, randomly rotated before the probe: same information, no longer whitened by standardising."""
import torch

from bench.data import load_dataset
from predictions.transfer.pairs import draw_subsets, kappa
from predictions.transfer.probing import budget_probe

src, tgt = load_dataset("mnist5k[0-4]"), load_dataset("mnist5k[5-9]")
g = torch.Generator().manual_seed(0)
q, _ = torch.linalg.qr(torch.randn(64, 64, generator=g))
subs = [s for b, d in (("1", 20), ("5", 10), ("10", 5)) for s in draw_subsets(tgt.train.y, b, d, 0, "mnist_lo_hi")]
for name, fit in (("in-domain (PCA fit on mnist5k[5-9])", tgt), ("transfer (PCA fit on mnist5k[0-4])", src)):
    mu = fit.train.x.mean(0)
    v = torch.linalg.svd(fit.train.x - mu, full_matrices=False).Vh[:64]
    f = [(s.x - mu) @ v.T for s in (tgt.train, tgt.val, tgt.test)]
    for how, rot in (("PCA code", None), ("same code, randomly rotated", q)):
        h = f if rot is None else [fi @ rot for fi in f]
        r = budget_probe(h[0], tgt.train.y, h[1], tgt.val.y, h[2], tgt.test.y, 5, subs)
        print(f"{name:38s} {how:28s} mean kappa, n in 1/5/10: {float(kappa(r.test_acc.mean(), 5)):.3f}")
