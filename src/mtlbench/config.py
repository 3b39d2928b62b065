"""params.yaml -> validated, typed, immutable objects.

Validation happens once, here, at the edge: every other module receives these objects and never
reads params.yaml or the environment itself. Each error names the offending key and what is allowed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from mtlbench.data.sources import MIRROR_ENV  # noqa: F401 (re-exported: stages and tools read it here)
from mtlbench.studies import STUDIES

DEVICES = ("auto", "cpu", "cuda")
TRACKING_ENV = "MLFLOW_TRACKING_URI"


class ParamsError(ValueError):
    """A params.yaml key or value that the pipeline cannot accept."""


@dataclass(frozen=True)
class RunConfig:
    studies: tuple[str, ...]  # the runs `dvc repro` reproduces: names declared under `runs:`
    seeds: tuple[int, ...]
    device: str
    train_limit: int | None
    max_epochs: int | None
    variants: tuple[str, ...] | None  # None: every variant of each study
    stack_seeds: str  # auto | true | false: train a dedicated model's seeds together
    progress: bool
    tasks: tuple[str, ...] | None = None  # None: every task; else only these (in every variant)
    executor: str = "local"  # local | ray: where the study's units train (train/executors.py)
    ray_address: str | None = None  # None: start a local Ray instance
    ray_gpus_per_unit: float = 1.0  # the share of a GPU each unit asks Ray for (CUDA)
    protocol: str = "faithful"  # faithful: each study's own protocol | modern (train/protocols.MODERN)
    train_sample: str = "per_seed"  # which train_limit rows: per_seed (drawn per seed, data/tasks.py) | first

    @property
    def rows_per_seed(self) -> bool:
        """Each seed trains on its own draw of training rows (run.train_sample, with a train_limit)."""
        return self.train_limit is not None and self.train_sample == "per_seed"


@dataclass(frozen=True)
class DataConfig:
    mirror: str | None
    verify: bool


@dataclass(frozen=True)
class MlflowConfig:
    tracking_uri: str
    log_models: bool


@dataclass(frozen=True)
class RSN2Config:
    init: str  # matched | original
    mask_method: str  # gradient | magnitude
    prune_percent: int | None  # None: each study's own p
    rescale_kept: bool  # kept weights x 1/sqrt(keep fraction) after masking


@dataclass(frozen=True)
class HSConfig:
    """The hs protocol's free choices (SPEC.md section 2)."""

    epochs: int
    early_stopping: bool


@dataclass(frozen=True)
class ModernConfig:
    """Overrides of the modern protocol (train/protocols.MODERN); null keeps its value. Only
    under run.protocol: modern."""

    epochs: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    label_smoothing: float | None = None
    warmup_epochs: int | None = None
    augment: bool | None = None

    def overrides(self) -> dict[str, Any]:
        """As train/protocols.modern_protocol takes them (epochs is the protocol's max_epochs)."""
        values = dict(vars(self))
        values["max_epochs"] = values.pop("epochs")
        return values


class _AccelSettings:
    def settings(self) -> dict[str, str]:
        """option -> auto | true | false, as mtlbench.train.accel.resolve_accel reads them."""
        return dict(vars(self))


@dataclass(frozen=True)
class CudaConfig(_AccelSettings):
    """auto | true | false per option of mtlbench.train.accel (ignored on CPU)."""

    graphs: str
    tf32: str
    bf16: str
    channels_last: str
    compile: str


@dataclass(frozen=True)
class CpuConfig(_AccelSettings):
    """auto | true | false for the one option that acts on the CPU path (mtlbench.train.accel)."""

    channels_last: str


@dataclass(frozen=True)
class AnalysisConfig:
    """How evaluate judges a difference (mtlbench.verdict): the equivalence margins."""

    margin: float = 0.005  # accuracy-like metrics, absolute (0.005 = 0.5 points)
    mse_margin: float = 0.05  # MSE, relative to the dedicated models' mean MSE


@dataclass(frozen=True)
class Params:
    run: RunConfig
    data: DataConfig
    mlflow: MlflowConfig
    rsn2: RSN2Config
    cuda: CudaConfig
    cpu: CpuConfig
    hs: HSConfig
    modern: ModernConfig = ModernConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    # run name -> what it declares: {"study": name, and any of RUN_DECLARED's run keys}; every
    # catalogue study is also a run of its own name that declares nothing else
    runs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def study_of(self, run: str) -> str:
        """The catalogue study a declared run trains."""
        return self.runs.get(run, {}).get("study", run)

    def for_run(self, run: str) -> "Params":
        """The params one run trains and is evaluated under: the run section with the run's own
        declared values in (a run declares its study, seeds, size, variants, tasks, protocol, sample),
        and the modern section with the run's `modern` values in (its recipe: epochs, lr, ...)."""
        declared = {key: value for key, value in self.runs.get(run, {}).items() if key not in ("study", "modern")}
        modern = self.runs.get(run, {}).get("modern", {})
        return replace(self, run=replace(self.run, studies=(run,), **declared), modern=replace(self.modern, **modern))


