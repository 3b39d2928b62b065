"""Small datasets written in the official formats (IDX gzip, CIFAR python tarballs), so the real
loading code runs on them: the tests and `make check` (mtlbench.check) write their archives with it.
Images carry a class-dependent pattern so models can learn them."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np


def idx_bytes(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def learnable_images(labels: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Noise plus a bright block whose position encodes the label."""
    images = rng.integers(0, 60, size=(len(labels), *shape), dtype=np.uint8)
    flat = images.reshape(len(labels), -1)
    block = flat.shape[1] // 12
    for i, label in enumerate(labels.tolist()):
        flat[i, label * block : (label + 1) * block] = 250
    return images


def write_idx_dataset(folder: Path, n_train: int, n_test: int, seed: int) -> dict[str, str]:
    """The four MNIST-layout files in `folder`; returns {member: md5 of its uncompressed content}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    md5s = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = learnable_images(labels, (28, 28), rng)
        for kind, array in ((f"{split}-images-idx3-ubyte", images), (f"{split}-labels-idx1-ubyte", labels)):
            content = idx_bytes(array)
            (folder / f"{kind}.gz").write_bytes(gzip.compress(content))
            md5s[kind] = hashlib.md5(content).hexdigest()
    return md5s


def _pickle(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)


def write_cifar10(path: Path, per_batch: int, n_test: int, seed: int) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    members = {}
    for name, n in [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", n_test)]:
        labels = rng.integers(0, 10, size=n)
        data = learnable_images(labels, (3 * 32 * 32,), rng)
        members[name] = _pickle({b"batch_label": name.encode(), b"labels": labels.tolist(), b"data": data})
    members["batches.meta"] = _pickle({b"label_names": [f"class{i}".encode() for i in range(10)]})
    return _write_tar(path, "cifar-10-batches-py", members)


def write_cifar100(path: Path, n_train: int, n_test: int, seed: int) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    members = {}
    for name, n in (("train", n_train), ("test", n_test)):
        fine = rng.integers(0, 100, size=n)
        data = learnable_images(fine % 10, (3 * 32 * 32,), rng)
        members[name] = _pickle({b"fine_labels": fine.tolist(), b"coarse_labels": (fine // 5).tolist(), b"data": data})
    members["meta"] = _pickle({b"fine_label_names": [b"f%d" % i for i in range(100)]})
    return _write_tar(path, "cifar-100-python", members)


def _write_tar(path: Path, folder: str, members: dict[str, bytes]) -> dict[str, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return {name: hashlib.md5(content).hexdigest() for name, content in members.items()}
