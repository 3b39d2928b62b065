"""A read-only place to write (the MLflow store, results/, reports/): one line naming it and what to
do, exit 2, no traceback, the earlier files intact. Read-only for real: a read-only bind mount,
which binds root too (permission bits do not; tests run as root in CI). Skipped where mounting is
not allowed."""

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mtlbench.stages.evaluate import store_fault
from mtlbench.tracking import Tracker
from test_tracking import _outcome


@pytest.fixture
def read_only_view(tmp_path):
    """(writable folder, the same folder mounted read-only)."""
    source, view = tmp_path / "rw", Path(f"/tmp/mtlbench-ro-{uuid.uuid4().hex[:8]}")
    source.mkdir()
    view.mkdir()
    bound = subprocess.run(["mount", "--bind", str(source), str(view)], capture_output=True)
    if bound.returncode != 0:
        view.rmdir()
        pytest.skip("cannot bind-mount here (needs root)")
    try:
        if subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only here")
        yield source, view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)
        view.rmdir()


@pytest.mark.parametrize("lock_file_exists", [False, True], ids=["fresh", "locked-before"])
def test_a_read_only_mlflow_store_is_named_with_the_fix(read_only_view, lock_file_exists):
    source, view = read_only_view
    Tracker(f"sqlite:///{source / 'mlflow.db'}", False, source, "e").log_study("s", [_outcome()], "")
    if not lock_file_exists:
        (source / "mlflow.db.lock").unlink()
    uri = f"sqlite:///{view / 'mlflow.db'}"
    with pytest.raises(Exception) as raised:  # whatever MLflow or the OS raise: store_fault names it
        Tracker(uri, False, view, "e").log_study("s", [_outcome(seeds=(0, 1, 2))], "")
    fault = store_fault(raised.value, uri)
    assert fault is not None, f"not recognised as a store fault: {raised.value!r}"
    assert str(fault).startswith(f"the MLflow store {uri} cannot be written")
    assert "mlflow.tracking_uri" in str(fault)
    runs = MlflowClient(f"sqlite:///{source / 'mlflow.db'}").search_runs(
        [MlflowClient(f"sqlite:///{source / 'mlflow.db'}").get_experiment_by_name("s").experiment_id])
    assert len(runs) == 3  # the earlier record intact


def test_a_record_replaced_on_a_tracking_server_is_said_and_an_unrelated_error_is_not_a_store_fault():
    """A tracking server has no lock a workspace can hold (a local store has: test_tracking)."""
    raced = Exception("The run 315b must be in the 'active' state. Current state is deleted.")
    assert "another workspace evaluating the same study at once" in str(store_fault(raced, "http://127.0.0.1:5000"))
    assert store_fault(ValueError("bad value"), "sqlite:///x.db") is None


def test_a_stage_writing_into_a_read_only_folder_says_it_in_one_line(read_only_view):
    source, view = read_only_view
    (source / "earlier.json").write_text('{"kept": true}')
    code = ("from pathlib import Path; from mtlbench.stages import run_stage; from mtlbench.fileio import write_json; "
            f"run_stage(lambda: write_json(Path({str(view)!r}) / 'reports' / 'new.json', [1]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"error: cannot write {view / 'reports'}: read-only file system;")
    assert "earlier outputs are intact" in done.stderr
    assert sorted(p.name for p in source.rglob("*")) == ["earlier.json"]


def test_an_unreachable_tracking_server_is_one_line_within_seconds(tmp_path):
    import socket
    import time

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{probe.getsockname()[1]}"
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        Tracker(uri, False, tmp_path, "e")
    assert time.monotonic() - started < 30  # MLflow's own retries took 249 s
    fault = store_fault(raised.value, uri)
    assert fault is not None, f"not recognised: {raised.value!r}"
    assert str(fault).startswith(f"the MLflow tracking server {uri} does not answer")


def test_a_malformed_store_is_one_line_naming_it_and_the_fix(tmp_path):
    (tmp_path / "mlflow.db").write_bytes(b"this is not SQLite" * 100)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(Exception) as raised:
        Tracker(uri, False, tmp_path, "e")
    fault = store_fault(raised.value, uri)
    assert fault is not None, f"not recognised: {raised.value!r}"
    assert str(fault).startswith(f"the MLflow store {uri} is not a readable SQLite database")
    assert (tmp_path / "mlflow.db").read_bytes() == b"this is not SQLite" * 100  # nothing overwritten
