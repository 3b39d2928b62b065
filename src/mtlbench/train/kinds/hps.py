"""Hard parameter sharing: one trunk with a head per task, trained under a multitask method
(train/methods), which turns the task losses into gradients."""

from __future__ import annotations

from pathlib import Path

from mtlbench.config import Params, ParamsError
from mtlbench.data.tasks import TaskData, TensorSet
from mtlbench.models import build_shared
from mtlbench.models.dedicated import SHARED
from mtlbench.studies import HPS, Study
from mtlbench.train.kinds.base import VariantKind
from mtlbench.train.kinds.common import (fit_summary, keep_and_save, phase_train_set, predict_each_task, study_accel,
                                         study_protocol, write_seed)
from mtlbench.train.loop import fit, predict_logits
from mtlbench.train.methods import MethodError, check_fits, make_method


def hps_method(study: Study, variant: str, names: tuple[str, ...]) -> tuple[str, dict]:
    """The variant's method and options; per-task options (the fixed scheme's weights) follow
    the tasks run.tasks keeps."""
    spec = study.variant(variant)
    options = spec.method_options
    if "weights" in options:
        order = spec.tasks or study.tasks
        options["weights"] = tuple(options["weights"][order.index(n)] for n in names)
    return spec.method, options


def jsonable(options: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}


def method_code(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(modules, source texts) of the method `name` as a unit runs it: the module its factory comes
    from, or, for a factory written inside the registry (`"sum": lambda n_tasks: Weighted(...)`),
    its source and the modules of what it calls; and the registry's functions that build it."""
    import inspect

    from mtlbench.train import methods

    factory = methods.METHODS[name]
    texts = [inspect.getsource(methods.make_method), inspect.getsource(methods.check_fits)]
    if factory.__module__ != methods.__name__:
        return (factory.__module__,), tuple(texts)
    texts.append(inspect.getsource(factory))
    called = [getattr(methods, n) for n in factory.__code__.co_names if hasattr(methods, n)]
    return tuple(sorted({c.__module__ for c in called if getattr(c, "__module__", "").startswith("mtlbench.")})), tuple(texts)


class HPSKind(VariantKind):
    name = HPS

    def check(self, study, variant, tasks, params):
        """The variant's method exists, takes its options and fits the study's network and the tasks
        the run keeps."""
        spec = study.variant(variant)
        if study.architecture not in SHARED:
            raise ParamsError(f"study {study.name}, variant {variant}: architecture {study.architecture} has no "
                              f"hard-parameter-sharing form; known: {', '.join(SHARED)}")
        try:
            check_fits(spec.method, spec.method_options, len(tasks), SHARED[study.architecture])
        except MethodError as err:
            raise ParamsError(f"study {study.name}, variant {variant}: {err}") from None

    def backward_passes(self, study, variant, n_tasks):
        """A gradient-level method takes one backward pass per task through the shared network."""
        from mtlbench.train.methods import METHODS, GradientMethod

        factory = METHODS[study.variant(variant).method]
        return n_tasks if isinstance(factory, type) and issubclass(factory, GradientMethod) else 1

    def code(self, study, variant):
        modules, texts = method_code(study.variant(variant).method)
        return (type(self).__module__, *modules), texts

    def build_tiny(self, study, variant, specs, shapes):
        return build_shared(study.architecture, shapes[0], tuple(t.n_classes for t in specs), 0)

    def tiny_outputs(self, study, variant, specs, shapes, inputs):
        model = self.build_tiny(study, variant, specs, shapes)
        return model(inputs[0]) if model.shared_representation else model(*inputs)

    def store_spec(self, study, in_shape, n_classes):
        return {"kind": "hps", "architecture": study.architecture, "in_shape": list(in_shape),
                "n_classes": list(n_classes)}

    def train(self, study: Study, variant: str, tasks: list[TaskData], seeds: tuple[int, ...], params: Params,
              out_dir: Path) -> None:
        """The weights the method's steps used are recorded per epoch. A multi-input network (mlp)
        reads each task's own images, paired row by row as RSN2 pairs them; the others read one
        image for every task."""
        protocol = study_protocol(study, params)
        names = tuple(t.spec.name for t in tasks)
        method, options = hps_method(study, variant, names)
        x_train = tasks[0].train.inputs[0]
        in_shape, n_classes = tuple(x_train.shape[1:]), tuple(t.spec.n_classes for t in tasks)
        accel = study_accel(study, params, x_train.device)
        for seed in seeds:
            model = build_shared(study.architecture, in_shape, n_classes, seed).to(x_train.device)
            multi_input = not model.shared_representation
            data = (phase_train_set(tasks, [1.0] * len(tasks)) if multi_input
                    else TensorSet((x_train,), tuple(t.train.targets[0] for t in tasks)))
            result = fit(model, data, protocol, seed, names, label=f"{study.name} {variant} seed={seed}",
                         progress=params.run.progress, accel=accel, method=make_method(method, len(tasks), **options))
            outputs = predict_each_task(model, tasks) if multi_input else predict_logits(model, tasks[0].test.inputs)
            seed_dir = out_dir / f"seed{seed}"
            predictions, sizes = keep_and_save(model, tasks, outputs, seed_dir / "model_hps.pt",
                                               self.store_spec(study, in_shape, n_classes))
            described = {"method": method, **({"method_options": jsonable(options)} if options else {})}
            summaries = {name: {**fit_summary(result, sizes), **described} for name in names}
            write_seed(seed_dir, study, variant, seed, protocol, tasks, summaries, predictions,
                       self.facts(study, variant, summaries))
