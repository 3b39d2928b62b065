"""`python -m mtlbench.bench.methods`: the training time per epoch of every multitask method on
`mnist_fashion_hps`, relative to `hps_sum`, on a quiet machine.

Each hps variant trains seed 0 for 3 epochs on the first 3000 rows of the real MNIST / Fashion
files (the prepared data in data/prepared, or from MTLBENCH_DATA_MIRROR); the time per epoch is the
median of the 2nd and 3rd epochs (the first includes warm-up). Writes bench/methods.json.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from mtlbench.config import MIRROR_ENV, parse_params
from mtlbench.data.prepared import prepare, prepared_paths
from mtlbench.data.sources import SOURCES
from mtlbench.fileio import write_json
from mtlbench.runtime import cpu_model
from mtlbench.studies import STUDIES
from mtlbench.train.runner import run_study

EPOCHS, ROWS = 3, 3000


def main() -> int:
    study = STUDIES["mnist_fashion_hps"]
    variants = [v for v in study.variant_specs if v.kind == "hps"]
    with tempfile.TemporaryDirectory(prefix="mtlbench-methods-") as tmp:
        prepared = Path("data/prepared")
        if not all(prepared_paths(prepared, d)[0].is_file() for d in study.datasets):
            mirror = os.environ.get(MIRROR_ENV)
            if not mirror:
                print(f"bench.methods: no data/prepared; set {MIRROR_ENV}", file=sys.stderr)
                return 2
            prepared = Path(tmp) / "prepared"
            for name in study.datasets:
                prepare(SOURCES[name], mirror, True, Path(tmp) / "raw", prepared)
        params = parse_params({"run": {"seeds": [0], "device": "cpu", "train_limit": ROWS, "max_epochs": EPOCHS,
                                       "progress": False}}, {}, Path(tmp))
        seconds = {}
        for variant in variants:
            out = Path(tmp) / variant.name
            run_study(replace(study, variant_specs=(variant,)), params, prepared, out)
            history = next(iter(json.loads((out / variant.name / "seed0" / "run.json").read_text())["tasks"].values()))["history"]
            seconds[variant.name] = statistics.median(r["seconds"] for r in history[1:])
    base = seconds["hps_sum"]
    result = {"cpu": cpu_model(), "rows": ROWS, "epochs": EPOCHS, "seconds_per_epoch": seconds,
              "relative_to_hps_sum": {k: round(v / base, 3) for k, v in seconds.items()}}
    write_json(Path("bench/methods.json"), result)
    print(json.dumps(result["relative_to_hps_sum"], indent=1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
