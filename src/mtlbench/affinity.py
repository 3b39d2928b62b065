"""Inter-task affinity early in training: measured before the outcome, set against it after.

For each seed of a run, the study's hard-parameter-sharing network is trained for its first
STEPS optimizer steps under the unitary sum exactly as the run's `hps_sum` unit trains them (same
initialisation, rows, order, dropout, optimizer and learning-rate schedule), and at every one of
them two signals are read on the shared trunk before the step is taken. A window of steps, not of
epochs, so that runs of different sizes are measured alike (at 500 rows an epoch is 2 steps):

- gradient cosine: the cosine between two tasks' gradients of the shared parameters (the conflict
  PCGrad, Yu et al. 2020, acts on; Standley et al. 2020 and Fifty et al. 2021 compare against it);
- lookahead affinity (Fifty et al., NeurIPS 2021, "Efficiently Identifying Task Groupings", Eqs. 1-2):
  Z_{i->j} = 1 - L_j(shared weights after a gradient step on task i alone) / L_j(shared weights
  now), on the same batch, the step of Eq. 1 (the gradient times the step's learning rate), divided
  by that learning rate as the authors' code does so that warm-up steps count alike. Z_{i->j} > 0:
  a step for i lowers j's loss. Their code steps with its optimizer's rule (SGD with momentum); the
  optimizer here is AdamW, whose first, normalised steps move every weight by about the learning
  rate whatever its gradient, and a lookahead through it measured that perturbation more than the
  gradient's direction (a synthetic related task scored far below a random one), hence Eq. 1.

The measurement draws no random numbers the training step sees (the generator's state is restored,
and every forward of one step sees the step's dropout mask) and puts the weights back, so the
trajectory is the unit's own (tests/test_affinity.py checks the weights and Adam's moments after
the epoch against a plain epoch).

This module is not imported by the train stage: it is no part of any unit's key, and editing it
re-trains nothing (train/units.py). That is why `AffinityRunner._batch` repeats the three lines of
EpochRunner._step that gather a batch instead of sharing them.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations
from pathlib import Path

import numpy as np
import torch

from mtlbench.config import Params
from mtlbench.data.tasks import TensorSet, load_tasks, rows_for_seed
from mtlbench.models import build_shared
from mtlbench.models.dedicated import SHARED
from mtlbench.studies import Study
from mtlbench.train import augment
from mtlbench.train.accel import configure_backends
from mtlbench.train.epoch import EpochRunner, as_tuple
from mtlbench.train.kinds.common import phase_train_set, study_accel, study_protocol
from mtlbench.train.methods import Weighted
from mtlbench.train.objectives import task_scores
from mtlbench.train.optim import make_optimizer
from mtlbench.train.training import resolve_device

STEPS = 50  # the window: the first optimizer steps, every one measured (the authors average every 10th over an epoch)
MAX_TASKS = 10  # K^2 signals from K backward passes a step: cifar100_binary's 140 tasks are measured through run.tasks


def pair_key(i: str, j: str, directed: bool) -> str:
    return f"{i}->{j}" if directed else f"{i}|{j}"


class AffinityRunner(EpochRunner):
    """An EpochRunner that measures both signals before each measured step, then takes the step."""

    def __init__(self, *args, steps: int = STEPS, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps, self.calls, self.cosines, self.lookaheads = steps, 0, [], []
        self.shared = [p for p in self.model.shared_parameters() if p.requires_grad]

    def epoch(self, *args, **kwargs):
        self.epochs_run = getattr(self, "epochs_run", 0) + 1
        return super().epoch(*args, **kwargs)

    def _batch(self, index, moves):
        picks = index * len(self.train.targets) if len(index) == 1 else index
        inputs = [x[i] if m is None else augment.apply(x[i], m) for x, i, m in zip(self.train.inputs, picks, moves)]
        return inputs, [y[i] for y, i in zip(self.train.targets, picks)]

    def _step(self, index, moves):
        if self.calls < self.steps:
            inputs, targets = self._batch(index, moves)
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                cosine, lookahead = self.measure(inputs, targets)
            self.cosines.append(cosine)
            self.lookaheads.append(lookahead)
            self.optimizer.zero_grad(set_to_none=True)
        self.calls += 1
        super()._step(index, moves)

    def rng_state(self) -> tuple:
        return torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None

    def losses(self, inputs, targets, state: tuple) -> torch.Tensor:
        torch.set_rng_state(state[0])  # every forward of this step under the step's dropout mask
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], self.device)
        return task_scores(as_tuple(self.model(*inputs)), targets, self.objective)[0]

    def measure(self, inputs, targets) -> tuple[np.ndarray, np.ndarray]:
        """([K, K] gradient cosines, [K, K] lookahead affinities Z[i, j] = Z_{i->j}) at this step."""
        state = self.rng_state()
        losses = self.losses(inputs, targets, state)
        grads = [torch.autograd.grad(loss, self.shared, retain_graph=True) for loss in losses]
        flat = torch.stack([torch.cat([g.flatten() for g in task]) for task in grads])
        unit = flat / flat.norm(dim=1, keepdim=True).clamp(min=1e-30)
        cosine = (unit @ unit.T).detach().double().numpy()
        lr = float(self.optimizer.param_groups[0]["lr"])
        before = losses.detach()
        lookahead = np.full((len(grads), len(grads)), np.nan)
        for i, task_grads in enumerate(grads):
            after = self.after_step_on(task_grads, lr, inputs, targets, state)
            if lr > 0:
                lookahead[i] = ((1 - after / before) / lr).double().numpy()
        return cosine, lookahead

    def after_step_on(self, task_grads, lr: float, inputs, targets, state) -> torch.Tensor:
        """The task losses after a gradient step of size `lr` on one task's gradient of the shared
        weights alone (Eq. 1; the heads and everything else stay), then the weights put back."""
        kept = [p.detach().clone() for p in self.shared]
        with torch.no_grad():
            for p, g in zip(self.shared, task_grads):
                p.sub_(lr * g)
            after = self.losses(inputs, targets, state)
            for p, weights in zip(self.shared, kept):
                p.copy_(weights)
        return after


def seed_affinity(study: Study, tasks, seed: int, params: Params) -> dict:
    """Both signals over the first STEPS steps of one seed's unitary-sum training (whole epochs of
    the run's own schedule until they are done), averaged over the steps; `tasks`: the run's
    TaskData in study order, cut to the seed's rows."""
    protocol = study_protocol(study, params)
    names = [t.spec.name for t in tasks]
    x = tasks[0].train.inputs[0]
    model = build_shared(study.architecture, tuple(x.shape[1:]), tuple(t.spec.n_classes for t in tasks), seed).to(x.device)
    data = (TensorSet((x,), tuple(t.train.targets[0] for t in tasks)) if model.shared_representation
            else phase_train_set(tasks, [1.0] * len(tasks)))
    torch.manual_seed(seed)  # as loop.fit seeds dropout
    train, _ = data.split_validation(protocol.val_fraction)
    scheme = Weighted([1.0] * len(tasks)).to(x.device)
    scheme.bind(model, list(model.parameters()))
    accel = replace(study_accel(study, params, x.device), graphs=False, compile=False)
    optimizer = make_optimizer([*model.parameters(), *scheme.parameters()], protocol, x.device, accel)
    runner = AffinityRunner(model, optimizer, train, protocol, scheme, accel)
    shuffle = torch.Generator().manual_seed(seed)  # one generator over the epochs, as loop.fit's
    for _ in range(protocol.max_epochs):
        if runner.calls >= STEPS:
            break
        runner.epoch(shuffle)
    cosine, lookahead = np.mean(runner.cosines, axis=0), np.nanmean(runner.lookaheads, axis=0)
    return {"steps_measured": len(runner.cosines), "epochs": runner.epochs_run,
            "cosine": {pair_key(a, b, False): float(cosine[i, j]) for (i, a), (j, b) in combinations(enumerate(names), 2)},
            "lookahead": {pair_key(a, b, True): float(lookahead[i, j])
                          for i, a in enumerate(names) for j, b in enumerate(names) if i != j}}


