"""dvc stage `summarize`: the cross-study answer (reports/summary.md, .html and .json,
reports/figures/, metrics/summary.json) from the evaluated studies' details (reports/studies/<run>.json)."""

from __future__ import annotations

import sys
from pathlib import Path

from mtlbench.fileio import atomic_dir, read_json, write_json, write_text
from mtlbench.outputs import SCRATCH
from mtlbench.stages import load_params, run_stage
from mtlbench.studies import STUDIES
from mtlbench.summary import build_summary, made_line, missing_note

DETAILS_DIR = Path("reports/studies")


def main() -> None:
    params = load_params()
    present = [r for r in params.run.studies if (DETAILS_DIR / f"{r}.json").is_file()]
    details = [read_json(DETAILS_DIR / f"{r}.json") for r in present]
    missing = [s for s in STUDIES if s not in {params.study_of(r) for r in present}]  # studies no listed run answers
    markdown_text, page, document, rows, images = build_summary(details, missing, made_line(Path.cwd()))
    with atomic_dir(Path("reports/figures"), scratch=SCRATCH) as folder:
        for name, png in images.items():
            (folder / name).write_bytes(png)
    write_text(Path("reports/summary.md"), markdown_text)
    write_text(Path("reports/summary.html"), page)
    write_json(Path("metrics/summary.json"), document)
    write_json(Path("reports/summary.json"), rows)
    print(rows["answer"], file=sys.stderr)
    if missing:
        print(missing_note(missing), file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
