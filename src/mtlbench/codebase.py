"""The package's own import graph: which source files a stage's entry module can run.

DVC reruns a stage when one of its declared dependencies changes, so a stage must declare every
file it imports, directly or not, lazily inside a function or not. `import_closure` reads the
imports of mtlbench modules from their source (no import is executed); tests check every stage's
deps in dvc.yaml against it, and the train stage's unit keys hash exactly these files.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import mtlbench

PACKAGE = Path(mtlbench.__file__).parent


def module_file(name: str) -> Path | None:
    """The source file of module `name` (mtlbench.x.y), or None outside the package."""
    if name != "mtlbench" and not name.startswith("mtlbench."):
        return None
    parts = name.split(".")[1:]
    path = PACKAGE.joinpath(*parts)
    if path.is_dir() and (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _imported(path: Path) -> set[str]:
    """Every mtlbench module `path` imports, anywhere in it (from-imports of submodules included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def import_closure(module: str, skip: tuple[str, ...] = ()) -> list[Path]:
    """The package files `module` runs: itself, what it imports, recursively, and the __init__ of
    every package on the way (Python runs them on import); modules named in `skip` are neither
    counted nor followed (a registry that imports every plug-in)."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        for candidate in [name, *parents]:
            if candidate in skip:
                continue
            path = module_file(candidate)
            if path is not None and path not in seen:
                seen.add(path)
                todo += sorted(_imported(path))
    return sorted(seen)


def digest(files: list[Path]) -> str:
    """SHA-256 over the files' package-relative paths and bytes."""
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()
