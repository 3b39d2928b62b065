import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/dvcproject.py

# Tests run several processes at once: spinning OpenMP threads would starve each other (5-10x slower
# steps), so waiting threads sleep. Set before torch loads OpenMP; subprocesses inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from mtlbench.formats import write_idx_dataset  # noqa: E402

from mtlbench.data.sources import SOURCES, DatasetSource, SourceFile  # noqa: E402


@pytest.fixture
def idx_mirror(tmp_path) -> tuple[Path, dict[str, DatasetSource]]:
    """A mirror directory with tiny digits and fashion sets, and sources whose checksums match it."""
    mirror = tmp_path / "mirror"
    sources = {}
    for name, seed in (("digits", 1), ("fashion", 2)):
        official = SOURCES[name]
        md5s = write_idx_dataset(mirror / official.subdir, n_train=120, n_test=40, seed=seed)
        files = tuple(SourceFile(f"{m}.gz", {m: md5s[m]}) for m in md5s)
        sources[name] = DatasetSource(name, official.subdir, (), files, official.reader)
    return mirror, sources


@pytest.fixture
def prepared(idx_mirror, tmp_path) -> Path:
    """The idx_mirror's digits and fashion prepared (verified) into tmp_path/prepared."""
    from mtlbench.data.prepared import prepare

    mirror, sources = idx_mirror
    for name in ("digits", "fashion"):
        prepare(sources[name], str(mirror), True, tmp_path / "raw", tmp_path / "prepared")
    return tmp_path / "prepared"
