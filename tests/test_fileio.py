"""Atomic outputs get the modes the process umask allows (temp files start private)."""

import os
import stat

from mtlbench.fileio import atomic_dir, write_json


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_dir(tmp_path / "folder") as folder:
            (folder / "b.txt").write_text("b")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755
    os.umask(0o077)
    try:
        write_json(tmp_path / "c.json", {"x": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "c.json").stat().st_mode) == 0o600
