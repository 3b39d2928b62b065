"""The map (summary.map_points, figures.map_figure): the difference against training rows, from the
runs of one task set at several sizes, a confirmatory run preferred where two share a size."""

import copy
import json
from pathlib import Path

from mtlbench.figures import map_figure, png_bytes
from mtlbench.summary import build_summary, map_points

ROOT = Path(__file__).resolve().parents[1]


def _run(name: str, rows: int | None, status: str = "exploratory") -> dict:
    details = copy.deepcopy(json.loads((ROOT / "reports" / "studies" / "pilot_3000.json").read_text()))
    details["run"], details["produced_on"]["train_limit"] = name, rows
    details["analysis"]["plan"] = {"status": status, "plan": None, "why": "test"}
    return details


def test_a_task_set_at_several_sizes_is_mapped_and_a_single_size_is_not():
    small, planned, pilot = _run("small", 500), _run("planned", 3000, "confirmatory"), _run("pilot", 3000)
    points = map_points([small, pilot, planned])
    assert {(p["variant"], p["task"]) for p in points} == {(v, t) for v in ("hps_sum", "rsn2") for t in ("digits", "fashion")}
    assert sorted({p["rows"] for p in points}) == [500, 3000]
    at_3000 = [p for p in points if p["rows"] == 3000]
    assert {p["run"] for p in at_3000} == {"planned"} and all(p["confirmatory"] for p in at_3000)
    digits = next(p for p in at_3000 if (p["variant"], p["task"]) == ("rsn2", "digits"))
    source = planned["comparisons"]["rsn2"]["digits"]["paired"]
    assert digits["diff"] == 100 * source["mean"] and digits["ci95"] == [100 * v for v in source["crossed"]["ci95"]]
    assert map_points([pilot, planned]) == []  # one size: no map
    full = _run("full", None)  # no train_limit: the dataset's 60000 rows
    assert {p["rows"] for p in map_points([small, full])} == {500, 60000}


def test_the_map_is_the_summary_pages_first_figure():
    points = map_points([_run("small", 500), _run("planned", 3000, "confirmatory")])
    assert png_bytes(map_figure(points, 0.5)).startswith(b"\x89PNG")
    markdown, _, _, _, images = build_summary([_run("small", 500), _run("planned", 3000, "confirmatory")], [])
    assert list(images)[0] == "map.png" and markdown.count("![map](figures/map.png)") == 1
    assert markdown.index("![map]") < markdown.index("## Per task")  # under the answer, before the tables
