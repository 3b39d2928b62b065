"""`python -m mtlbench.bench`: training throughput on this machine, side by side.

For each model (dedicated mlp, dedicated cnn28, a two-task RSN2 mlp) it times
  plain     a typical user's loop: DataLoader(TensorDataset) with shuffle, nn.Flatten, NCHW
  mtlbench  one seed through mtlbench's own epoch loop (device-resident data, index slices)
  stacked   N seeds of a dedicated model trained together (run.stack_seeds), images of all seeds
  keras     with --keras PYTHON: the original code's Keras model.fit, run by that interpreter
            (an environment with TensorFlow; see keras_side.py), for mlp and cnn28
on the same synthetic batches, and reports images/s, time per epoch (48000 training rows, the
keras-faithful split of MNIST), the speed-up, the fraction of the machine's measured fp32 matmul
peak the training step reaches (FLOPs counted by torch.utils.flop_counter), and the share of the
step spent on the data path (batch selection). Results go to bench/bench.json, kept out of the
study metrics that `dvc exp show` lists; `dvc metrics diff --targets bench/bench.json` compares them
over commits. Timings are wall-clock medians of repeated epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from mtlbench.bench.keras_side import MODELS as KERAS_MODELS
from mtlbench.data.tasks import TensorSet
from mtlbench.fileio import write_json
from mtlbench.models import build_dedicated
from mtlbench.models.layout import with_chw_flatten
from mtlbench.models.rsn2 import RSN2Net, init_rsn2
from mtlbench.runtime import allocator_in_use, omp_wait_policy
from mtlbench.train.accel import OPTIONS, Accel, configure_backends, resolve_accel
from mtlbench.train.epoch import EpochRunner
from mtlbench.train.optim import make_optimizer
from mtlbench.train.masks import compute_masks
from mtlbench.train.multiseed import seed_stack
from mtlbench.train.protocols import KERAS_FAITHFUL as PROTOCOL
from mtlbench.train.methods import Weighted
from mtlbench.train.training import resolve_device

EPOCH_ROWS = 48000
AUTO_SETTINGS = {option: "auto" for option in OPTIONS}
BATCH = PROTOCOL.batch_size  # keras-faithful's 512


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak_gflops(device: torch.device, size: int = 2048, repeats: int = 10,
                       dtype: torch.dtype = torch.float32, tf32: bool = False) -> float:
    """A large product's rate (random data, never zeros): fp32 by default; on CUDA also with TF32
    tensor cores or in bf16, the peaks that the matching cuda.* options are measured against."""
    configure_backends(Accel(tf32=tf32))
    a, b = (torch.rand(size, size, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return repeats * 2 * size**3 / (time.perf_counter() - start) / 1e9


def numpy_matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
    """The same product through numpy's BLAS: on AMD CPUs, PyTorch's MKL runs slower code paths than
    numpy's OpenBLAS (measured here: 110 vs 158 GFLOP/s), so the machine's peak is the larger one."""
    import numpy as np

    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    for _ in range(3):
        a @ a
    start = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return repeats * 2 * size**3 / (time.perf_counter() - start) / 1e9


def _model(name: str, device: torch.device) -> tuple[torch.nn.Module, int]:
    if name == "rsn2_mlp":
        model = init_rsn2(RSN2Net("mlp", ((1, 28, 28),) * 2, (10, 10)), seed=0)
        compute_masks(model, "magnitude", 0.1)
        return model.to(device), 2
    return build_dedicated(name, (1, 28, 28), 10, seed=0).to(device), 1


def _data(rows: int, streams: int, device: torch.device) -> TensorSet:
    g = torch.Generator().manual_seed(0)
    return TensorSet(tuple(torch.rand(rows, 1, 28, 28, generator=g).to(device) for _ in range(streams)),
                     tuple(torch.randint(0, 10, (rows,), generator=g).to(device) for _ in range(streams)))


def step_flops(model: torch.nn.Module, data: TensorSet) -> int:
    batch = data.rows(slice(0, BATCH))
    with FlopCounterMode(display=False) as counter:
        outputs = model(*batch.inputs)
        outputs = (outputs,) if isinstance(outputs, torch.Tensor) else outputs
        sum(F.cross_entropy(o, y) for o, y in zip(outputs, batch.targets)).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def _time_epochs(one_epoch, repeats: int, device: torch.device) -> float:
    """Median wall time of `repeats` epochs after one untimed epoch (kernels, allocator, graph capture)."""
    times = []
    for _ in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        one_epoch()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def time_mtlbench(model, data: TensorSet, repeats: int, device, accel: Accel) -> float:
    configure_backends(accel)
    optimizer = make_optimizer(model.parameters(), PROTOCOL, device, accel)
    runner = EpochRunner(model, optimizer, data, PROTOCOL, Weighted([1.0] * len(data.targets)).to(device), accel=accel)
    shuffle = torch.Generator().manual_seed(0)
    return _time_epochs(lambda: runner.epoch(shuffle), repeats, device)


def is_stacked(name: str, n_seeds: int) -> bool:
    """Whether the `stacked` measurement applies: seeds of a dedicated model (RSN2 packs tasks)."""
    return name != "rsn2_mlp" and n_seeds > 1


def time_stacked(name: str, data: TensorSet, n_seeds: int, repeats: int, device, accel: Accel) -> float:
    configure_backends(accel)
    stack = seed_stack(name, (1, 28, 28), 10, range(n_seeds)).to(device)
    stacked = TensorSet(data.inputs * n_seeds, data.targets * n_seeds)
    optimizer = make_optimizer(stack.parameters(), PROTOCOL, device, accel, copies=n_seeds)
    runner = EpochRunner(stack, optimizer, stacked, PROTOCOL, Weighted([1.0] * n_seeds).to(device), accel=accel)
    shuffles = [torch.Generator().manual_seed(s) for s in range(n_seeds)]
    return _time_epochs(lambda: runner.epoch(shuffles), repeats, device)


def _pytorch_defaults() -> None:
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.deterministic = False


def time_plain(model, data: TensorSet, repeats: int, device) -> float:
    """What a typical PyTorch user writes (the baseline mtlbench is measured against): host tensors,
    a shuffling DataLoader, a copy to the device per batch, PyTorch's default backend settings."""
    _pytorch_defaults()
    host = [t.cpu() for t in (*data.inputs, *data.targets)]
    loader = DataLoader(TensorDataset(*host), batch_size=BATCH, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    k = len(data.inputs)

    def one_epoch() -> None:
        model.train()
        for tensors in loader:
            tensors = [t.to(device) for t in tensors]
            outputs = model(*tensors[:k])
            outputs = (outputs,) if isinstance(outputs, torch.Tensor) else outputs
            loss = sum(F.cross_entropy(o, y) for o, y in zip(outputs, tensors[k:]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return _time_epochs(one_epoch, repeats, device)


ABLATION = {
    "eager fp32": Accel(),
    "eager tf32": Accel(tf32=True),
    "graphs fp32": Accel(graphs=True),
    "graphs tf32": Accel(graphs=True, tf32=True),
    "graphs tf32 bf16": Accel(graphs=True, tf32=True, bf16=True),
    "graphs tf32 channels_last": Accel(graphs=True, tf32=True, channels_last=True),
    "graphs tf32 compile": Accel(graphs=True, tf32=True, compile=True),
    "graphs tf32 channels_last compile": Accel(graphs=True, tf32=True, channels_last=True, compile=True),
    "graphs tf32 bf16 channels_last": Accel(graphs=True, tf32=True, bf16=True, channels_last=True),
    "graphs tf32 bf16 channels_last compile": Accel(graphs=True, tf32=True, bf16=True, channels_last=True, compile=True),
}


def ablation(name: str, data: TensorSet, repeats: int, device, n_seeds: int,
             options: dict[str, Accel] = ABLATION) -> tuple[dict[str, float], dict[str, float]]:
    """Images/s under each option set (CUDA; what `cuda.* = auto` is chosen from): of one seed, and
    of `n_seeds` stacked seeds of a dedicated model (all seeds' images; what `run.stack_seeds` and a
    stack's options are chosen from). Compile is left out for stacks: ~15 s per model does not pay."""
    one, stacked = {}, {}
    for label, accel in options.items():
        if accel.channels_last and name != "cnn28":
            continue
        started = time.perf_counter()
        one[label] = len(data) / time_mtlbench(_model(name, device)[0], data, repeats, device, accel)
        line = f"  {name:9s} {label:38s} {one[label]:10.0f} img/s"
        if is_stacked(name, n_seeds) and not accel.compile:
            stacked[label] = n_seeds * len(data) / time_stacked(name, data, n_seeds, repeats, device, accel)
            line += f"  {n_seeds} seeds stacked {stacked[label]:10.0f} img/s (x{stacked[label] / one[label]:.2f})"
        print(f"{line}  ({time.perf_counter() - started:.0f} s incl. compile)", flush=True)
    return one, stacked


def time_data_path(data: TensorSet, repeats: int, device) -> float:
    """Batch selection alone (permutation + index slices), per epoch."""
    shuffle = torch.Generator().manual_seed(0)
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        order = torch.randperm(len(data), generator=shuffle).to(device)
        for s in range(0, len(data), BATCH):
            data.rows(order[s : s + BATCH])
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_keras(python: str, models: list[str], rows: int, repeats: int) -> dict:
    """Images/s of the original Keras code per model, from keras_side.py run by `python`.

    TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512 VNNI or newer; on
    this AVX2 machine they made Keras' cnn28 1.6-1.9x faster (126 -> 199-236 images/s), so Keras
    gets them unless the caller set TF_ENABLE_ONEDNN_OPTS: the comparison is against its best."""
    script = Path(__file__).with_name("keras_side.py")
    env = {"TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", **os.environ}
    done = subprocess.run([python, str(script), "--models", *models, "--rows", str(rows), "--repeats", str(repeats)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"--keras {python}: {script.name} failed (an interpreter with tensorflow installed is "
                         f"needed):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def fp32_peak(device: torch.device) -> dict[str, float]:
    """The machine's fp32 matmul peak now; on CPU the faster of PyTorch's and numpy's BLAS."""
    if device.type == "cuda":
        peak = matmul_peak_gflops(device, 8192)
        return {"matmul_peak_gflops": peak, "torch_matmul_gflops": peak, "numpy_matmul_gflops": 0.0}
    torch_peak, numpy_peak = matmul_peak_gflops(device), numpy_matmul_peak_gflops()
    return {"matmul_peak_gflops": max(torch_peak, numpy_peak), "torch_matmul_gflops": torch_peak,
            "numpy_matmul_gflops": numpy_peak}


def run(models: list[str], rows: int, repeats: int, device: torch.device, n_seeds: int, with_ablation: bool = False,
        keras_python: str | None = None) -> dict:
    """Times each model in turn. A shared VM's speed drifts 10-30% within minutes, so each model is
    timed right after its own peak measurement (its fraction of peak uses that one) and its Keras run;
    the run's `matmul_peak_gflops` is the best of those measurements."""
    results = {"device": str(device), "machine": platform.processor() or platform.machine(),
               "threads": torch.get_num_threads(), "torch": torch.__version__, "allocator": allocator_in_use(),
               "omp_wait_policy": omp_wait_policy(), "rows_timed": rows, "models": {}}
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name(device)
        results["tf32_matmul_gflops"] = matmul_peak_gflops(device, 8192, tf32=True)
        results["bf16_matmul_gflops"] = matmul_peak_gflops(device, 8192, dtype=torch.bfloat16)
    peaks = []
    for name in models:
        model, streams = _model(name, device)
        data = _data(rows, streams, device)
        flops = step_flops(model, data)
        accel = resolve_accel(AUTO_SETTINGS, AUTO_SETTINGS, "mlp" if name == "rsn2_mlp" else name, device)
        peaks.append(fp32_peak(device))
        peak = peaks[-1]["matmul_peak_gflops"]
        keras = time_keras(keras_python, [name], rows, repeats) if keras_python and name in KERAS_MODELS else None
        ours = time_mtlbench(model, data, repeats, device, accel)
        own_peak = results.get("bf16_matmul_gflops" if accel.bf16 else "tf32_matmul_gflops" if accel.tf32 else "", peak)
        plain = time_plain(with_chw_flatten(_model(name, device)[0]), data, repeats, device)
        data_path = time_data_path(data, repeats, device)
        steps = -(-rows // BATCH)
        entry = {
            "images_per_s": rows / ours,
            "plain_images_per_s": rows / plain,
            "speedup_vs_plain": plain / ours,
            "epoch_s": ours * EPOCH_ROWS / rows,
            "plain_epoch_s": plain * EPOCH_ROWS / rows,
            "train_gflops": flops * steps / ours / 1e9,
            "matmul_peak_gflops": own_peak,
            "fraction_of_matmul_peak": flops * steps / ours / 1e9 / own_peak,
            "data_path_fraction": data_path / ours,
            "accel": {k: v for k, v in vars(accel).items()},
        }
        if keras is not None:
            results["tensorflow"], results["tensorflow_onednn"] = keras["tensorflow"], keras["onednn"]
            entry["keras_images_per_s"] = keras["images_per_s"][name]
            entry["speedup_vs_keras"] = entry["images_per_s"] / entry["keras_images_per_s"]
        if is_stacked(name, n_seeds):
            stacked = time_stacked(name, data, n_seeds, repeats, device, accel)
            entry["stacked_seeds"] = n_seeds
            entry["stacked_images_per_s"] = n_seeds * rows / stacked
            entry["stacked_speedup_vs_one_seed"] = n_seeds * ours / stacked
        if with_ablation and device.type == "cuda":
            entry["ablation_images_per_s"], stacks = ablation(name, data, repeats, device, n_seeds)
            if stacks:
                entry["ablation_stacked_images_per_s"] = stacks
        results["models"][name] = entry
        print(f"{name:9s} mtlbench {entry['images_per_s']:9.0f} img/s ({entry['epoch_s']:6.1f} s/epoch)  "
              f"plain {entry['plain_images_per_s']:9.0f} img/s  x{entry['speedup_vs_plain']:.2f}  "
              f"{entry['train_gflops']:7.1f} GFLOP/s = {entry['fraction_of_matmul_peak']:.0%} of matmul peak "
              f"({entry['matmul_peak_gflops']:.0f} just before)  "
              f"data path {entry['data_path_fraction']:.1%}"
              + (f"  keras {entry['keras_images_per_s']:9.0f} img/s (x{entry['speedup_vs_keras']:.2f})"
                 if "keras_images_per_s" in entry else "")
              + (f"  {n_seeds} seeds stacked {entry['stacked_images_per_s']:9.0f} img/s "
                 f"(x{entry['stacked_speedup_vs_one_seed']:.2f} one seed)" if "stacked_seeds" in entry else ""),
              flush=True)
    results.update(max(peaks, key=lambda p: p["matmul_peak_gflops"]))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn28", "rsn2_mlp"], choices=("mlp", "cnn28", "rsn2_mlp"))
    parser.add_argument("--rows", type=int, default=None, help="training rows timed per epoch (default: 8192 on CPU, 48000 on GPU)")
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per measurement (median)")
    parser.add_argument("--seeds", type=int, default=4, help="seeds stacked in the `stacked` measurement")
    parser.add_argument("--ablation", action="store_true",
                        help="on CUDA, also time one seed and --seeds stacked seeds under each option set of cuda.*")
    parser.add_argument("--keras", metavar="PYTHON", help="also time the original Keras code, run by this "
                        "interpreter (one with tensorflow installed), on the same rows")
    parser.add_argument("--out", type=Path, default=Path("bench/bench.json"))
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    rows = args.rows or (48000 if device.type == "cuda" else 8192)
    results = run(args.models, rows, args.repeats, device, args.seeds, args.ablation, args.keras)
    print(f"matmul peak {results['matmul_peak_gflops']:.1f} GFLOP/s (torch {results['torch_matmul_gflops']:.1f}, "
          f"numpy {results['numpy_matmul_gflops']:.1f}), {results['threads']} threads, "
          f"allocator {results['allocator']}; written to {args.out}", file=sys.stderr)
    write_json(args.out, json.loads(json.dumps(results)))