def run_affinity(study: Study, params: Params, prepared_dir: Path, tasks_dir: Path, root: Path = Path(".")) -> dict:
    """Both signals for every seed of a run, with their means over seeds (`summary`: the mean
    pairwise cosine and the mean lookahead over ordered pairs, one number each per run)."""
    names = params.run.tasks or study.tasks
    if study.architecture not in SHARED:
        return {"measured": False, "why": f"architecture {study.architecture} has no hard-parameter-sharing form"}
    if not 2 <= len(names) <= MAX_TASKS:
        return {"measured": False, "why": f"{len(names)} tasks: the signals are measured between 2 and {MAX_TASKS} "
                                          "tasks (fewer: run.tasks)"}
    device = resolve_device(params.run.device)
    configure_backends(study_accel(study, params, device))
    specs = study.specs(root)
    limit = None if params.run.rows_per_seed else params.run.train_limit
    loaded = load_tasks([specs[t] for t in names], prepared_dir, tasks_dir, limit, device)
    seeds = {}
    for seed in params.run.seeds:
        tasks = rows_for_seed(loaded, params.run.train_limit, seed) if params.run.rows_per_seed else loaded
        seeds[str(seed)] = seed_affinity(study, tasks, seed, params)
    mean = lambda key: float(np.mean([v for s in seeds.values() for v in s[key].values()]))  # noqa: E731
    return {"measured": True, "window": f"the first {STEPS} optimizer steps of unitary-sum training", "seeds": seeds,
            "summary": {"cosine": mean("cosine"), "lookahead": mean("lookahead")}}
