"""The README and docs/ name only what exists: every repository path, `make` target, params key
and docs link they mention (a renamed file or a dropped target fails here, not in a reader's shell)."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# paths as the docs write them, inside backticks; placeholders (<study>, *) are matched as globs
PATH = re.compile(r"`((?:src|tests|docs|check|tasks|bench|archive|\.ci|\.github)/[^`\s]*)`")
TARGET = re.compile(r"`make ([a-z-]+)")
PARAM = re.compile(r"`((?:run|data|mlflow|rsn2|hs|modern|cuda|cpu)\.[a-z_0-9]+)(?=[`=:\s])")
NOT_PARAMS = {"mlflow.db", "mlflow.pytorch", "mlflow.pyfunc", "run.json"}  # a file, MLflow's modules
LINK = re.compile(r"\]\(((?!https?:)[^)#]+)")


def _exists(path: str) -> bool:
    glob = re.sub(r"<[^>]+>", "*", path.rstrip("/"))
    return any(ROOT.glob(glob)) if "*" in glob else (ROOT / glob).exists()


def test_every_path_target_param_and_link_the_docs_name_exists():
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    missing = []
    for page in PAGES:
        text = page.read_text()
        missing += [f"{page.name}: path {p}" for p in PATH.findall(text) if not _exists(p)]
        missing += [f"{page.name}: make {t}" for t in TARGET.findall(text) if t not in targets]
        for key in set(PARAM.findall(text)) - NOT_PARAMS:
            section, name = key.split(".")
            if name not in params.get(section, {}):
                missing.append(f"{page.name}: param {key}")
        missing += [f"{page.name}: link {link}" for link in LINK.findall(text)
                    if not (page.parent / link).exists()]
    assert not missing, "\n".join(missing)


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


# The read-only DVC commands the docs tell a user to type, as written (a flag DVC dropped, such as
# `dvc metrics show --targets` in DVC 3, fails here); `dvc plots show` writes a page, so it runs
# with its output sent to a temporary folder.
READ_ONLY = re.compile(r"`(dvc (?:metrics show|metrics diff|params diff|exp show|plots show)[^`]*)`")


def test_every_documented_dvc_command_runs_on_this_repository(tmp_path):
    commands = sorted({c for page in PAGES for c in READ_ONLY.findall(page.read_text())})
    assert any("exp show" in c for c in commands) and any("metrics show" in c for c in commands)
    dvc = Path(sys.executable).with_name("dvc")
    failed = []
    for command in commands:
        args = [str(dvc), *shlex.split(command)[1:]]
        if args[1:3] == ["plots", "show"]:
            args += ["-o", str(tmp_path / "plots")]
        if args[1:3] == ["exp", "show"]:
            args += ["--no-pager"]
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
        if done.returncode != 0:
            failed.append(f"{command}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    assert not failed, "\n".join(failed)