# ---------------------------------------------------------------- value checks

def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ParamsError(f"{key}: expected true or false, got {value!r}")
    return value


def _optional_positive_int(key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParamsError(f"{key}: expected null or a positive integer, got {value!r}")
    return value


def _optional_str(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ParamsError(f"{key}: expected null or a non-empty string, got {value!r}")
    return value


def _number(low: float, high: float) -> Callable[[str, Any], float]:
    """A number in the open interval (low, high)."""
    def check(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low < value < high):
            raise ParamsError(f"{key}: expected a number above {low:g} and below {high:g}, got {value!r}")
        return float(value)

    return check


def _optional_number(low: float, high: float, high_open: bool = False) -> Callable[[str, Any], float | None]:
    def check(key: str, value: Any) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                low <= value and (value < high if high_open else value <= high)):
            raise ParamsError(f"{key}: expected null or a number from {low:g} to {high:g}"
                              f"{' (exclusive)' if high_open else ''}, got {value!r}")
        return float(value)

    return check


def _optional_bool(key: str, value: Any) -> bool | None:
    return None if value is None else _bool(key, value)


def _optional_count(key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParamsError(f"{key}: expected null or a non-negative integer, got {value!r}")
    return value


def _choice(allowed: tuple[str, ...]) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        if value not in allowed:
            raise ParamsError(f"{key}: {value!r} is not allowed; allowed values: {', '.join(allowed)}")
        return value

    return check


def _optional_percent(key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 99:
        raise ParamsError(f"{key}: expected null or an integer from 1 to 99, got {value!r}")
    return value


def _gpu_share(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ParamsError(f"{key}: expected a number in (0, 1] (the share of one GPU per unit), got {value!r}")
    return float(value)


def _auto_or_bool(key: str, value: Any) -> str:
    if value is True or value is False:
        return str(value).lower()
    if value != "auto":
        raise ParamsError(f"{key}: {value!r} is not allowed; allowed values: auto, true, false")
    return value


def _names(key: str, value: Any) -> None:
    """A list of names holds strings only (a nested list would pass `in` checks as unhashable)."""
    bad = next((v for v in value if not isinstance(v, str)), None) if isinstance(value, list) else None
    if bad is not None:
        raise ParamsError(f"{key}: expected a list of names (strings), got the entry {bad!r}")


def _studies(key: str, value: Any) -> tuple[str, ...]:
    """run.studies: the runs to reproduce, by name (checked against `runs:` in _check_listed)."""
    _names(key, value)
    if not isinstance(value, list) or not value:
        raise ParamsError(f"{key}: expected a non-empty list of run names (a catalogue study: {', '.join(STUDIES)}; "
                          "or a run declared under runs:)")
    if len(set(value)) != len(value):
        raise ParamsError(f"{key}: lists a run twice: {value!r}")
    return tuple(value)


def _variants(key: str, value: Any) -> tuple[str, ...] | None:
    allowed = tuple(dict.fromkeys(v for study in STUDIES.values() for v in study.variants))
    if value is None:
        return None
    _names(key, value)
    if not isinstance(value, list) or not value or any(v not in allowed for v in value):
        raise ParamsError(f"{key}: expected null (all) or a non-empty list from: {', '.join(allowed)}; got {value!r}")
    return tuple(value)


def _tasks(key: str, value: Any) -> tuple[str, ...] | None:
    allowed = tuple(dict.fromkeys(t for study in STUDIES.values() for t in study.tasks))
    if value is None:
        return None
    _names(key, value)
    if not isinstance(value, list) or not value or len(set(value)) != len(value) or any(t not in allowed for t in value):
        bad = next((t for t in value if t not in allowed), None) if isinstance(value, list) else None
        shown = ", ".join(t for t in allowed if not t[1:].isdigit()) + ", T1..T90, R1..R50"
        raise ParamsError(f"{key}: expected null (all) or a non-empty list of distinct task names"
                          f"{f'; unknown task {bad!r}' if bad else ''}; allowed values: {shown}")
    return tuple(value)


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParamsError(f"{key}: expected a positive integer, got {value!r}")
    return value


SEED_LIMIT = 2**63  # torch generators take a seed that fits a signed 64-bit integer


def _seeds(key: str, value: Any) -> tuple[int, ...]:
    ok = isinstance(value, list) and value and all(
        isinstance(s, int) and not isinstance(s, bool) and 0 <= s < SEED_LIMIT for s in value
    )
    if not ok or len(set(value)) != len(value):
        raise ParamsError(f"{key}: expected a non-empty list of distinct integers from 0 to {SEED_LIMIT - 1} "
                          f"(torch.manual_seed's range), got {value!r}")
    return tuple(value)


# ---------------------------------------------------------------- schema

Schema = dict[str, dict[str, tuple[Callable[[str, Any], Any], Any]]]

SCHEMA: Schema = {
    "run": {
        "studies": (_studies, ["mnist_fashion_mlp", "mnist_fashion_cnn"]),
        "seeds": (_seeds, [0, 1, 2]),
        "device": (_choice(DEVICES), "auto"),
        "train_limit": (_optional_positive_int, None),
        "max_epochs": (_optional_positive_int, None),
        "variants": (_variants, None),
        "stack_seeds": (_auto_or_bool, "auto"),
        "progress": (_bool, True),
        "tasks": (_tasks, None),
        "executor": (_choice(("local", "ray")), "local"),
        "ray_address": (_optional_str, None),
        "ray_gpus_per_unit": (_gpu_share, 1.0),
        "protocol": (_choice(("faithful", "modern")), "faithful"),
        "train_sample": (_choice(("per_seed", "first")), "per_seed"),
    },
    "data": {
        "mirror": (_optional_str, None),
        "verify": (_bool, True),
    },
    "mlflow": {
        "tracking_uri": (_optional_str, None),
        "log_models": (_bool, True),
    },
    "rsn2": {
        "init": (_choice(("matched", "original")), "matched"),
        "mask_method": (_choice(("gradient", "magnitude")), "gradient"),
        "prune_percent": (_optional_percent, None),
        "rescale_kept": (_bool, True),
    },
    "hs": {
        "epochs": (_positive_int, 30),
        "early_stopping": (_bool, False),
    },
    "modern": {
        "epochs": (_optional_positive_int, None),
        "lr": (_optional_number(1e-6, 1.0), None),
        "weight_decay": (_optional_number(0.0, 1.0), None),
        "label_smoothing": (_optional_number(0.0, 1.0, high_open=True), None),
        "warmup_epochs": (_optional_count, None),
        "augment": (_optional_bool, None),
    },
    "cuda": {
        "graphs": (_auto_or_bool, "auto"),
        "tf32": (_auto_or_bool, "auto"),
        "bf16": (_auto_or_bool, "auto"),
        "channels_last": (_auto_or_bool, "auto"),
        "compile": (_auto_or_bool, "auto"),
    },
    "cpu": {
        "channels_last": (_auto_or_bool, "auto"),
    },
    "analysis": {
        "margin": (_number(0.0, 1.0), AnalysisConfig.margin),
        "mse_margin": (_number(0.0, 1.0), AnalysisConfig.mse_margin),
    },
}


def _check_sections(raw: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Apply the schema: unknown keys are errors, missing keys take their defaults."""
    if not isinstance(raw, Mapping):
        raise ParamsError(f"params.yaml: expected a mapping of sections ({', '.join(SCHEMA)})")
    unknown = sorted(set(raw) - set(SCHEMA) - {"runs"})
    if unknown:
        raise ParamsError(f"{unknown[0]}: unknown section; allowed sections: {', '.join(SCHEMA)}, runs")
    checked: dict[str, dict[str, Any]] = {}
    for section, fields in SCHEMA.items():
        if section in raw and raw[section] is None:
            raise ParamsError(f"{section}: the section is empty (null); give its keys ({', '.join(fields)}) "
                              "or remove the section to take every default")
        given = raw.get(section, {})
        if not isinstance(given, Mapping):
            raise ParamsError(f"{section}: expected a mapping with keys {', '.join(fields)}")
        extra = sorted(set(given) - set(fields))
        if extra:
            raise ParamsError(f"{section}.{extra[0]}: unknown key; allowed keys: {', '.join(fields)}")
        checked[section] = {
            key: check(f"{section}.{key}", given.get(key, default)) for key, (check, default) in fields.items()
        }
    return checked


def project_root(start: Path | None = None) -> Path:
    """The repository the pipeline belongs to, also from inside a `dvc exp run --temp` copy.

    DVC runs temporary and queued experiments in `<repo>/.dvc/tmp/exps/<tmpdir>`; their results
    must still land in the original repository's MLflow store, so the copy resolves to its origin.
    """
    here = (start or Path.cwd()).resolve()
    parts = here.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 2] == (".dvc", "tmp"):
            return Path(*parts[:i])
    for candidate in (here, *here.parents):
        if (candidate / "dvc.yaml").exists() or (candidate / ".git").exists():
            return candidate
    return here


def default_tracking_uri(root: Path) -> str:
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


# What a run declares besides its study: the run-section keys that say what is trained and on what
# (how and where it trains - device, executor, numerics - stays in the run section, for every run).
RUN_DECLARED = ("seeds", "train_limit", "max_epochs", "variants", "tasks", "protocol", "train_sample")
SECTIONS_DECLARED = ("modern",)  # a run's own values of these sections (its recipe), over the section's
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # a folder and DVC stage name (train@<run>)


def _declared_runs(raw: Any) -> dict[str, dict[str, Any]]:
    """The `runs:` section: run name -> {"study": ..., and what it declares of RUN_DECLARED}. Every
    catalogue study is a run of its own name (declared or not), so `run.studies` takes study names."""
    runs: dict[str, dict[str, Any]] = {name: {"study": name} for name in STUDIES}
    if raw is None:
        return runs
    allowed = ", ".join(("study", *RUN_DECLARED, *SECTIONS_DECLARED))
    if not isinstance(raw, Mapping):
        raise ParamsError(f"runs: expected a mapping of run name -> its declaration (keys {allowed})")
    for name, given in raw.items():
        if not isinstance(name, str) or not RUN_NAME.fullmatch(name):
            raise ParamsError(f"runs.{name}: a run name is a folder and stage name: letters, digits, _ and -")
        given = {} if given is None else given
        if not isinstance(given, Mapping):
            raise ParamsError(f"runs.{name}: expected a mapping with keys from {allowed}, got {given!r}")
        extra = sorted(set(given) - {"study", *RUN_DECLARED, *SECTIONS_DECLARED})
        if extra:
            raise ParamsError(f"runs.{name}.{extra[0]}: unknown key; a run declares {allowed} (the rest is the "
                              "run section's, for every run)")
        study = given.get("study", name if name in STUDIES else None)
        if study not in STUDIES:
            said = "missing" if "study" not in given else f"{study!r} is not a catalogue study"
            raise ParamsError(f"runs.{name}.study: {said}; expected one of {', '.join(STUDIES)}")
        if name in STUDIES and study != name:
            raise ParamsError(f"runs.{name}.study: a run named after the catalogue study {name} trains that study, "
                              f"not {study}; give this run another name")
        runs[name] = {"study": study, **{key: SCHEMA["run"][key][0](f"runs.{name}.{key}", value)
                                         for key, value in given.items() if key in RUN_DECLARED},
                      **{key: _declared_section(f"runs.{name}.{key}", key, given[key])
                         for key in SECTIONS_DECLARED if key in given}}
    return runs


def _declared_section(where: str, section: str, given: Any) -> dict[str, Any]:
    """A run's own values of a section (runs.<run>.modern): its keys and checks; nulls dropped
    (they keep the section's value)."""
    fields = SCHEMA[section]
    if not isinstance(given, Mapping) or not given:
        raise ParamsError(f"{where}: expected a mapping with some of the keys {', '.join(fields)}, got {given!r}")
    extra = sorted(set(given) - set(fields))
    if extra:
        raise ParamsError(f"{where}.{extra[0]}: unknown key; allowed keys: {', '.join(fields)}")
    checked = {key: fields[key][0](f"{where}.{key}", value) for key, value in given.items()}
    return {key: value for key, value in checked.items() if value is not None}


def parse_params(raw: Mapping[str, Any], env: Mapping[str, str], root: Path) -> Params:
    checked = _check_sections(raw)
    runs = _declared_runs(raw.get("runs"))
    run, data, mlf = checked["run"], checked["data"], checked["mlflow"]
    undeclared = next((name for name in run["studies"] if name not in runs), None)
    if undeclared is not None:
        raise ParamsError(f"run.studies: {undeclared!r} is neither a catalogue study ({', '.join(STUDIES)}) nor a run "
                          f"declared under runs:; declare it in params.yaml (runs: {{{undeclared}: {{study: ...}}}}) or, "
                          f"for one experiment, `dvc exp run -S '+runs.{undeclared}={{study: ...}}'`")
    protocols = {runs[name].get("protocol", run["protocol"]) for name in run["studies"]}
    for name, declared in runs.items():  # a run's recipe is read only under the modern protocol
        if declared.get("modern") and declared.get("protocol", run["protocol"]) != "modern":
            raise ParamsError(f"runs.{name}.modern: is set, but the run trains under the "
                              f"{declared.get('protocol', run['protocol'])!r} protocol, which does not read it; declare "
                              f"protocol: modern in runs.{name}, or remove its modern values")
    mirror = env.get(MIRROR_ENV) or data["mirror"]
    tracking_uri = env.get(TRACKING_ENV) or mlf["tracking_uri"] or default_tracking_uri(root)
    params = Params(
        run=RunConfig(**run),
        data=DataConfig(mirror=mirror, verify=data["verify"]),
        mlflow=MlflowConfig(tracking_uri=tracking_uri, log_models=mlf["log_models"]),
        rsn2=RSN2Config(**checked["rsn2"]),
        cuda=CudaConfig(**checked["cuda"]),
        cpu=CpuConfig(**checked["cpu"]),
        hs=HSConfig(**checked["hs"]),
        modern=_modern(checked["modern"], protocols),
        analysis=AnalysisConfig(**checked["analysis"]),
        runs=runs,
    )
    _check_stacking(params)
    return params


def _check_stacking(params: Params) -> None:
    """run.stack_seeds: true trains a dedicated model's seeds together on one set of rows, which a
    run drawing its training rows per seed cannot do (auto then simply does not stack)."""
    if params.run.stack_seeds != "true":
        return
    for name in params.run.studies:
        if params.for_run(name).run.rows_per_seed:
            raise ParamsError(f"run.stack_seeds: true trains a dedicated model's seeds on one set of training rows, but "
                              f"run {name} draws its train_limit rows per seed (run.train_sample: per_seed); set "
                              "run.stack_seeds to auto or false, or run.train_sample to first")


def _modern(section: dict[str, Any], protocols: set[str]) -> ModernConfig:
    """The modern section, which only the modern protocol reads: a value set while no run listed in
    run.studies trains under it would be silently ignored, so it is an error."""
    given = [key for key, value in section.items() if value is not None]
    if given and "modern" not in protocols:
        raise ParamsError(f"modern.{given[0]}: is set ({section[given[0]]!r}) but run.protocol is "
                          f"{'/'.join(sorted(protocols))!r} for every run in run.studies, which does not read the modern "
                          f"section; set run.protocol: modern, or set modern.{given[0]} back to null")
    modern = ModernConfig(**section)
    if modern.epochs is not None and modern.warmup_epochs is not None and modern.warmup_epochs >= modern.epochs:
        raise ParamsError(f"modern.warmup_epochs: {modern.warmup_epochs} leaves no epoch after the warm-up "
                          f"(modern.epochs is {modern.epochs}); expected fewer warm-up epochs than epochs")
    return modern


def load_params(path: Path | str = "params.yaml", env: Mapping[str, str] | None = None) -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: not found (run from the repository root)")
    try:
        from mtlbench.data.taskspec import load_yaml  # a key given twice is an error, not the last one winning

        raw = load_yaml(path.read_text())
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from err
    if raw is None:
        raise ParamsError(f"{path}: the file is empty; expected the sections {', '.join(SCHEMA)} "
                          "(restore it with `git checkout params.yaml`)")
    return parse_params(raw, os.environ if env is None else env, project_root(path.parent))


def check_against_studies(params: Params) -> None:
    """Cross-checks of values against the listed runs' studies and the machine, before any download:
    each entry of run.variants / run.tasks belongs to one of the listed runs' studies, each a run
    declares to its own study, and run.device: cuda has a CUDA device."""
    listed = {name: STUDIES[params.study_of(name)] for name in params.run.studies}
    for key, of in (("variants", lambda s: s.variants), ("tasks", lambda s: s.tasks)):
        checks = [(f"run.{key}", getattr(params.run, key), list(listed.values()))]
        checks += [(f"runs.{name}.{key}", params.runs[name][key], [study])
                   for name, study in listed.items() if key in params.runs.get(name, {})]
        for where, wanted, studies in checks:
            missing = [v for v in wanted or () if not any(v in of(s) for s in studies)]
            if missing:
                valid = "; ".join(f"{s.name}: {', '.join(of(s)[:12])}{', ...' if len(of(s)) > 12 else ''}" for s in studies)
                raise ParamsError(f"{where}: {missing[0]!r} is in none of the studies it applies to; they have {valid}")
    if params.run.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ParamsError("run.device: cuda was requested but torch sees no CUDA device; allowed here: auto, cpu")


def defaults() -> dict[str, dict[str, Any]]:
    """The default params, as params.yaml would spell them (used by tests and docs)."""
    return {section: {key: default for key, (_, default) in fields.items()} for section, fields in SCHEMA.items()}
