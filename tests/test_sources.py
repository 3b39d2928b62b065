"""The download stage's library on files in the official formats: verify, read, fail clearly."""

import gzip
import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from mtlbench.formats import write_cifar10, write_cifar100

from mtlbench.data.prepared import load_arrays, prepare
from mtlbench.data.sources import SOURCES, DatasetError, DatasetSource, SourceFile, fetch


def test_idx_mirror_is_read_into_nchw_uint8(idx_mirror, tmp_path):
    mirror, sources = idx_mirror
    arrays, provenance = fetch(sources["digits"], str(mirror), verify=True, raw_dir=tmp_path / "raw")
    assert arrays["x_train"].shape == (120, 1, 28, 28) and arrays["x_train"].dtype == np.uint8
    assert arrays["y_test"].shape == (40,) and arrays["y_test"].dtype == np.int64
    assert all(f["matches"] for f in provenance["files"].values())
    assert not (tmp_path / "raw").exists()  # a local mirror is read in place, not copied


def test_corrupt_file_names_file_checksums_and_mirror(idx_mirror, tmp_path):
    mirror, sources = idx_mirror
    path = mirror / "mnist" / "train-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(path.read_bytes()))
    content[-1] ^= 0xFF
    path.write_bytes(gzip.compress(bytes(content)))
    expected = sources["digits"].files[1].members["train-labels-idx1-ubyte"]
    with pytest.raises(DatasetError) as err:
        fetch(sources["digits"], str(mirror), verify=True, raw_dir=tmp_path / "raw")
    message = str(err.value)
    assert str(path) in message and expected in message
    assert f"has md5 {__import__('hashlib').md5(bytes(content)).hexdigest()}" in message
    assert "MTLBENCH_DATA_MIRROR" in message


def test_truncated_gzip_is_reported(idx_mirror, tmp_path):
    mirror, sources = idx_mirror
    path = mirror / "mnist" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError, match="not a complete gzip file.*md5 of the file as found"):
        fetch(sources["digits"], str(mirror), verify=True, raw_dir=tmp_path / "raw")


