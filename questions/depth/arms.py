"""The depth question's arms: which jobs it trains and what each is the control of (no torch: the view reads it).

An *arm* is one job per seed and dataset, named in the tidy table's ``arm`` column:

* ``stack``: the greedy stack of one family, ``f/f/f`` (``baselines.stack``, layers joined by ``/``);
* ``random_control``: an untrained ``random`` layer on a trained one, ``f/random`` (layer 2's control) and
  ``f/f/random`` (layer 3's); layer 1's control is the plain ``random`` job (``random@K``);
* ``identity_control``: ``infomax/identity``, whose layer 2 must read exactly what layer 1 reads;
* ``reference``: ``infomax_mlp3@K`` (InfoMax end to end through three layers), ``supervised_mlp3@K``
  (the label oracle) and ``infomax@2K`` (one layer twice as wide: width against depth).
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEP = "/"
RANDOM = "random"
IDENTITY = "identity"
ROLES = ("stack", "random_control", "identity_control", "reference")
REFERENCES = {  # family column of the plain reference jobs -> (method, width multiple)
    "infomax_mlp3": ("infomax_mlp3", 1),
    "supervised_mlp3": ("supervised_mlp3", 1),
    "infomax_wide": ("infomax", 2),
}


@dataclass(frozen=True)
class Arm:
    """One job per (dataset, seed): ``layers`` for a stack, else the plain ``method`` at ``width``."""

    name: str
    role: str
    family: str
    method: str
    width: int
    layers: tuple[str, ...] = field(default=())  # a stack's (the protocol adds the dataset's budget to its config)


def stack_arm(layers: tuple[str, ...] | list[str]) -> str:
    """``("infomax", "infomax")`` -> ``"infomax/infomax"``."""
    return SEP.join(layers)


def plain_arm(method: str, width: int) -> str:
    """``("random", 64)`` -> ``"random@64"``."""
    return f"{method}@{width}"


def control_of(family: str, layer: int, width: int) -> str:
    """The arm whose ``layer`` is the untrained control of layer ``layer`` of the ``family`` stack:
    ``random@K`` for layer 1, else ``family`` x (layer - 1) then ``random``."""
    if layer == 1:
        return plain_arm(RANDOM, width)
    return stack_arm((family,) * (layer - 1) + (RANDOM,))


def arms(families: tuple[str, ...], depth: int, width: int, subject: str = "infomax") -> list[Arm]:
    """Every arm of one dataset, in the order they are asked for."""
    out = []
    for f in families:
        out.append(Arm(stack_arm((f,) * depth), "stack", f, "stack", width, (f,) * depth))
        for layer in range(2, depth + 1):
            ls = (f,) * (layer - 1) + (RANDOM,)
            out.append(Arm(stack_arm(ls), "random_control", f, "stack", width, ls))
        if f == subject:
            out.append(Arm(stack_arm((f, IDENTITY)), "identity_control", f, "stack", width, (f, IDENTITY)))
    out.append(Arm(plain_arm(RANDOM, width), "random_control", RANDOM, RANDOM, width))
    for fam, (method, times) in REFERENCES.items():
        out.append(Arm(plain_arm(method, width * times), "reference", fam, method, width * times))
    return out
