"""The command line's words to configs: ``key=value`` tokens become one :class:`~bench.config.RunConfig` per
prediction (``prediction=all`` gives one per prediction), and the errors that mean bad input (one line, exit 2)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from bench.kinds import kind_of, questions
from bench.protocol import PREDICTIONS, Prediction, in_all

if TYPE_CHECKING:  # bench.config imports the data and the methods (torch): imported where a config is made
    from bench.config import RunConfig


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


def own_tokens(tokens: list[str], name: str, names: tuple[str, ...] | None = None) -> list[str]:
    """The tokens of a ``prediction=all`` (``question=all``) command that concern ``name``: the shared ones
    and its own ``name.field=`` (other sections, among ``names``, and ``prediction=`` / ``question=`` dropped)."""
    names = in_all() if names is None else names
    return [
        t
        for t in tokens
        if not t.startswith(("prediction=", "question="))
        and (t.partition("=")[0].partition(".")[0] not in names or t.startswith(f"{name}."))
    ]


def all_configs(args: list[str], names: tuple[str, ...] | None = None, word: str = "prediction") -> dict:
    """``prediction=all`` (or ``question=all`` with ``names``): one RunConfig each; ``NAME.field=`` tokens go to
    NAME only."""
    from bench.config import parse_overrides
    from bench.protocol import PREDICTIONS

    names = in_all() if names is None else names
    rest = [a for a in args if not a.startswith(("prediction=", "question="))]
    for a in rest:
        if a.split("=", 1)[0] in ("dataset", "width"):
            raise UsageError(
                f"{word}=all: '{a.split('=', 1)[0]}=' differs per {word}; set it for one (e.g. {names[0]}.{a})"
            )
    cfgs = {}
    for name in names:
        cfgs[name] = parse_overrides(
            [*own_tokens(rest, name, names), f"prediction={name}"], PREDICTIONS.get(name).Config, name
        )
    return cfgs


def configs(args: list[str], cmd: str = "run") -> dict:
    """``bench run`` / ``bench plan``'s key=value args -> {name: RunConfig}: one prediction, the four of
    ``prediction=all``, one open question (``question=NAME``) or all of them (``question=all``), every
    one's options checked before anything runs."""
    from bench.config import parse_overrides
    from bench.protocol import PREDICTIONS

    pred_tokens = [a for a in args if a.startswith("prediction=")]
    q_tokens = [a for a in args if a.startswith("question=")]
    if pred_tokens and q_tokens:
        raise UsageError(f"{cmd}: give prediction=NAME or question=NAME, not both")
    if q_tokens:
        qname, names = q_tokens[0].partition("=")[2], questions()
        if qname == "all":
            cfgs = all_configs(args, names, "question")
        elif qname not in names:
            raise UsageError(f"question: unknown '{qname}' (choices: all, {', '.join(names)})")
        else:
            rest = [a for a in args if not a.startswith("question=")]
            cfgs = {qname: parse_overrides([*rest, f"prediction={qname}"], PREDICTIONS.get(qname).Config, qname)}
    elif not pred_tokens:
        raise UsageError(
            f"{cmd}: missing prediction=NAME (choices: all, {', '.join(in_all())}) or question=NAME "
            f"(choices: all, {', '.join(questions())})"
        )
    else:
        pname = pred_tokens[0].partition("=")[2]
        if pname == "all":
            cfgs = all_configs(args)
        else:
            if pname in PREDICTIONS and kind_of(pname) == "question":
                raise UsageError(f"prediction: '{pname}' is an open question (bench {cmd} question={pname})")
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
