"""mtlbench.pool: seeds of one study trained in separate study runs pool into one answer. A real
details document (a committed study run's, written by the evaluate stage) split by seed and pooled
again gives back its own statistics and verdicts exactly; parts that trained different things, or
share a seed, are refused with the part and the key, and the previous pooled folder survives."""

import copy
import json

import pytest

from mtlbench import pool
from mtlbench.check import ROOT
from mtlbench.outputs import metrics_document

RUN = ROOT / "bench" / "parts" / "fashion_groups_modern_cpu_seeds0-5"  # 6 seeds, 4 variants, 3 tasks


def _details() -> dict:
    return json.loads((RUN / "details.json").read_text())


def _subset(details: dict, seeds: set[int]) -> dict:
    """The details document a run of only `seeds` would have written (its per-seed values and curves)."""
    part = copy.deepcopy(details)
    for variant, tasks in part["variants"].items():
        keep = [i for i, s in enumerate(pool.seed_numbers(details, variant)) if s in seeds]
        for by_metric in tasks.values():
            for metric, stats in by_metric.items():
                by_metric[metric] = {"values": [stats["values"][i] for i in keep]}
    part["curves"] = {v: {t: {k: rows for k, rows in by_seed.items() if int(k) in seeds} for t, by_seed in tasks.items()}
                      for v, tasks in part["curves"].items()}
    part["comparisons"] = {}  # pool recomputes them: a part's own must not leak into the answer
    part["produced_on"]["seeds"] = len(seeds)
    return part


def _write_part(folder, details, *, seconds_per_epoch=2.0, epochs=10, train_code="abc", context=None, code_checks=None):
    folder.mkdir(parents=True)
    if code_checks is not None:
        (folder / "code_checks.json").write_text(json.dumps(code_checks))
    (folder / "details.json").write_text(json.dumps(details))
    (folder / "context.json").write_text(json.dumps(context or json.loads((RUN / "context.json").read_text())))
    (folder / "run.json").write_text(json.dumps({"command": f"study_run for {folder.name}", "cpu": "AMD EPYC",
                                                 "wall_s": 60.0, "train_code": train_code}))
    (folder / "epoch_times.json").write_text(json.dumps(
        {v: {"seconds_per_epoch": seconds_per_epoch, "epochs": epochs} for v in details["variants"]}))
    return folder


def test_a_run_split_by_seed_and_pooled_gives_back_its_own_numbers_exactly():
    whole = _details()
    assert pool.seed_numbers(whole, "dedicated") == [0, 1, 2, 3, 4, 5]
    # interleaved, so a pool that lined seeds up by position rather than by number would pair wrongly
    pooled = pool.pooled_details([_subset(whole, {1, 3, 5}), _subset(whole, {0, 2, 4})])
    one_part = pool.pooled_details([_subset(whole, set(range(6)))])  # today's statistics of the unsplit run
    assert pooled["variants"] == whole["variants"]
    assert pooled["comparisons"] == one_part["comparisons"]  # paired tests, Holm, delta-m: over all 6 seeds
    p_t = [[c["paired"]["p_t"] for c in d["comparisons"]["hps_sum"].values() if isinstance(c, dict) and "paired" in c]
           for d in (pooled, whole)]
    assert p_t[0] == pytest.approx(p_t[1], rel=1e-12) and len(p_t[0]) == 3  # the seed-only tests, as evaluated
    assert pooled["curves"] == whole["curves"]
    assert pooled["produced_on"]["seeds"] == 6 and pooled["methods"] == whole["methods"]


def test_pool_writes_what_the_readme_reads(tmp_path):
    whole = _details()
    first = _write_part(tmp_path / "a", _subset(whole, {0, 1, 2}), seconds_per_epoch=2.0, epochs=10,
                        code_checks=[_check("abc", "later")])
    second = _write_part(tmp_path / "b", _subset(whole, {3, 4, 5}), seconds_per_epoch=4.0, epochs=30)
    out = tmp_path / "pooled"
    assert pool.main([str(first), str(second), "--out", str(out)]) == 0
    details = json.loads((out / "details.json").read_text())
    one_part = pool.pooled_details([_subset(whole, set(range(6)))])
    assert details["variants"] == whole["variants"] and details["comparisons"] == one_part["comparisons"]
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics_document(one_part)))
    times = json.loads((out / "epoch_times.json").read_text())["rsn2"]
    assert times == {"seconds_per_epoch": (2.0 * 10 + 4.0 * 30) / 40, "epochs": 40}  # weighted by epochs
    run = json.loads((out / "run.json").read_text())
    assert run["seeds"] == [0, 1, 2, 3, 4, 5] and run["wall_s"] == 120.0 and run["train_code"] == "abc"
    assert "code_checks" not in run  # one code: no recheck was needed (a part may hold records for later code)
    assert [p["folder"] for p in run["parts"]] == [first.as_posix(), second.as_posix()]
    assert run["command"].startswith("python -m mtlbench.pool ")


