"""Run configuration: typed dataclasses, Hydra-style ``key=value`` overrides, validation.

Every default lives in exactly one place: the run's in :class:`RunConfig`, the data's in
:class:`bench.data.DataConfig`, each method's in its ``Config`` dataclass and each
prediction's in its ``Config`` dataclass. An override names one of them:

* ``dataset=mnist5k``, ``methods=[infomax,sae]``, ``seeds=3`` or ``seeds=[0,4]``, ...
* ``data.root=/data``; ``infomax.lambda_tc=0.5``; ``pruning.fractions=[0.1,0.5]``.

Bad input raises :class:`ConfigError` with one line naming the bad part and the valid
choices; the command line turns it into exit code 2 before anything is written.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from bench.data import DATASETS, DataConfig, base_name
from bench.data.views import parse_view
from bench.protocol import EXPLORATORY, PREDICTIONS, PROFILES  # noqa: F401 (the profiles, in the contract a report reads)
from bench.syntax import ConfigError, coerce, key_values, split_list  # noqa: F401 (re-exported)
from bench.train.methods import METHODS

DEVICES = ("auto", "cpu", "cuda")
CONFIRM_SEEDS = tuple(range(100, 110))  # seeds and split seeds >= 100 belong to confirm alone
SEEDS = {"quick": 3, "full": 10}
QUESTION_SEEDS = {"quick": 5, "full": 10}  # the open questions fit per seed: five seeds even when quick
BUDGET_PROFILE = {"quick": "quick", "full": "full", "confirm": "quick"}  # confirm trains at quick budgets
# what confirm accepts besides prediction= and profile= (where and how it runs, never what it computes)
# batch_seeds: how the same encoders are trained (bit-identical either way), not what is trained
CONFIRM_KEYS = ("device", "workers", "executor", "out", "reports", "cache", "data.root", "seeds", "batch_seeds")
# passes over the training set, per dataset and profile (the same for every method)
EPOCHS = {
    "digits": {"quick": 60, "full": 200},
    "digits28": {"quick": 60, "full": 200},
    "digits28c": {"quick": 60, "full": 200},
    "mnist5k": {"quick": 40, "full": 100},
    "dsprites": {"quick": 10, "full": 50},
    "ica": {"quick": 30, "full": 100},
    "mnist1d": {"quick": 64, "full": 64},  # 8,192 steps at batch 128 on its default 16,384 draws (protocol 11.0)
}
EPOCHS_DEFAULT = {"quick": 5, "full": 30}  # full-size torchvision datasets


# every character str.splitlines() breaks on, escaped so that a message stays one line
MAX_SEEDS = 1000  # seeds=n builds the list 0..n-1: a typo such as seeds=1000000000 must not exhaust memory
SEED_LIMIT = 2**32  # torch.manual_seed and numpy take seeds below 2^64 / 2^32


ENGINES = ("local", "dask", "slurm")


@dataclass(frozen=True)
class ExecutorConfig:
    """``executor=`` and its ``executor.*`` options (defaults here, and only here)."""

    kind: str = "local"
    address: str = ""  # dask: scheduler address; empty = a local cluster
    partition: str = ""  # slurm partition
    gpus_per_job: int = 0
    cpus_per_job: int = 1
    time_min: int = 60  # slurm time limit per job, minutes
    cluster: str = "slurm"  # submitit cluster: "slurm", or "local" (tests, a workstation)
    folder: str = ""  # submitit logs; empty = <out>/slurm

    def check(self) -> None:
        if self.kind not in ENGINES:
            raise ValueError(f"executor: unknown '{self.kind}' (choices: {', '.join(ENGINES)})")
        if self.cluster not in ("slurm", "local"):
            raise ValueError(f"executor.cluster: unknown '{self.cluster}' (choices: slurm, local)")
        if self.address and not self.address.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
            raise ValueError(f"executor.address: expected tcp://HOST:PORT, got '{self.address}'")
        for key in ("gpus_per_job", "cpus_per_job", "time_min"):
            lo = 0 if key == "gpus_per_job" else 1
            if getattr(self, key) < lo:
                raise ValueError(f"executor.{key}: must be >= {lo}, got {getattr(self, key)}")


@dataclass
class RunConfig:
    """The run's options (``bench run prediction=NAME [key=value ...]``)."""

    prediction: str = ""
    dataset: str | None = None  # None: the prediction's default
    methods: list[str] | None = None  # None: the prediction's default
    width: int | None = None  # None: the prediction's default
    seeds: list[int] | None = None  # an int n means seeds 0..n-1; None: the profile's
    epochs: int | None = None  # None: EPOCHS[dataset][profile]
    batch_size: int = 128
    device: str = "auto"
    profile: str = "quick"
    out: str = "results"
    reports: str = "reports"
    cache: str | None = None  # None: <out>/cache
    threads: int = 1  # CPU threads for torch, per process (docs/performance.md: one is fastest for these small models)
    workers: int | str = "auto"  # processes training jobs at once: "auto" = the CPU cores (several per GPU)
    batch_seeds: bool = True  # train a cell's missing seeds as one batched step (bit-identical; false: one at a time)
    compile: bool = False  # a fused torch.compile'd step (other numerics: its encoders are cached apart)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # local | dask | slurm (bench.engine.executors)
    data: DataConfig = field(default_factory=DataConfig)
    method_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    prediction_overrides: dict[str, Any] = field(default_factory=dict)

    def resolved_seeds(self) -> list[int]:
        if self.seeds is not None:
            return list(self.seeds)
        if self.profile == "confirm":
            return list(CONFIRM_SEEDS)
        from bench.kinds import kind_of
        from bench.protocol import VIEWS

        asks = self.prediction in VIEWS or self.prediction in PREDICTIONS  # a registered name (a view may be lazy)
        seeds = QUESTION_SEEDS if asks and kind_of(self.prediction) == "question" else SEEDS
        return list(range(seeds[self.profile]))

    def resolved_epochs(self, dataset: str) -> int:
        if self.epochs is not None:
            return self.epochs
        return EPOCHS.get(base_name(dataset), EPOCHS_DEFAULT)[BUDGET_PROFILE[self.profile]]

    @property
    def exploratory(self) -> bool:
        return self.profile in EXPLORATORY

    def cache_dir(self) -> str:
        return self.cache or f"{self.out}/cache"

    def method_config(self, name: str) -> Any:
        cls = METHODS.get(name).Config
        return cls(**self.method_overrides.get(name, {}))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- parsing
