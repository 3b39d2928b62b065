"""The cross-CPU bounds of `make check` (check/expected.json's `cross_cpu`) on real training runs:
another CPU's kernels must pass them and a real change must fail them. Other kernels are had on the
machine at hand by training under its native numerics (ATen's widest vectors, MKL's own branch,
oneDNN) against the portable numerics the records are made under: the same kind of difference
another CPU makes (docs/reproducibility.md)."""

import json
import os
from pathlib import Path

import pytest
import yaml

from mtlbench.check import EXPECTED, MODERN, ROOT, compare, prepare, robust, run_profile
from mtlbench.runtime import PORTABLE_NUMERICS
from mtlbench.train.protocols import MODERN as MODERN_PROTOCOL

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not os.environ.get("MTLBENCH_DATA_MIRROR"),
                                 reason="needs the real MNIST/Fashion-MNIST mirror (MTLBENCH_DATA_MIRROR)")]

STUDY = "mnist_fashion_mlp"
# mnist_fashion_mlp under the modern protocol as the profile trains it (600 rows, 2000 test images, whose
# count the accuracy bounds are in): two seeds, two epochs
PROFILE = {
    "params": {"run": {"seeds": [0, 1], "device": "cpu", "train_limit": 600, "max_epochs": 2, "progress": False,
                       "protocol": "modern"},
               "data": {"verify": False}, "mlflow": {"log_models": False}},
    "sizes": {"mnist_test": 2000, "cifar10_per_batch": 10, "cifar10_test": 10, "cifar100_train": 50, "cifar100_test": 10},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    repo, env = prepare(ROOT, tmp_path_factory.mktemp("bounds"), Path(os.environ["MTLBENCH_DATA_MIRROR"]), PROFILE)
    return repo, env, run_profile(repo, env, [STUDY], MODERN)


@pytest.fixture(scope="module")
def bounds():
    return json.loads((ROOT / EXPECTED).read_text())["cross_cpu"]


def test_native_kernels_differ_bit_for_bit_and_pass_the_bounds(project, bounds):
    repo, env, portable = project
    native_env = {k: v for k, v in env.items() if k not in PORTABLE_NUMERICS}
    native = run_profile(repo, native_env, [STUDY], MODERN, force=True)  # DVC does not see the environment
    assert compare(portable, native), "native and portable numerics gave identical numbers: nothing was tested"
    assert compare(robust(portable), robust(native), bounds) == []


def _as_seeds_one_lower(values: dict) -> dict:
    """Seed k's curves keyed as seed k-1: what a run of seeds [1, 2] holds is then what a code change
    that draws every seed one higher would record for seeds [0, 1] (per-seed metrics are positional)."""
    def relabel(key: str) -> str:
        file, _, path = key.partition(":")
        parts = path.split(".")
        if parts[0] == "curves":
            parts[3] = str(int(parts[3]) - 1)
        return f"{file}:{'.'.join(parts)}"

    return {relabel(key): value for key, value in values.items()}


def test_every_seed_drawn_one_higher_fails_the_bounds(project, bounds):
    repo, env, portable = project
    shifted = _as_seeds_one_lower(run_profile(repo, env, [STUDY], MODERN, seeds=[1, 2]))
    assert set(robust(shifted)) == set(robust(portable))  # the same numbers, each seed drawn one higher
    moved = compare(robust(portable), robust(shifted), bounds)
    assert len(moved) > len(robust(portable)) // 2, moved


def _set_modern_lr(repo: Path, lr: float | None) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["modern"]["lr"] = lr
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_a_learning_rate_ten_percent_off_fails_the_bounds(project, bounds):
    repo, env, portable = project
    _set_modern_lr(repo, MODERN_PROTOCOL.lr * 1.1)
    try:
        moved = compare(robust(portable), robust(run_profile(repo, env, [STUDY], MODERN)), bounds)
    finally:
        _set_modern_lr(repo, None)
    assert len(moved) > len(robust(portable)) // 2, moved