def test_missing_file_and_missing_mirror(idx_mirror, tmp_path):
    mirror, sources = idx_mirror
    (mirror / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.gz: missing from the mirror.*expected content md5"):
        fetch(sources["fashion"], str(mirror), verify=True, raw_dir=tmp_path / "raw")
    with pytest.raises(DatasetError, match="does not exist.*MTLBENCH_DATA_MIRROR"):
        fetch(sources["fashion"], str(tmp_path / "nowhere"), verify=True, raw_dir=tmp_path / "raw")


def test_verify_false_warns_and_records_actual_checksums(idx_mirror, tmp_path):
    mirror, _ = idx_mirror  # the real registry's checksums cannot match synthetic files
    with pytest.warns(UserWarning, match="data.verify is false"):
        arrays, provenance = fetch(SOURCES["digits"], str(mirror), verify=False, raw_dir=tmp_path / "raw")
    record = provenance["files"]["train-images-idx3-ubyte.gz"]
    assert not record["matches"] and record["md5"]["train-images-idx3-ubyte"] != record["expected_md5"]["train-images-idx3-ubyte"]
    assert len(arrays["y_train"]) == 120


def test_url_mirror_downloads_verifies_and_discards_bad_downloads(idx_mirror, tmp_path):
    mirror, sources = idx_mirror
    raw = tmp_path / "raw"
    arrays, _ = fetch(sources["digits"], mirror.as_uri(), verify=True, raw_dir=raw)
    assert (raw / "mnist" / "train-images-idx3-ubyte.gz").is_file() and len(arrays["x_test"]) == 40
    # a corrupt download is removed, so the next run fetches again rather than trusting it
    bad = replace(sources["digits"], files=(SourceFile("t10k-labels-idx1-ubyte.gz", {"t10k-labels-idx1-ubyte": "0" * 32}),))
    (raw / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="expected 0{32}"):
        fetch(bad, mirror.as_uri(), verify=True, raw_dir=raw)
    assert not (raw / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not [p for p in (raw / "mnist").iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_unreachable_url_names_the_mirror_setting(tmp_path):
    with pytest.raises(DatasetError, match="could not download.*MTLBENCH_DATA_MIRROR"):
        fetch(SOURCES["fashion"], (tmp_path / "absent").as_uri(), verify=True, raw_dir=tmp_path / "raw")


def _cifar_source(name: str, md5s: dict[str, str]) -> DatasetSource:
    official = SOURCES[name]
    members = {m: md5s[m] for m in official.files[0].members}
    return replace(official, files=(SourceFile(official.files[0].name, members),))


def test_cifar10_tarball_is_read_and_verified(tmp_path):
    md5s = write_cifar10(tmp_path / "m" / "cifar-10-python.tar.gz", per_batch=6, n_test=5, seed=0)
    arrays, provenance = fetch(_cifar_source("cifar10", md5s), str(tmp_path / "m"), True, tmp_path / "raw")
    assert arrays["x_train"].shape == (30, 3, 32, 32) and arrays["y_train"].shape == (30,)
    assert arrays["x_test"].shape == (5, 3, 32, 32)
    assert provenance["files"]["cifar-10-python.tar.gz"]["matches"]


def test_cifar100_keeps_fine_and_coarse_labels(tmp_path):
    md5s = write_cifar100(tmp_path / "m" / "cifar-100-python.tar.gz", n_train=20, n_test=8, seed=0)
    arrays, _ = fetch(_cifar_source("cifar100", md5s), str(tmp_path / "m"), True, tmp_path / "raw")
    assert arrays["y_train"].max() < 100 and np.array_equal(arrays["y_train_coarse"], arrays["y_train"] // 5)
    assert arrays["x_test"].shape == (8, 3, 32, 32)


def test_corrupt_cifar_tarball_is_reported(tmp_path):
    path = tmp_path / "m" / "cifar-10-python.tar.gz"
    md5s = write_cifar10(path, per_batch=4, n_test=4, seed=0)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match=r"cifar-10-python.tar.gz: not a complete tar archive"):
        fetch(_cifar_source("cifar10", md5s), str(tmp_path / "m"), True, tmp_path / "raw")


def test_prepare_writes_npz_and_provenance_atomically(idx_mirror, tmp_path):
    mirror, sources = idx_mirror
    out = tmp_path / "prepared"
    prepare(sources["fashion"], str(mirror), True, tmp_path / "raw", out)
    assert sorted(p.name for p in out.iterdir()) == ["fashion.json", "fashion.npz"]
    assert load_arrays(out, "fashion")["x_train"].shape == (120, 1, 28, 28)
    (mirror / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(DatasetError):
        prepare(sources["digits"], str(mirror), True, tmp_path / "raw", out)
    assert sorted(p.name for p in out.iterdir()) == ["fashion.json", "fashion.npz"]  # nothing half-written


@pytest.mark.skipif(not os.environ.get("MTLBENCH_DATA_MIRROR"), reason="needs a real mirror (MTLBENCH_DATA_MIRROR)")
@pytest.mark.parametrize("name", ["digits", "fashion"])
def test_real_mirror_matches_spec_checksums(name, tmp_path):
    mirror = os.environ["MTLBENCH_DATA_MIRROR"]
    if not (Path(mirror) / SOURCES[name].subdir).is_dir():
        pytest.skip(f"{mirror} has no {SOURCES[name].subdir}/")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        arrays, provenance = fetch(SOURCES[name], mirror, verify=True, raw_dir=tmp_path / "raw")
    assert arrays["x_train"].shape == (60000, 1, 28, 28) and arrays["x_test"].shape == (10000, 1, 28, 28)
    assert all(f["matches"] for f in provenance["files"].values())
