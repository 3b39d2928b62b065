"""A full disk while saving results or data: "no space left on device: <path> (needed about N MB)",
no traceback, nothing half-written, earlier outputs intact. On a real full file system (a small
tmpfs; skipped where mounting is not allowed)."""

import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from mtlbench.fileio import DiskFullError, write_json
from mtlbench.models import build_dedicated
from mtlbench.models.store import save_model


@pytest.fixture
def tiny_disk():
    mount = Path(f"/tmp/mtlbench-full-{uuid.uuid4().hex[:8]}")
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def test_a_model_too_big_for_the_disk(tiny_disk):
    write_json(tiny_disk / "earlier.json", {"kept": True})
    model = build_dedicated("mlp", (1, 28, 28), 10, seed=0)  # 23 MB of weights
    with pytest.raises(DiskFullError, match=r"no space left on device: .*model_digits.pt \(needed about 23.\d MB"):
        save_model(tiny_disk / "seed0" / "model_digits.pt", model, {"architecture": "mlp"})
    assert sorted(p.name for p in tiny_disk.rglob("*") if p.is_file()) == ["earlier.json"]  # no temp file left


def test_prepared_data_and_text_outputs(tiny_disk):
    from mtlbench.fileio import atomic_path

    arrays = {"x": np.zeros((300, 1000), dtype=np.uint8)}
    with pytest.raises(DiskFullError, match=r"data.npz \(needed about 0.3 MB"):
        with atomic_path(tiny_disk / "data.npz", sum(a.nbytes for a in arrays.values())) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
    with pytest.raises(DiskFullError, match=r"report.json"):
        write_json(tiny_disk / "report.json", {"rows": ["x" * 1000] * 400})


def test_a_stage_says_it_in_one_line(tiny_disk):
    code = ("from pathlib import Path; from mtlbench.stages import run_stage; from mtlbench.fileio import write_json; "
            f"run_stage(lambda: write_json(Path({str(tiny_disk)!r}) / 'big.json', ['x' * 1000] * 400))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: no space left on device:")
    assert torch.__version__  # the same interpreter the pipeline runs