def _fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


RUN_KEYS = (
    "dataset",
    "methods",
    "width",
    "seeds",
    "epochs",
    "batch_size",
    "device",
    "profile",
    "out",
    "reports",
    "cache",
    "threads",
    "workers",
    "executor",
    "batch_seeds",
    "compile",
)


def parse_overrides(args: list[str], prediction_config_cls: type | None = None, prediction_name: str = "") -> RunConfig:
    """Build a validated :class:`RunConfig` from ``key=value`` tokens (``prediction`` included)."""
    cfg = RunConfig()
    data_kw: dict[str, Any] = {}
    exec_kw: dict[str, Any] = {}
    run_types = _fields(RunConfig)
    given = key_values(args)[0]
    for key, text in given.items():
        if key == "prediction":
            cfg.prediction = text
        elif key == "seeds":
            v = coerce(key, text, int | list[int])
            if isinstance(v, int):
                if not 1 <= v <= MAX_SEEDS:
                    raise ConfigError(f"seeds: need 1 to {MAX_SEEDS} seeds, got {v}")
                v = list(range(v))
            elif not v or len(set(v)) != len(v) or min(v) < 0 or max(v) >= SEED_LIMIT:
                raise ConfigError(f"seeds: need distinct seeds in 0..{SEED_LIMIT - 1}, got '{text}'")
            elif len(v) > MAX_SEEDS:
                raise ConfigError(f"seeds: need at most {MAX_SEEDS} seeds, got {len(v)}")
            cfg.seeds = v
        elif key == "executor":
            exec_kw["kind"] = coerce(key, text, str)
        elif key == "workers":
            cfg.workers = "auto" if text.strip() == "auto" else coerce(key, text, int)
        elif key in RUN_KEYS:
            setattr(cfg, key, coerce(key, text, run_types[key]))
        elif "." in key:
            section, _, name = key.partition(".")
            if section == "executor":
                etypes = _fields(ExecutorConfig)
                etypes.pop("kind")
                if name not in etypes:
                    raise ConfigError(
                        f"unknown key '{key}' (executor keys: executor, {', '.join('executor.' + k for k in etypes)})"
                    )
                exec_kw[name] = coerce(key, text, etypes[name])
            elif section == "data":
                dtypes = _fields(DataConfig)
                if name not in dtypes:
                    raise ConfigError(f"unknown key '{key}' (data keys: {', '.join('data.' + k for k in dtypes)})")
                data_kw[name] = coerce(key, text, dtypes[name])
            elif section in METHODS:
                mtypes = _fields(METHODS.get(section).Config)
                if name not in mtypes:
                    raise ConfigError(f"unknown key '{key}' ({section} keys: {', '.join(mtypes) or 'none'})")
                cfg.method_overrides.setdefault(section, {})[name] = coerce(key, text, mtypes[name])
            elif prediction_config_cls is not None and section == prediction_name:
                ptypes = _fields(prediction_config_cls)
                if name not in ptypes:
                    raise ConfigError(f"unknown key '{key}' ({section} keys: {', '.join(ptypes) or 'none'})")
                cfg.prediction_overrides[name] = coerce(key, text, ptypes[name])
            else:
                choices = ["data", "executor", prediction_name or "<prediction>", *METHODS.names()]
                raise ConfigError(f"unknown section '{section}' in '{key}' (sections: {', '.join(choices)})")
        else:
            raise ConfigError(
                f"unknown key '{key}' (keys: prediction, {', '.join(RUN_KEYS)}, data.*, <method>.*, <prediction>.*)"
            )
    try:
        cfg.data = DataConfig(**data_kw)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"data: {e}") from None
    cfg.executor = ExecutorConfig(**exec_kw)
    validate(cfg)
    check_profile_keys(cfg, set(given))
    return cfg


