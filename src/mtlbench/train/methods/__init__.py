"""Multitask methods: how a step's task losses become the gradients of the model (base.py says
what a method must do). One file per method; `METHODS` maps each name a study or a params file
may use to the class (or factory) that builds it from the number of tasks and its options.

Adding a method: write `train/methods/<name>.py` with a `Method` subclass and add its line to
`METHODS`, or call `register("<name>")` on it from a module of your own (tests/test_methods.py
does, from a temporary module).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from mtlbench.train.methods.aligned_mtl import AlignedMTL
from mtlbench.train.methods.base import GradientMethod, Method, MethodError
from mtlbench.train.methods.cagrad import CAGrad
from mtlbench.train.methods.db_mtl import DBMTL
from mtlbench.train.methods.dwa import DynamicWeightAverage
from mtlbench.train.methods.famo import FAMO
from mtlbench.train.methods.geometric import GeometricMean
from mtlbench.train.methods.graddrop import GradDrop
from mtlbench.train.methods.gradnorm import GradNorm
from mtlbench.train.methods.gradvac import GradVac
from mtlbench.train.methods.imtl import IMTL
from mtlbench.train.methods.loss_level import LossLevel, Weighted, fixed
from mtlbench.train.methods.mgda import MGDA, MGDAUB
from mtlbench.train.methods.nash_mtl import NashMTL
from mtlbench.train.methods.pcgrad import PCGrad
from mtlbench.train.methods.rlw import RandomLossWeighting
from mtlbench.train.methods.uncertainty import Uncertainty

Factory = Callable[..., Method]

METHODS: dict[str, Factory] = {
    # loss level (SPEC.md section 5): one scalar, one backward pass
    "sum": lambda n_tasks: Weighted([1.0] * n_tasks),
    "mean": lambda n_tasks: Weighted([1.0 / n_tasks] * n_tasks),
    "fixed": fixed,
    "geometric": GeometricMean,
    "uncertainty": Uncertainty,
    "dwa": DynamicWeightAverage,
    "rlw": RandomLossWeighting,
    "famo": FAMO,
    "gradnorm": GradNorm,
    "mgda_ub": MGDAUB,
    # gradient level: one backward pass per task through the shared parameters
    "mgda": MGDA,
    "pcgrad": PCGrad,
    "gradvac": GradVac,
    "imtl": IMTL,
    "cagrad": CAGrad,
    "nash_mtl": NashMTL,
    "aligned_mtl": AlignedMTL,
    "db_mtl": DBMTL,
    "graddrop": GradDrop,
}


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator: make a method available under `name` (a name that exists is an error)."""
    def add(factory: Factory) -> Factory:
        if name in METHODS:
            raise ValueError(f"method {name!r} is already registered")
        METHODS[name] = factory
        return factory
    return add


def option_names(name: str) -> tuple[str, ...]:
    """The options a method takes besides the number of tasks (its factory's keyword arguments)."""
    return tuple(p for p in inspect.signature(METHODS[name]).parameters if p != "n_tasks")


def check_method(name: str, options: dict[str, Any] | None = None) -> None:
    """An unknown method or option names the allowed ones."""
    if name not in METHODS:
        raise MethodError(f"method {name!r}; allowed: {', '.join(METHODS)}")
    unknown = sorted(set(options or {}) - set(option_names(name)))
    if unknown:
        allowed = ", ".join(option_names(name)) or "none"
        raise MethodError(f"method {name}: unknown option {unknown[0]!r}; allowed options: {allowed}")


def check_fits(name: str, options: dict[str, Any], n_tasks: int, model_class: type) -> None:
    """Before training: the method exists, takes these options, and the model class offers what
    it needs (several tasks, shared parameters, one shared representation)."""
    check_method(name, options)
    factory = METHODS[name]
    if n_tasks < getattr(factory, "min_tasks", 1):
        raise MethodError(f"method {name} balances several tasks and this run leaves {n_tasks}; "
                          "select more tasks with run.tasks or leave the variant out with run.variants")
    if getattr(factory, "needs_shared", False) and not hasattr(model_class, "shared_parameters"):
        raise MethodError(f"method {name} needs the shared parameters of the model, and {model_class.__name__} "
                          "declares none (a shared_parameters() method)")
    if getattr(factory, "needs_representation", False) and not getattr(model_class, "shared_representation", False):
        raise MethodError(f"method {name} needs one representation shared by every task's input, and "
                          f"{model_class.__name__} gives each task its own input; use mgda instead")


def make_method(name: str, n_tasks: int, weights=None, **options: Any) -> Method:
    """The method `name` for `n_tasks` tasks; `weights` is the fixed scheme's option."""
    if weights is not None:
        options["weights"] = weights
    check_method(name, options)
    return METHODS[name](n_tasks, **options)


def kind_of(method: Method) -> str:
    """How a method acts: on the combined loss, on the shared gradients, or through learned weights."""
    if isinstance(method, GradientMethod):
        return "gradient"
    if isinstance(method, LossLevel):
        return "loss"
    return "representation gradients" if method.needs_representation else "loss weights from gradient norms"


def methods_table() -> list[str]:
    """The registry as a Markdown table: each method's paper, kind, options with their defaults, the
    authors' code it was compared with, and every difference from that code (README, generated)."""
    lines = ["| method | paper | kind | options (default) | authors' code compared | differences from the authors' code |",
             "|---|---|---|---|---|---|"]
    for name, factory in METHODS.items():
        method = factory(2, weights=(0.5, 0.5)) if name == "fixed" else factory(2)
        options = ", ".join(f"`{p.name}={p.default!r}`" for p in inspect.signature(factory).parameters.values()
                            if p.name != "n_tasks" and p.default is not inspect.Parameter.empty)
        if name == "fixed":
            options = "`weights` (required)"
        lines.append(f"| `{name}` | {method.paper or '-'} | {kind_of(method)} | {options or '-'} | "
                     f"{method.reference or '-'} | {method.deviations or '-'} |")
    return lines


__all__ = ["METHODS", "GradientMethod", "LossLevel", "Method", "MethodError", "DynamicWeightAverage",
           "GeometricMean", "Uncertainty", "Weighted", "check_fits", "check_method", "kind_of", "make_method", "methods_table", "option_names",
           "register"]
