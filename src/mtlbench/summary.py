"""The page that answers the question across studies: reports/summary.md, reports/summary.html
(self-contained: figures inlined as base64 PNG, no scripts, no CDN), reports/summary.json and
metrics/summary.json, from the studies' details documents (reports/studies/<run>.json).

One row per study, multitask variant and task: the method, its parameter budget against the
dedicated models' total, the paired difference with its CI and the verdict (mtlbench.verdict);
delta-m with its CI per study and variant; then a plain-language answer counted from those rows.
"""

from __future__ import annotations

import base64
import html
import subprocess
from pathlib import Path
from typing import Sequence

from scipy.stats import false_discovery_control

from mtlbench.figures import curves_figure, forest_figure, map_figure, png_bytes, scores_figure
from mtlbench.evaluate import task_comparisons
from mtlbench.studies import BASELINE_KIND, STUDIES
from mtlbench.verdict import (BETTER, EQUIVALENT, NO_TEST, RANDOM, UNDECIDED, WORSE, difference_bounds, format_amount,
                              format_interval, verdict_text)

VERDICTS = (BETTER, WORSE, EQUIVALENT, UNDECIDED, NO_TEST)


def run_label(details: dict) -> str:
    """The run a details document belongs to (documents from before runs were named by their study)."""
    return details.get("run", details["study"])


SMOKE_SEEDS = 3  # fewer seeds than this cannot give a verdict worth reading


def smoke_sized(details: Sequence[dict]) -> str:
    """Why these runs are smoke-sized (an epoch cap or fewer than SMOKE_SEEDS seeds), or ""."""
    reasons = []
    for d in details:
        p = d.get("produced_on", {})
        if p.get("epoch_cap") is not None:  # run.max_epochs
            reasons.append(f"{run_label(d)} capped at {p['epoch_cap']} epochs")
        if isinstance(p.get("seeds"), int) and p["seeds"] < SMOKE_SEEDS:
            reasons.append(f"{run_label(d)} has {p['seeds']} seed{'s' if p['seeds'] != 1 else ''}")
    return "; ".join(reasons)


DEFINING = ("src", "dvc.yaml", "params.yaml", "tasks", "plans")  # what makes the numbers, besides the data


def made_line(root: Path) -> str:
    """From which commit, of which date, the page was made, and whether the code, params, task
    files or plans differed from it: a page read later says what it shows. (The commit's date, not
    the clock: the same commit and results give the same page, byte for byte.)"""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    commit = git("log", "-1", "--format=%h %cs", "--abbrev=10")
    if not commit:
        return "Made outside a git commit."
    sha, day = commit.split()
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", *DEFINING)
    return f"Made at commit `{sha}` ({day}){' with uncommitted changes to its code or params' if dirty else ''}."


