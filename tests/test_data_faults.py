"""Bad dataset files with verification off, and stale downloads: one clear message naming the
dataset and the file, never a raw IndexError / TypeError / KeyError, nothing half-written."""

import gzip
import io
import shutil
import tarfile

import pytest

from mtlbench.data.prepared import prepare
from mtlbench.data.sources import SOURCES, DatasetError, DatasetSource, SourceFile
from mtlbench.formats import _pickle, write_cifar10, write_idx_dataset


def test_swapped_images_and_labels_name_the_file(idx_mirror, tmp_path):
    mirror, sources = idx_mirror
    folder = mirror / "mnist"
    images, labels = folder / "train-images-idx3-ubyte.gz", folder / "train-labels-idx1-ubyte.gz"
    images.rename(folder / "swap"), labels.rename(images), (folder / "swap").rename(labels)
    with pytest.raises(DatasetError, match=r"dataset digits \(.*\): train-images-idx3-ubyte: expected images .*"
                                           r"are the images and labels files swapped\?"):
        prepare(SOURCES["digits"], str(mirror), False, tmp_path / "raw", tmp_path / "prepared")
    assert not (tmp_path / "prepared" / "digits.npz").exists()


def test_images_and_labels_of_different_lengths_name_both_files(tmp_path):
    write_idx_dataset(tmp_path / "a" / "mnist", n_train=50, n_test=20, seed=1)
    write_idx_dataset(tmp_path / "b" / "mnist", n_train=60, n_test=20, seed=1)
    shutil.copy(tmp_path / "b" / "mnist" / "train-labels-idx1-ubyte.gz", tmp_path / "a" / "mnist")
    with pytest.raises(DatasetError, match=r"dataset digits .*train-images-idx3-ubyte has 50 images but "
                                           r"train-labels-idx1-ubyte 60 labels"):
        prepare(SOURCES["digits"], str(tmp_path / "a"), False, tmp_path / "raw", tmp_path / "prepared")


def _cifar_with(tmp_path, batch) -> str:
    path = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    write_cifar10(path, per_batch=4, n_test=4, seed=0)
    with tarfile.open(path) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    members["cifar-10-batches-py/data_batch_2"] = _pickle(batch)
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return str(tmp_path / "mirror")


@pytest.mark.parametrize("batch, message", [
    ([1, 2, 3], r"data_batch_2: expected a CIFAR batch \(a dict with data and labels\), got a list"),
    ({b"data": [[0] * 3072]}, r"data_batch_2: the batch has no 'labels' entry \(it has data\)"),
])
def test_cifar_batches_of_the_wrong_shape_name_the_member(tmp_path, batch, message):
    mirror = _cifar_with(tmp_path, batch)
    with pytest.raises(DatasetError, match=r"dataset cifar10 .*" + message):
        prepare(SOURCES["cifar10"], mirror, False, tmp_path / "raw", tmp_path / "prepared")


def test_two_members_with_one_name_are_ambiguous(tmp_path):
    path = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    write_cifar10(path, per_batch=4, n_test=4, seed=0)
    with tarfile.open(path) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    members.append(("elsewhere/test_batch", members[-2][1]))
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    with pytest.raises(DatasetError, match=r"archive holds two members named test_batch \(cifar-10-batches-py/"
                                           r"test_batch and elsewhere/test_batch\)"):
        prepare(SOURCES["cifar10"], str(tmp_path / "mirror"), False, tmp_path / "raw", tmp_path / "prepared")


def test_a_stale_cached_download_is_fetched_again_when_the_mirror_changed(idx_mirror, tmp_path):
    mirror, sources = idx_mirror
    url = (mirror).as_uri()
    good = (mirror / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    content = gzip.decompress(good)
    changed = content[:-1] + bytes([(content[-1] + 1) % 10])  # one label changed: valid IDX, wrong content
    (mirror / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(changed))
    with pytest.raises(DatasetError):  # the broken mirror: verification fails and names the file
        prepare(sources["digits"], url, True, tmp_path / "raw", tmp_path / "prepared")
    with pytest.warns(UserWarning):  # verification off: the broken copy is used, and cached
        prepare(sources["digits"], url, False, tmp_path / "raw", tmp_path / "prepared")
    (mirror / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(good)  # the mirror is repaired
    record = prepare(sources["digits"], url, True, tmp_path / "raw", tmp_path / "prepared")  # first try
    assert all(f["matches"] for f in record["files"].values())
