"""The command line's words to configs: ``key=value`` tokens become one :class:`~bench.config.RunConfig` per
prediction (``prediction=all`` gives one per prediction), and the errors that mean bad input (one line, exit 2)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from bench.protocol import PREDICTIONS, Prediction, in_all

if TYPE_CHECKING:  # bench.config imports the data and the methods (torch): imported where a config is made
    from bench.config import RunConfig


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


def own_tokens(tokens: list[str], name: str) -> list[str]:
    """The tokens of a ``prediction=all`` command that concern prediction ``name``: the shared
    ones and its own ``name.field=`` (other predictions' sections and ``prediction=`` dropped)."""
    return [
        t
        for t in tokens
        if not t.startswith("prediction=")
        and (t.partition("=")[0].partition(".")[0] not in in_all() or t.startswith(f"{name}."))
    ]


def all_configs(args: list[str]) -> dict:
    """``prediction=all``: one RunConfig per prediction; ``NAME.field=`` tokens go to NAME only."""
    from bench.config import parse_overrides
    from bench.protocol import PREDICTIONS

    rest = [a for a in args if not a.startswith("prediction=")]
    for a in rest:
        if a.split("=", 1)[0] in ("dataset", "width"):
            raise UsageError(
                f"prediction=all: '{a.split('=', 1)[0]}=' differs per prediction; set it for one (e.g. pruning.{a})"
            )
    cfgs = {}
    for name in in_all():
        cfgs[name] = parse_overrides(
            [*own_tokens(rest, name), f"prediction={name}"], PREDICTIONS.get(name).Config, name
        )
    return cfgs


def configs(args: list[str], cmd: str = "run") -> dict:
    """``bench run`` / ``bench plan``'s key=value args -> {prediction: RunConfig} (one, or the four of
    ``prediction=all``), every prediction's options checked before anything runs."""
    from bench.config import parse_overrides
    from bench.protocol import PREDICTIONS

    pred_tokens = [a for a in args if a.startswith("prediction=")]
    if not pred_tokens:
        raise UsageError(f"{cmd}: missing prediction=NAME (choices: all, {', '.join(PREDICTIONS.names())})")
    pname = pred_tokens[0].partition("=")[2]
    if pname == "all":
        cfgs = all_configs(args)
    else:
        cfgs = {pname: parse_overrides(args, PREDICTIONS.get(pname).Config, pname)}
    for cfg in cfgs.values():
        build_prediction(cfg)  # validates the prediction's own options before anything runs
    return cfgs


def bad_input_errors() -> tuple[type[Exception], ...]:
    """The errors that mean bad input (one line, exit 2), from the modules that are loaded: a module
    not imported has raised none of them, and ``bench report`` need not import torch for the check."""
    found = [UsageError]
    for module, name in (
        ("bench.syntax", "ConfigError"),
        ("bench.data", "DataNotFoundError"),
        ("bench.registry", "UnknownNameError"),
    ):
        if module in sys.modules:
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


def build_prediction(cfg: RunConfig) -> Prediction:
    from bench.config import ConfigError

    pcls = PREDICTIONS.get(cfg.prediction)
    over = dict(cfg.prediction_overrides)
    if cfg.dataset is not None:
        over["dataset"] = cfg.dataset
    if cfg.width is not None:
        over["width"] = cfg.width
    try:
        pcfg = pcls.Config(**over)
        pcfg.check()
        prediction = pcls(pcfg)
        prediction.check_profile(cfg.profile)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{cfg.prediction}: {e}") from None
    return prediction
