"""The plan the train stage prints before training: counts of kept and to-train units per variant,
an estimated wall time from a timing probe or a unit's recorded time, the quick path for long runs."""

import math

import torch

from mtlbench.studies import STUDIES
from mtlbench.train.kinds import KINDS
from mtlbench.train.plan import LONG_RUN_S, plan_lines, probe_batch, step_seconds
from mtlbench.train.units import Unit

STUDY = STUDIES["mnist_fashion_mlp"]


def test_plan_lines_count_kept_and_to_train_units_and_name_the_quick_path_for_long_runs():
    units = [Unit(v, ("digits", "fashion"), (s,)) for v in ("dedicated", "rsn2") for s in (0, 1, 2)]
    todo = units[2:]  # dedicated seeds 0, 1 kept
    estimates = {u: 600.0 for u in todo}
    lines = plan_lines(STUDY, units, todo, estimates, torch.device("cpu"))
    assert lines[0] == ("[mnist_fashion_mlp] plan on cpu: 6 units, 2 kept, 4 to train; "
                        "estimated at most 40 min (early stopping usually ends sooner)")
    assert lines[1].split() == "dedicated seeds 0, 1, 2: 2 kept, 1 to train, up to 10 min a unit".split()
    assert "make smoke" in lines[-1] and 4 * 600 > LONG_RUN_S
    short = plan_lines(STUDY, units, todo[:1], {todo[0]: 30.0}, torch.device("cpu"))
    assert "30 s" in short[0] and not any("make smoke" in line for line in short)
    unknown = plan_lines(STUDY, units, todo, {u: None for u in todo}, torch.device("cpu"))
    assert unknown[0].endswith("4 to train")  # no estimate where the data's size is unknown


def test_the_probe_times_a_real_step_and_gradient_methods_count_a_backward_pass_per_task():
    seconds = step_seconds(STUDY, "rsn2", STUDY.specs(), 8, torch.device("cpu"))
    assert 0 < seconds < 10 and math.isfinite(seconds)
    hps = STUDIES["mnist_fashion_hps"]
    assert KINDS["hps"].backward_passes(hps, "hps_pcgrad", 2) == 2 and KINDS["hps"].backward_passes(hps, "hps_sum", 2) == 1
    assert KINDS["rsn2"].backward_passes(STUDY, "rsn2", 2) == 1


def test_the_probe_steps_on_the_batch_the_run_takes():
    assert probe_batch(512, [90]) == 90  # one step of all 90 rows an epoch has
    assert probe_batch(512, [90, 2700]) == 512  # dedicated: the larger task's full batches
    assert probe_batch(64, [1000]) == 64
    assert probe_batch(512, [0]) == 1


def test_the_likely_estimate_uses_the_epochs_the_last_results_trained():
    from mtlbench.train.plan import recorded_epochs

    units = [Unit("rsn2", ("digits", "fashion"), (s,)) for s in (0, 1)]
    lines = plan_lines(STUDY, units, units, {u: 7200.0 for u in units}, torch.device("cpu"), likely=600.0)
    assert "estimated 10 min with the epochs its last results trained (reports/studies/), at most 4.0 h" in lines[0]
    assert not any("make smoke" in line for line in lines)  # judged by the likely time, not the bound
    details = {"variants": {"dedicated": {"digits": {"epochs": {"mean": 12.5}}}}}
    assert recorded_epochs(details, "dedicated", "digits", 100) == 12.5
    assert recorded_epochs(details, "dedicated", "digits", 3) == 3  # within the run's cap
    assert recorded_epochs(details, "rsn2", "digits", 100) is None and recorded_epochs({}, "dedicated", "digits", 9) is None


def test_a_unit_estimate_is_steps_times_epochs_times_the_probed_step(prepared):
    """Both estimates from one pass over the unit: the upper bound with every epoch the protocol
    allows, the likely one with the recorded epochs; the probe's step time given (no timing here)."""
    from mtlbench.config import parse_params
    from mtlbench.train.kinds.common import study_protocol
    from mtlbench.train.plan import estimate_unit

    params = parse_params({"run": {"seeds": [0], "device": "cpu", "train_limit": 100}}, {}, prepared.parent)
    protocol = study_protocol(STUDY, params)
    steps = -(-int(100 * (1 - protocol.val_fraction)) // protocol.batch_size)  # per epoch, each task's model
    unit = Unit("dedicated", ("digits", "fashion"), (0,))
    details = {"variants": {"dedicated": {"digits": {"epochs": {"mean": 4.0}}, "fashion": {"epochs": {"mean": 6.0}}}}}
    upper, likely = estimate_unit(STUDY, unit, params, prepared, torch.device("cpu"), {"dedicated": 2.0}, details)
    per_model_step = 2.0 / 2  # the probe times both dedicated models' steps together
    assert upper == 2 * steps * protocol.max_epochs * per_model_step
    assert likely == steps * (4 + 6) * per_model_step
    assert estimate_unit(STUDY, unit, params, prepared, torch.device("cpu"), {"dedicated": 2.0}, {})[1] is None


def test_the_eta_is_wall_time_scaled_by_the_estimates_so_units_trained_side_by_side_count_once(capsys):
    from mtlbench.train.runner import UnitProgress

    now = [0.0]
    units = [Unit("dedicated", ("digits", "fashion"), (s,)) for s in range(4)]
    estimates = {units[0]: 100.0, units[1]: 100.0, units[2]: 100.0, units[3]: 300.0}
    progress = UnitProgress("s", estimates, True, total=5, clock=lambda: now[0])  # one unit kept
    now[0] = 120.0  # two units trained side by side (Ray), each taking 120 s
    progress.finished(units[0], 120.0)
    progress.finished(units[1], 120.0)
    assert progress.eta() == 120.0 / 200.0 * 400.0  # not 2 x 120 s of unit time per 200 s estimated
    assert "unit 3/5 trained: dedicated/seed1 in 120s (ETA 4.0 min for 2 more)" in capsys.readouterr().err
    unknown = UnitProgress("s", {units[0]: None, units[1]: 50.0}, False, total=2, clock=lambda: now[0])
    now[0] = 180.0
    unknown.finished(units[0], 60.0)
    assert unknown.eta() == 60.0  # no estimate for a finished unit: wall time per unit, times units left
