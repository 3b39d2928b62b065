"""The README and docs/ name only what exists: every repository path, `make` target, params key
and docs link they mention (a renamed file or a dropped target fails here, not in a reader's shell)."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# paths as the docs write them, inside backticks; placeholders (<study>, *) are matched as globs
PATH = re.compile(r"`((?:src|tests|docs|check|tasks|bench|\.ci|\.github)/[^`\s]*)`")
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