@pytest.mark.parametrize("fault, said", [
    ("overlap", "seed 2 is also in"),
    ("protocol", "its context.json protocol is"),
    ("code", "its run.json train_code is other..., "),
    ("no code", "no train_code"),
    ("missing", "details.json: FileNotFoundError"),
])
def test_parts_that_trained_different_things_are_refused_and_the_previous_pool_survives(tmp_path, capsys, fault, said):
    whole = _details()
    first = _write_part(tmp_path / "a", _subset(whole, {0, 1, 2}))
    context = json.loads((RUN / "context.json").read_text())
    if fault == "protocol":
        context["protocol"] = {**context["protocol"], "lr": 0.01}
    second = _write_part(tmp_path / "b", _subset(whole, {2, 3} if fault == "overlap" else {3, 4}), context=context,
                         train_code={"code": "other", "no code": None}.get(fault, "abc"))
    if fault == "missing":
        (second / "details.json").unlink()
    out = tmp_path / "pooled"
    out.mkdir()
    (out / "details.json").write_text("the previous answer")
    (out / "run.json").write_text(json.dumps({"command": "python -m mtlbench.pool earlier parts"}))  # a pool wrote it
    assert pool.main([str(first), str(second), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert said in err and str(second) in err and "Traceback" not in err
    assert (out / "details.json").read_text() == "the previous answer"
    assert sorted(p.name for p in out.iterdir()) == ["details.json", "run.json"]


def _check(old, new):
    return {"from": old, "to": new, "seed": 0, "cpu": "AMD EPYC", "numbers": 10}


@pytest.mark.parametrize("checks_a, checks_b", [
    ([_check("abc", "new")], None),                     # a recheck of the older part under the newer code
    (None, [_check("abc", "new")]),                     # a record counts whichever part holds it
    ([_check("abc", "mid")], [_check("mid", "new")]),  # linked through a code neither part ran
])
def test_parts_of_codes_a_recheck_linked_pool(tmp_path, checks_a, checks_b):
    whole = _details()
    first = _write_part(tmp_path / "a", _subset(whole, {0, 1, 2}), train_code="abc", code_checks=checks_a)
    second = _write_part(tmp_path / "b", _subset(whole, {3, 4, 5}), train_code="new", code_checks=checks_b)
    out = tmp_path / "pooled"
    assert pool.main([str(first), str(second), "--out", str(out)]) == 0
    assert json.loads((out / "details.json").read_text())["variants"] == whole["variants"]
    run = json.loads((out / "run.json").read_text())
    assert "train_code" not in run and run["code_checks"] == (checks_a or []) + (checks_b or [])
    assert [p["train_code"] for p in run["parts"]] == ["abc", "new"]


@pytest.mark.parametrize("checks, said", [
    ([_check("abc", "elsewhere")], "its run.json train_code is new..., "),  # a record about other codes links nothing
    ({"from": "abc"}, "code_checks.json: ValueError (expected a list of records"),
])
def test_a_code_change_no_recheck_links_is_refused(tmp_path, capsys, checks, said):
    whole = _details()
    first = _write_part(tmp_path / "a", _subset(whole, {0, 1, 2}), train_code="abc", code_checks=checks)
    second = _write_part(tmp_path / "b", _subset(whole, {3, 4, 5}), train_code="new")
    assert pool.main([str(first), str(second), "--out", str(tmp_path / "pooled")]) == 2
    err = capsys.readouterr().err
    assert said in err and "mtlbench.recheck" in err and "Traceback" not in err
    assert not (tmp_path / "pooled").exists()


@pytest.mark.parametrize("case, said", [
    ("out is a part", "is, holds or lies inside the part"),
    ("out holds the parts", "is, holds or lies inside the part"),
    ("a part twice", "is given twice; pool each part once"),
    ("out is someone else's", "exists and is not an earlier pool's output"),
])
def test_out_never_replaces_a_folder_pool_did_not_write(tmp_path, capsys, case, said):
    whole = _details()
    first = _write_part(tmp_path / "bench" / "a", _subset(whole, {0, 1, 2}))
    second = _write_part(tmp_path / "bench" / "b", _subset(whole, {3, 4, 5}))
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    parts, out = {"out is a part": ([first, second], first), "out holds the parts": ([first, second], tmp_path / "bench"),
                  "a part twice": ([first, first], tmp_path / "pooled"),
                  "out is someone else's": ([first, second], other)}[case]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert pool.main([*map(str, parts), "--out", str(out)]) == 2
    assert said in capsys.readouterr().err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing lost or added
    # a pool's own earlier output is replaced, as before
    pooled = tmp_path / "pooled"
    assert pool.main([str(first), str(second), "--out", str(pooled)]) == 0
    assert pool.main([str(first), str(second), "--out", str(pooled)]) == 0
