"""`python -m mtlbench.bench.units`: a 12-unit smoke grid on the local executor and on Ray.

`mnist_fashion_mlp`, dedicated and RSN2, six seeds (12 units), the first 500 training rows of the
real MNIST / Fashion files, two epochs: trained once by each executor into a temporary folder,
both from the same prepared data. Writes the wall times, the mean unit time each executor
measured, Ray's overhead per unit ((ray wall - local wall) / units, which includes starting the
local Ray instance) and whether the two runs' predictions and histories are identical, to
bench/units.json. Needs MTLBENCH_DATA_MIRROR and Ray.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mtlbench.config import MIRROR_ENV, parse_params
from mtlbench.data.prepared import prepare
from mtlbench.data.sources import SOURCES
from mtlbench.fileio import write_json
from mtlbench.runtime import cpu_model
from mtlbench.studies import STUDIES
from mtlbench.train.runner import run_study

GRID = {"seeds": [0, 1, 2, 3, 4, 5], "train_limit": 500, "max_epochs": 2, "variants": ["dedicated", "rsn2"]}


def outcome(results: Path) -> dict:
    """Predictions and timing-free histories of every unit (what evaluate turns into metrics)."""
    out = {}
    for seed_dir in sorted(results.glob("*/seed*")):
        with np.load(seed_dir / "predictions.npz") as p:
            out[str(seed_dir.relative_to(results))] = {k: p[k].tolist() for k in p.files}
        tasks = json.loads((seed_dir / "run.json").read_text())["tasks"]
        out[f"{seed_dir.relative_to(results)}:history"] = {
            t: [{k: v for k, v in r.items() if k != "seconds"} for r in f["history"]] for t, f in tasks.items()}
    return out


def main() -> int:
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        print(f"bench.units: set {MIRROR_ENV} to the data mirror", file=sys.stderr)
        return 2
    study = STUDIES["mnist_fashion_mlp"]
    with tempfile.TemporaryDirectory(prefix="mtlbench-units-") as tmp:
        root = Path(tmp)
        for name in study.datasets:
            prepare(SOURCES[name], mirror, True, root / "raw", root / "prepared")
        walls, units = {}, {}
        for executor in ("local", "ray"):
            params = parse_params({"run": {**GRID, "device": "cpu", "progress": False, "executor": executor}}, {}, root)
            started = time.perf_counter()
            run_study(study, params, root / "prepared", root / executor)
            walls[executor] = time.perf_counter() - started
            units[executor] = json.loads((root / executor / "units.json").read_text())
        identical = outcome(root / "local") == outcome(root / "ray")
    n = len(units["local"])
    result = {
        "cpu": cpu_model(), "grid": GRID, "units": n, "wall_s": {k: round(v, 1) for k, v in walls.items()},
        "mean_unit_s": {k: round(sum(u["seconds"] for u in v.values()) / n, 2) for k, v in units.items()},
        "ray_overhead_per_unit_s": round((walls["ray"] - walls["local"]) / n, 2),
        "identical_results": identical,
    }
    write_json(Path("bench/units.json"), result)
    print(json.dumps(result, indent=1), file=sys.stderr)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