def check_profile_keys(cfg: RunConfig, keys: set[str]) -> None:
    """``confirm`` is pre-registered: it accepts seeds >= 100 and only the keys that say where and
    how it runs (:data:`CONFIRM_KEYS`); exploratory profiles refuse confirm's seeds and split seeds."""
    if cfg.profile == "confirm":
        extra = sorted(
            k for k in keys - {"prediction", "profile"} if k not in CONFIRM_KEYS and k.partition(".")[0] != "executor"
        )
        if extra:
            raise ConfigError(
                f"profile=confirm is pre-registered and takes no '{extra[0]}=' (it accepts only "
                f"{', '.join(CONFIRM_KEYS)}, executor.*)"
            )
        low = [s for s in cfg.resolved_seeds() if s < CONFIRM_SEEDS[0]]
        if low:
            raise ConfigError(
                f"seeds: profile=confirm uses seeds >= {CONFIRM_SEEDS[0]} (its own, default "
                f"{CONFIRM_SEEDS[0]}..{CONFIRM_SEEDS[-1]}), got {low[0]}"
            )
        return
    high = [s for s in cfg.resolved_seeds() if s >= CONFIRM_SEEDS[0]]
    if high:
        raise ConfigError(
            f"seeds: seeds >= {CONFIRM_SEEDS[0]} belong to profile=confirm (exploratory "
            f"profile {cfg.profile} got {high[0]})"
        )
    if cfg.data.split_seed >= CONFIRM_SEEDS[0]:
        raise ConfigError(
            f"data.split_seed: split seeds >= {CONFIRM_SEEDS[0]} belong to profile=confirm (got {cfg.data.split_seed})"
        )


def validate(cfg: RunConfig) -> None:
    """Range and choice checks that do not depend on the prediction."""
    if cfg.profile not in PROFILES:
        raise ConfigError(f"profile: unknown '{cfg.profile}' (choices: {', '.join(PROFILES)})")
    if cfg.device not in DEVICES:
        raise ConfigError(f"device: unknown '{cfg.device}' (choices: {', '.join(DEVICES)})")
    if cfg.dataset is not None:
        try:
            parse_view(cfg.dataset)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if cfg.dataset is not None and base_name(cfg.dataset) not in DATASETS:
        raise ConfigError(f"dataset: unknown '{cfg.dataset}' (choices: {', '.join(DATASETS.names())})")
    if cfg.methods is not None:
        if not cfg.methods:
            raise ConfigError("methods: empty list")
        for m in cfg.methods:
            if m not in METHODS:
                raise ConfigError(f"methods: unknown '{m}' (choices: {', '.join(METHODS.names())})")
        if len(set(cfg.methods)) != len(cfg.methods):
            raise ConfigError(f"methods: listed twice in {cfg.methods}")
    if cfg.workers != "auto" and (not isinstance(cfg.workers, int) or cfg.workers < 1):
        raise ConfigError(f"workers: must be auto or an integer >= 1, got {cfg.workers}")
    try:
        cfg.executor.check()
    except ValueError as e:
        raise ConfigError(str(e)) from None
    for key, lo in (("width", 1), ("epochs", 1), ("batch_size", 2), ("threads", 1)):
        v = getattr(cfg, key)
        if v is not None and v < lo:
            raise ConfigError(f"{key}: must be >= {lo}, got {v}")
    if cfg.data.mixing not in ("linear", "nonlinear"):
        raise ConfigError(f"data.mixing: unknown '{cfg.data.mixing}' (choices: linear, nonlinear)")
    for key in ("n", "sources"):
        if getattr(cfg.data, key) < 2:
            raise ConfigError(f"data.{key}: must be >= 2, got {getattr(cfg.data, key)}")
    for name, kw in cfg.method_overrides.items():
        mcls = METHODS.get(name)
        try:
            conf = mcls.Config(**kw)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{name}: {e}") from None
        check = getattr(conf, "check", None)
        if check is not None:
            try:
                check()
            except ValueError as e:
                raise ConfigError(f"{name}.{e}") from None