def summary_rows(details: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """(task rows, delta-m rows) over every study's multitask variants."""
    task_rows, delta_rows = [], []
    for d in details:
        methods = d["methods"]
        dedicated_total = next((m["params"] for m in methods.values() if m["kind"] == BASELINE_KIND), None)
        for variant, entry in d["comparisons"].items():
            method = methods[variant]
            common = {"run": run_label(d), "study": d["study"], "variant": variant, "kind": method["kind"],
                      "method": method.get("method"),
                      "plan": d.get("analysis", {}).get("plan", {}).get("status", "exploratory"),
                      "params": method["params"], "dedicated_params": dedicated_total}
            for task, diffs in task_comparisons(entry).items():
                if "paired" in diffs:
                    c = diffs["paired"]
                    ci = (c.get("crossed") or c)["ci95"]  # over seeds and test items where both are known
                    task_rows.append({**common, "task": task, "metric": c["metric"], "diff": c["mean"], "ci95": ci,
                                      "margin": c.get("margin"), "items": bool(c.get("crossed")),
                                      "n": c["n"], "p_holm": c["p_holm"], "p_sign_flip": c["p_sign_flip"],
                                      "p": c.get("p", c.get("p_t")),
                                      "min_detectable": c["min_detectable"], "verdict": c["verdict"],
                                      "text": verdict_text(task, variant, c["metric"], c)})
            if "delta_m" in entry:
                s = entry["delta_m"]
                delta_rows.append({**common, "label": f"{run_label(d)} / {variant}", "mean": s["mean"], "ci95": s["ci95"], "n": s["n"]})
    return task_rows, delta_rows


def answer(task_rows: list[dict], delta_rows: list[dict]) -> str:
    """The plain-language answer, counted from the rows (never written by hand)."""
    judged = [r for r in task_rows if r["verdict"] != RANDOM]
    if not judged:
        return "No multitask variant has a dedicated baseline to compare with yet."
    count = {v: sum(r["verdict"] == v for r in judged) for v in VERDICTS}
    studies = sorted({r["run"] for r in judged})
    seeds = sorted({r["n"] for r in judged})
    n_variants = len({(r["run"], r["variant"]) for r in judged})
    parts = [f"Over {len(studies)} {'run' if len(studies) == 1 else 'runs'} ({', '.join(studies)}) and "
             f"{n_variants} multitask {'variant' if n_variants == 1 else 'variants'}, of {len(judged)} task comparisons "
             f"multitask was better on {count[BETTER]}, worse on {count[WORSE]}, equivalent to dedicated on "
             f"{count[EQUIVALENT]} and undecided on {count[UNDECIDED]}"
             + (f" ({count[NO_TEST]} had one seed: no test possible)" if count[NO_TEST] else "")
             + f" (paired {_sources(judged)}; the difference and the equivalence test (TOST, +-{_margins(judged)}) "
             f"Holm-adjusted within each variant's tasks, 5% level; n = {', '.join(map(str, seeds))} seeds)."]
    tested = [r for r in judged if r["p"] is not None]
    if len(tested) > 1:  # the sentence above states every comparison at once: one family for it too
        adjusted = false_discovery_control([r["p"] for r in tested])
        kept = {v: sum(1 for r, q in zip(tested, adjusted) if q < 0.05 and r["verdict"] == v) for v in (BETTER, WORSE)}
        parts.append(f"Taking all {len(tested)} comparisons as one family (Benjamini-Hochberg, 5% false discovery "
                     f"rate), {kept[BETTER]} of the {count[BETTER]} better and {kept[WORSE]} of the {count[WORSE]} worse "
                     "remain.")
    confirmatory = sorted({r["run"] for r in judged if r["plan"] == "confirmatory"})
    parts.append(f"Confirmatory (a committed analysis plan fixed seeds and margin before training): "
                 f"{', '.join(confirmatory)}; every other verdict here is exploratory." if confirmatory else
                 "Every verdict here is exploratory: no analysis plan (plans/<run>.yaml) fixed its seeds and margin "
                 "before training.")
    for verdict in (BETTER, WORSE):
        named = [f"{r['task']} ({r['run']}, {r['variant']}, {format_amount(r['diff'], r['metric'])})"
                 for r in judged if r["verdict"] == verdict]
        if named:
            parts.append(f"{verdict.capitalize()}: {', '.join(named)}.")
    undecided = [r for r in judged if r["verdict"] == UNDECIDED and r["min_detectable"] is not None]
    if undecided:
        largest = max(undecided, key=lambda r: r["min_detectable"])
        bounds = difference_bounds(largest["metric"])
        if bounds is not None and largest["min_detectable"] > bounds[1]:
            parts.append(f"Where undecided, some comparisons could not detect any difference within the "
                         f"metric's range with their seeds (80% power; {largest['task']}, {largest['run']}, "
                         f"n = {largest['n']}): they need more seeds to say anything.")
        else:
            parts.append(f"Where undecided, the smallest difference these seeds could detect (80% power) "
                         f"was as large as {format_amount(largest['min_detectable'], largest['metric'], signed=False)} "
                         f"{largest['metric']} ({largest['task']}, "
                         f"{largest['run']}): smaller differences need more seeds to show.")
    if delta_rows:
        above = [r["label"] for r in delta_rows if r["ci95"] is not None and r["ci95"][0] > 0]
        below = [r["label"] for r in delta_rows if r["ci95"] is not None and r["ci95"][1] < 0]
        parts.append(f"delta-m's 95% CI lies above zero for {len(above)} of {len(delta_rows)} variants"
                     + (f" ({', '.join(above)})" if above else "") + f" and below zero for {len(below)}"
                     + (f" ({', '.join(below)})" if below else "") + ".")
    return " ".join(parts)


def _sources(rows: list[dict]) -> str:
    """What the rows' intervals count as random: seeds and test items, or seeds only."""
    with_items = sum(r["items"] for r in rows)
    if with_items == len(rows):
        return "over seeds and test items"
    if with_items == 0:
        return "over seeds, the test set held fixed (these results hold no per-item predictions)"
    return f"over seeds and test items for {with_items} of {len(rows)} comparisons, over seeds alone for the rest"


def _margins(rows: list[dict]) -> str:
    """The equivalence margins the rows used, in words."""
    accuracy = sorted({r["margin"] for r in rows if r["margin"] is not None and r["metric"] != "mse"})
    words = [format_amount(m, "accuracy", signed=False) for m in accuracy]
    if any(r["metric"] == "mse" for r in rows):
        words.append("a share of the dedicated MSE")
    return " or ".join(words) or "no margin"


def _budget(row: dict) -> str:
    own = f"{row['params']:,.0f}"
    return own if row["dedicated_params"] is None else f"{own} vs {row['dedicated_params']:,.0f}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def missing_note(missing: Sequence[str]) -> str:
    return (f"No results yet for: {', '.join(missing)}. Produce them with "
            f"`dvc exp run -S 'run.studies=[{', '.join(missing)}]'` (or add them to `run.studies` in params.yaml "
            "and `dvc repro`).") if missing else ""


def plan_footing(details: dict) -> dict:
    """The run's analysis-plan status as evaluate stored it (exploratory where none is stored)."""
    return details.get("analysis", {}).get("plan") or {"status": "exploratory", "plan": None}


def rows_phrase(produced: dict) -> str:
    """Which training rows a run trained on, in words (records made before run.train_sample: first)."""
    if not produced.get("train_limit"):
        return "full training sets"
    if produced.get("train_sample") == "per_seed":
        return f"{produced['train_limit']} training rows per task, drawn per seed"
    return f"the first {produced['train_limit']} training rows of each task"


def inside_margin(row: dict) -> str:
    """", by less than the margin" for a better or worse whose whole interval lies inside the
    equivalence margin: real, and smaller than the difference the run declared to matter."""
    ci, margin = row["ci95"], row.get("margin")
    if row["verdict"] not in ("better", "worse") or not ci or not margin or not -margin < ci[0] <= ci[1] < margin:
        return ""
    return f" (by less than the +-{format_amount(margin, row['metric'], False)} margin)"


def confirmatory_lead(runs: Sequence[dict]) -> list[str]:
    """The answer first: every confirmatory run's estimates, per variant and task, in points with
    their interval over seeds and test items and the verdict, and each variant's delta-m."""
    lines = []
    for details in runs:
        plan = plan_footing(details)
        if plan["status"] != "confirmatory":
            continue
        task_rows, delta_rows = summary_rows([details])
        produced = details.get("produced_on", {})
        lines += [f"**Confirmatory** (`{run_label(details)}`: {details['study']}, {produced.get('protocol', '?')} "
                  f"protocol, {rows_phrase(produced)}, {produced.get('seeds')} seeds, as its plan "
                  f"[{plan['plan']}]({plan['plan']}) fixed before training), multitask minus dedicated, 95% CI over "
                  "seeds and test items, Holm within each variant:", ""]
        for delta in delta_rows:
            tasks = [r for r in task_rows if r["variant"] == delta["variant"]]
            said = "; ".join(f"{r['task']} {format_amount(r['diff'], r['metric'])} "
                             f"{format_interval(r['ci95'], 100) if r['metric'] in ('accuracy', 'macro_f1') else format_interval(r['ci95'])}"
                             f" **{r['verdict']}**{inside_margin(r)}" for r in tasks)
            lines.append(f"- `{delta['variant']}`: {said}; delta-m {delta['mean']:+.2f}% {format_interval(delta['ci95'], unit='%')}")
        lines.append("")
    return lines


def summary_markdown(task_rows: list[dict], delta_rows: list[dict], missing: Sequence[str], figures: Sequence[str],
                     provenance: Sequence[dict] = (), made: str = "") -> str:
    scale = lambda r: 100.0 if r["metric"] in ("accuracy", "macro_f1") else 1.0  # noqa: E731
    lines = ["# When does one multitask network beat separate dedicated networks?", ""]
    lines += [made, ""] if made else []
    smoke = smoke_sized(provenance)
    lines += [f"> **Smoke-sized**: {smoke}; not an answer, a check that the pipeline runs.", ""] if smoke else []
    lines += ["## The answer", "", *confirmatory_lead(provenance), answer(task_rows, delta_rows), ""]
    if "map.png" in figures:  # the "when": right under the answer
        lines += ["![map](figures/map.png)", "",
                  "The map: each task's multitask-minus-dedicated difference against training rows per task, one line "
                  "per task set (a study run at two sizes or more); bars: 95% CI over seeds and test items; grey band: "
                  "the equivalence margin; filled: confirmatory, hollow: exploratory (pilots).", ""]
    if missing:
        lines += [missing_note(missing), ""]
    lines += ["## Per task: multitask minus dedicated, paired by seed", "",
              "Accuracy differences in percentage points; MSE differences signed so that positive is better. "
              "Parameters: the multitask model's (RSN2: packed; HPS: shared trunk and heads) vs all dedicated models'.", "",
              "| run | variant | method | parameters | task | metric | difference | 95% CI | n | p (Holm) | p (sign-flip) | verdict |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in task_rows:
        method = r["kind"] + (f" ({r['method']})" if r["method"] else "")
        unit = " pt" if scale(r) == 100.0 else ""
        lines.append(f"| {r['run']} | {r['variant']} | {method} | {_budget(r)} | {r['task']} | {r['metric']} "
                     f"| {scale(r) * r['diff']:+.2f}{unit} | {format_interval(r['ci95'], scale(r))} | {r['n']} | {_p(r['p_holm'])} "
                     f"| {_p(r['p_sign_flip'])} | {r['verdict']} |")
    lines += ["", "## delta-m per run and variant", "",
              "Mean relative change over the real tasks' primary metrics (Maninis et al. 2019), %, positive = multitask "
              "better; CI over the per-seed values.", "",
              "| run | variant | delta-m | 95% CI | n |", "|---|---|---|---|---|"]
    lines += [f"| {r['run']} | {r['variant']} | {r['mean']:+.2f}% | {format_interval(r['ci95'], unit='%')} | {r['n']} |" for r in delta_rows]
    lines += ["", "## Figures", ""] + [f"![{Path(f).stem}](figures/{Path(f).name})" for f in figures if f != "map.png"] + [""]
    lines += provenance_lines(provenance)
    return "\n".join(lines)


def provenance_lines(details: Sequence[dict]) -> list[str]:
    """How each study's numbers were made: seeds, protocol, training rows, epoch cap, device, CPU,
    torch, numerics (from reports/studies/<run>.json's produced_on; "?" where an older file has none)."""
    if not details:
        return []
    lines = ["## How these numbers were made", "",
             "| run | study | seeds | protocol | training rows per task | epoch cap | device | CPU | torch | numerics |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for d in details:
        p = d.get("produced_on", {})
        rows = p.get("train_limit") or ("all" if "train_limit" in p else "?")
        rows = f"{rows} (drawn per seed)" if p.get("train_limit") and p.get("train_sample") == "per_seed" else rows
        lines.append(f"| {run_label(d)} | {d['study']} | {p.get('seeds', '?')} | {p.get('protocol', '?')} | {rows} | "
                     f"{p.get('max_epochs', '?')} | {p.get('device', '?')} | {p.get('cpu', '?')} | {p.get('torch', '?')} "
                     f"| {p.get('numerics', '?')} |")
    return lines + [""]


def summary_html(markdown_text: str, images: dict[str, bytes]) -> str:
    """The markdown's content as a self-contained page: tables as HTML tables, figures inlined."""
    body, table = [], []

    def flush_table() -> None:
        if not table:
            return
        rows = [[html.escape(c.strip()) for c in line.strip("|").split("|")] for line in table if not set(line) <= set("|-")]
        head, *rest = rows
        body.append("<table><thead><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr></thead><tbody>"
                    + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rest) + "</tbody></table>")
        table.clear()

    for line in markdown_text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        if line.startswith("!["):
            name = Path(line[line.index("(") + 1 : -1]).name
            encoded = base64.b64encode(images[name]).decode()
            body.append(f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{encoded}"></figure>')
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.strip():
            text = html.escape(line)
            while "`" in text and text.count("`") >= 2:
                text = text.replace("`", "<code>", 1).replace("`", "</code>", 1)
            body.append(f"<p>{text}</p>")
    flush_table()
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px}"
             "th{background:#f3f3f3}img{max-width:100%}code{background:#f3f3f3;padding:0 3px}")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>mtlbench summary</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def summary_document(task_rows: list[dict], delta_rows: list[dict], missing: Sequence[str]) -> dict:
    """metrics/summary.json, a DVC metric kept narrow: the verdict counts and delta-m per study and
    variant (numbers only; the rows and the answer's text are in summary_rows_document)."""
    judged = [r for r in task_rows if r["verdict"] != RANDOM]
    return {
        "verdicts": {v.replace(" ", "_"): sum(r["verdict"] == v for r in judged) for v in VERDICTS},
        "delta_m_pct": {f"{r['run']}/{r['variant']}": r["mean"] for r in delta_rows},
    }


def summary_rows_document(task_rows: list[dict], delta_rows: list[dict], missing: Sequence[str]) -> dict:
    """reports/summary.json: the answer, every row and the studies without results."""
    return {"answer": answer(task_rows, delta_rows), "missing": list(missing),
            "rows": [{k: v for k, v in r.items() if k != "text"} for r in task_rows],
            "delta_m": [{k: v for k, v in r.items()} for r in delta_rows]}


def study_figures(details: dict) -> dict[str, bytes]:
    """One study's figures as PNG: scores with CI and validation curves, of its headline tasks."""
    tasks = details.get("headline")
    return {f"{run_label(details)}_scores.png": png_bytes(scores_figure(details, tasks)),
            f"{run_label(details)}_curves.png": png_bytes(curves_figure(details, tasks))}


FULL_ROWS = {"digits": 60000, "fashion": 60000, "cifar10": 50000, "cifar100": 50000}  # official training sets


def map_points(details: Sequence[dict]) -> list[dict]:
    """The map's points: per task set (study and protocol), multitask variant, task and training
    rows, the paired difference with its CI (in points for accuracy), from every run of a task set
    measured at two or more sizes. Where two runs share a size, a confirmatory one is taken, else the
    one with more seeds. Full training sets stand at their dataset's size (FULL_ROWS)."""
    task_rows, _ = summary_rows(details)
    runs = {run_label(d): d for d in details}
    points: dict[tuple, dict] = {}
    for r in task_rows:
        if r["metric"] not in ("accuracy", "macro_f1"):
            continue
        produced = runs[r["run"]].get("produced_on", {})
        if not produced.get("train_limit") and r["study"] not in STUDIES:
            continue  # a full-data run of a study this catalogue does not know: its size is unknown
        rows = produced.get("train_limit") or min(FULL_ROWS[d] for d in STUDIES[r["study"]].datasets)
        key = (r["study"], produced.get("protocol"), r["variant"], r["task"], rows)
        point = {"variant": r["variant"], "study": r["study"], "task": r["task"], "rows": rows,
                 "diff": 100 * r["diff"], "ci95": None if r["ci95"] is None else [100 * v for v in r["ci95"]],
                 "confirmatory": r["plan"] == "confirmatory", "n": r["n"], "run": r["run"]}
        held = points.get(key)
        if held is None or (point["confirmatory"], point["n"]) > (held["confirmatory"], held["n"]):
            points[key] = point
    sizes: dict[tuple, set] = {}
    for (study, protocol, variant, task, rows) in points:
        sizes.setdefault((study, protocol, variant), set()).add(rows)
    return [p for (study, protocol, variant, task, rows), p in points.items() if len(sizes[(study, protocol, variant)]) > 1]


def build_summary(details: Sequence[dict], missing: Sequence[str],
                  made: str = "") -> tuple[str, str, dict, dict, dict[str, bytes]]:
    """(markdown, html, metrics/summary.json, reports/summary.json, {figure file name: PNG}); `made`
    (made_line) heads the page."""
    task_rows, delta_rows = summary_rows(details)
    images: dict[str, bytes] = {}
    for d in details:
        images.update(study_figures(d))
    points = map_points(details)
    if points:  # first on the page: the answer's "when"
        margin = next((d["analysis"]["margin"] for d in details if d.get("analysis", {}).get("margin")), None)
        images = {"map.png": png_bytes(map_figure(points, None if margin is None else 100 * margin)), **images}
    if delta_rows:
        images["delta_m_forest.png"] = png_bytes(forest_figure(delta_rows))
    markdown_text = summary_markdown(task_rows, delta_rows, missing, list(images), details, made)
    return (markdown_text, summary_html(markdown_text, images), summary_document(task_rows, delta_rows, missing),
            summary_rows_document(task_rows, delta_rows, missing), images)
