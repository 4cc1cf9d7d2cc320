"""How much of an in-domain P2 probe is the per-unit standardisation (docs/protocol.md, P2 scaling)?

Per-unit standardisation of a decorrelated code (PCA exactly; the subject, whose loss decorrelates
its units, nearly) whitens it on the train split, noise directions included. The same code
rotated at random carries the same information but is no longer whitened by standardising its
units. Beside the PCA code (fit on the target's train inputs in-domain, on the source's for
transfer) and, with ``--raw``, the pixels (784-wide probes: slow), this probes the subject's (``infomax``) in-domain code, trained on
the target's train inputs, each as is and randomly rotated, under every scaling of
``predictions.transfer.probing.SCALINGS`` that this checkout has (v1: per-unit standardisation
only). Pair ``mnist_lo_hi``, width 64, n in {1, 5, 10} (20 / 10 / 5 draws), quick epochs.

    PYTHONPATH=. python3 benchmarks/whitened_indomain_check.py [--seeds 0 1] [--epochs 40] [--raw]
"""

from __future__ import annotations

import argparse
import inspect

import torch

from bench.catalog import load_all
from bench.data import load_dataset
from bench.train.methods import METHODS
from bench.train.trainer import fit_encoder
from predictions.transfer import probing
from predictions.transfer.pairs import draw_subsets, kappa

K = 64
SCALINGS = getattr(probing, "SCALINGS", ("unit",))  # v1's probe knows only per-unit standardisation


def probe(f, tgt, subs, scaling: str) -> float:
    kw = {"scaling": scaling} if "scaling" in inspect.signature(probing.budget_probe).parameters else {}
    r = probing.budget_probe(f[0], tgt.train.y, f[1], tgt.val.y, f[2], tgt.test.y, tgt.n_classes, subs, **kw)
    return float(kappa(r.test_acc.mean(), tgt.n_classes))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--epochs", type=int, default=40)  # EPOCHS["mnist5k"]["quick"]
    ap.add_argument("--raw", action="store_true", help="also the raw pixels, as is and rotated (784 x 784)")
    a = ap.parse_args()
    load_all()
    src, tgt = load_dataset("mnist5k[0-4]"), load_dataset("mnist5k[5-9]")
    print(f"scalings: {', '.join(SCALINGS)}; mean kappa over n in 1/5/10 on mnist5k[5-9] test")
    for seed in a.seeds:
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(K, K, generator=g))
        q784 = torch.linalg.qr(torch.randn(784, 784, generator=g))[0] if a.raw else None
        subs = [
            s
            for b, d in (("1", 20), ("5", 10), ("10", 5))
            for s in draw_subsets(tgt.train.y, b, d, seed, "mnist_lo_hi")
        ]
        codes = {}
        for name, fit in (("pca in-domain", tgt), ("pca transfer", src)):
            mu = fit.train.x.mean(0)
            v = torch.linalg.svd(fit.train.x - mu, full_matrices=False).Vh[:K]
            codes[name] = ([(s.x - mu) @ v.T for s in (tgt.train, tgt.val, tgt.test)], q)
        method, meta = fit_encoder(
            "infomax",
            METHODS.get("infomax").Config(),
            tgt,
            K,
            seed,
            epochs=a.epochs,
            batch_size=128,
            device=torch.device("cpu"),
        )
        assert meta["status"] == "ok", meta.get("reason")
        with torch.no_grad():
            codes["infomax in-domain"] = ([method.encode_all(s.x) for s in (tgt.train, tgt.val, tgt.test)], q)
        if a.raw:
            codes["raw"] = ([s.x for s in (tgt.train, tgt.val, tgt.test)], q784)
        for name, (f, rot) in codes.items():
            for how, h in (("as is", f), ("rotated", [fi @ rot for fi in f])):
                cells = "  ".join(f"{sc}: {probe(h, tgt, subs, sc):.3f}" for sc in SCALINGS)
                print(f"seed {seed}  {name:18s} {how:8s} {cells}", flush=True)


if __name__ == "__main__":
    main()
