"""The benchmark runs end to end on a tiny size and writes its DVC metric (no speed is asserted:
speed targets live in the benchmark's numbers, not in tests)."""

import json
import os

import torch

from mtlbench.bench.throughput import main


def test_bench_writes_metrics_for_every_model(tmp_path, capsys):
    out = tmp_path / "bench.json"
    main(["--device", "cpu", "--models", "mlp", "rsn2_mlp", "--rows", "600", "--repeats", "1", "--seeds", "2",
          "--out", str(out)])
    result = json.loads(out.read_text())
    assert set(result["models"]) == {"mlp", "rsn2_mlp"} and result["matmul_peak_gflops"] > 0
    assert result["omp_wait_policy"] == os.environ["OMP_WAIT_POLICY"].lower()  # conftest's; it moves mlp speed 15-20%
    for entry in result["models"].values():
        assert entry["images_per_s"] > 0 and entry["plain_images_per_s"] > 0
        assert 0 < entry["data_path_fraction"] < 1 and entry["train_gflops"] > 0
        # measured against the peak taken just before this model, not the run's first one
        assert entry["fraction_of_matmul_peak"] == entry["train_gflops"] / entry["matmul_peak_gflops"]
    assert result["matmul_peak_gflops"] == max(e["matmul_peak_gflops"] for e in result["models"].values())
    assert result["models"]["mlp"]["stacked_images_per_s"] > 0 and "stacked_seeds" not in result["models"]["rsn2_mlp"]
    assert "mlp" in capsys.readouterr().out


def test_ablation_times_one_seed_and_a_stack_under_each_option_set():
    """What `cuda.* = auto` and `run.stack_seeds` are chosen from (run on CUDA; here with the CPU's
    one valid option set, and one that only a convolution takes)."""
    from mtlbench.bench.throughput import _data, ablation
    from mtlbench.train.accel import Accel

    options = {"eager fp32": Accel(), "channels_last": Accel(channels_last=True)}
    data = _data(600, 1, torch.device("cpu"))
    one, stacked = ablation("mlp", data, 1, torch.device("cpu"), 2, options)
    assert set(one) == set(stacked) == {"eager fp32"} and min(one.values()) > 0 and min(stacked.values()) > 0
    one, stacked = ablation("rsn2_mlp", _data(600, 2, torch.device("cpu")), 1, torch.device("cpu"), 2, options)
    assert set(one) == {"eager fp32"} and stacked == {}  # RSN2 packs tasks, not seeds


def test_keras_side_needs_an_interpreter_with_tensorflow(tmp_path):
    """--keras names the script that failed and what it needs; nothing is written."""
    import sys

    import pytest

    out = tmp_path / "bench.json"
    with pytest.raises(SystemExit, match=r"keras_side\.py failed \(an interpreter with tensorflow installed"):
        main(["--device", "cpu", "--models", "mlp", "--rows", "600", "--repeats", "1", "--seeds", "1",
              "--keras", sys.executable, "--out", str(out)])
    assert not out.exists()


def test_keras_side_by_side_where_tensorflow_is_available(tmp_path):
    """The original code's speed next to mtlbench's. TensorFlow is not a dependency: set
    MTLBENCH_KERAS_PYTHON to an interpreter that has it (skipped otherwise)."""
    import pytest

    python = os.environ.get("MTLBENCH_KERAS_PYTHON")
    if not python:
        pytest.skip("MTLBENCH_KERAS_PYTHON not set")
    out = tmp_path / "bench.json"
    main(["--device", "cpu", "--models", "mlp", "--rows", "1024", "--repeats", "1", "--seeds", "1",
          "--keras", python, "--out", str(out)])
    results = json.loads(out.read_text())
    assert results["tensorflow_onednn"] == os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1")  # Keras' fastest CPU path
    entry = results["models"]["mlp"]
    assert entry["keras_images_per_s"] > 0
    assert entry["speedup_vs_keras"] == entry["images_per_s"] / entry["keras_images_per_s"]


def test_the_pilot_reads_one_fit_under_both_selection_rules_on_validation_data():
    """Lowest validation loss (what the protocol restores) and highest validation accuracy can pick
    different epochs of one fit: here epoch 2 and epoch 3."""
    from mtlbench.bench.pilot import selections

    history = [{"val_loss": 0.9, "val_t_accuracy": 0.80}, {"val_loss": 0.5, "val_t_accuracy": 0.86},
               {"val_loss": 0.6, "val_t_accuracy": 0.87}]
    picked = selections(history, "t")
    assert picked["val_accuracy_per_epoch"] == [0.80, 0.86, 0.87]
    assert picked["by_val_loss"] == {"epoch": 2, "val_accuracy": 0.86}
    assert picked["by_val_accuracy"] == {"epoch": 3, "val_accuracy": 0.87}


def test_the_pilot_names_a_task_the_study_lacks(capsys):
    import pytest

    from mtlbench.bench.pilot import main as pilot

    with pytest.raises(SystemExit, match="--tasks: shoes not in mnist_fashion_mlp"):
        pilot(["--tasks", "shoes"])
