"""Dataset sources: where each file comes from, how its content is verified, how it is read.

Checksums are of *content* (uncompressed IDX files, the members of the CIFAR tarballs), not of the
archives: two gzip wrappers of the same bytes are the same dataset (see SPEC.md section 1).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from mtlbench.fileio import is_disk_full, no_space

MIRROR_ENV = "MTLBENCH_DATA_MIRROR"  # a local copy of the dataset hosts (tests, CI, offline machines)

MIRROR_HINT = (
    f"Set a mirror with the environment variable {MIRROR_ENV}=<directory or URL> or `data.mirror` in "
    "params.yaml; its layout is <mirror>/mnist/<official IDX .gz names>, <mirror>/fashion-mnist/<...>, "
    "<mirror>/cifar-10-python.tar.gz, <mirror>/cifar-100-python.tar.gz."
)


class DatasetError(RuntimeError):
    """A dataset file that is missing, unreadable or not the expected content."""


@dataclass(frozen=True)
class SourceFile:
    """One downloadable file; `members` maps each content part to its expected MD5."""

    name: str
    members: dict[str, str]


@dataclass(frozen=True)
class DatasetSource:
    name: str
    subdir: str  # folder inside the mirror ("" for the CIFAR tarballs, which sit at its top)
    official_urls: tuple[str, ...]  # base URLs tried in order when no mirror is set
    files: tuple[SourceFile, ...]
    reader: Callable[[dict[str, bytes]], dict[str, np.ndarray]] = field(repr=False)
    class_names: tuple[str, ...] = ()
    image_shape: tuple[int, int, int] = (1, 28, 28)  # one image, channels first (models are built from it)


# ------------------------------------------------------------------ content readers

def unpack_gzip(path: Path, raw: bytes) -> bytes:
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise _unreadable(path, raw, f"not a complete gzip file ({err})") from err


def unpack_tar(path: Path, raw: bytes, wanted: set[str]) -> dict[str, bytes]:
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as tar:
            found, where = {}, {}
            for member in tar.getmembers():
                base = member.name.rsplit("/", 1)[-1]
                if base in wanted and member.isfile():
                    if base in found:
                        raise _unreadable(path, raw, f"archive holds two members named {base} ({where[base]} and "
                                                     f"{member.name}); which one is the data is ambiguous")
                    found[base], where[base] = tar.extractfile(member).read(), member.name
    except (tarfile.TarError, OSError, EOFError) as err:
        raise _unreadable(path, raw, f"not a complete tar archive ({err})") from err
    missing = sorted(wanted - set(found))
    if missing:
        raise _unreadable(path, raw, f"archive lacks member(s) {', '.join(missing)}")
    return found


def _unreadable(path: Path, raw: bytes, why: str) -> DatasetError:
    return DatasetError(f"{path}: {why}; md5 of the file as found: {md5(raw)}. {MIRROR_HINT}")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def parse_idx(content: bytes, what: str, rank_expected: int | None = None) -> np.ndarray:
    """IDX (the MNIST format): 2 zero bytes, a type byte (0x08 = uint8), a rank byte, big-endian dims."""
    if len(content) < 4 or content[:2] != b"\0\0" or content[2] != 0x08:
        raise DatasetError(f"{what}: not an IDX file of unsigned bytes")
    rank = content[3]
    if rank_expected is not None and rank != rank_expected:
        kind = {3: "images", 1: "labels"}.get(rank_expected, f"rank {rank_expected}")
        raise DatasetError(f"{what}: expected {kind} (an IDX array of rank {rank_expected}), the file holds rank "
                           f"{rank}; are the images and labels files swapped?")
    header = 4 + 4 * rank
    dims = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    expected = header + int(np.prod(dims))
    if len(content) != expected:
        raise DatasetError(f"{what}: IDX header promises {expected} bytes, file has {len(content)}")
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_dataset(contents: dict[str, bytes]) -> dict[str, np.ndarray]:
    def images(name: str) -> np.ndarray:
        arr = parse_idx(contents[name], name, 3)
        return arr.reshape(arr.shape[0], 1, arr.shape[1], arr.shape[2])

    def labels(name: str) -> np.ndarray:
        return parse_idx(contents[name], name, 1).astype(np.int64)

    arrays = {
        "x_train": images("train-images-idx3-ubyte"),
        "y_train": labels("train-labels-idx1-ubyte"),
        "x_test": images("t10k-images-idx3-ubyte"),
        "y_test": labels("t10k-labels-idx1-ubyte"),
    }
    for split in ("train", "test"):
        if len(arrays[f"x_{split}"]) != len(arrays[f"y_{split}"]):
            prefix = "train" if split == "train" else "t10k"
            raise DatasetError(f"{prefix}-images-idx3-ubyte has {len(arrays[f'x_{split}'])} images but "
                               f"{prefix}-labels-idx1-ubyte {len(arrays[f'y_{split}'])} labels")
    return arrays


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """CIFAR batches are pickles; allow only what they contain (numpy arrays), never arbitrary code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 spell bytes
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"CIFAR batch refers to {module}.{name}, which a data file must not")
        return super().find_class(module, name)


def load_cifar_pickle(content: bytes, what: str) -> dict:
    try:
        return _ArrayOnlyUnpickler(io.BytesIO(content), encoding="bytes").load()
    except Exception as err:  # any unpickling failure means a bad file
        raise DatasetError(f"{what}: not a CIFAR python batch ({err})") from err


def _field(batch, key: bytes, what: str):
    """One entry of a CIFAR batch, which must be a dict holding it."""
    if not isinstance(batch, dict):
        raise DatasetError(f"{what}: expected a CIFAR batch (a dict with data and labels), got a {type(batch).__name__}")
    if key not in batch:
        raise DatasetError(f"{what}: the batch has no {key.decode()!r} entry (it has {', '.join(k.decode() if isinstance(k, bytes) else str(k) for k in batch)})")
    return batch[key]


def _labels(batch, key: bytes, what: str) -> np.ndarray:
    return np.asarray(_field(batch, key, what), dtype=np.int64)


def _cifar_images(batch: dict, what: str) -> np.ndarray:
    data = np.asarray(_field(batch, b"data", what), dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(f"{what}: expected rows of 3072 bytes, got shape {data.shape}")
    return data.reshape(-1, 3, 32, 32)


def read_cifar10(contents: dict[str, bytes]) -> dict[str, np.ndarray]:
    train = [load_cifar_pickle(contents[f"data_batch_{i}"], f"data_batch_{i}") for i in range(1, 6)]
    test = load_cifar_pickle(contents["test_batch"], "test_batch")
    return {
        "x_train": np.concatenate([_cifar_images(b, f"data_batch_{i}") for i, b in enumerate(train, 1)]),
        "y_train": np.concatenate([_labels(b, b"labels", f"data_batch_{i}") for i, b in enumerate(train, 1)]),
        "x_test": _cifar_images(test, "test_batch"),
        "y_test": _labels(test, b"labels", "test_batch"),
    }


def read_cifar100(contents: dict[str, bytes]) -> dict[str, np.ndarray]:
    train = load_cifar_pickle(contents["train"], "train")
    test = load_cifar_pickle(contents["test"], "test")
    return {
        "x_train": _cifar_images(train, "train"),
        "y_train": _labels(train, b"fine_labels", "train"),
        "y_train_coarse": _labels(train, b"coarse_labels", "train"),
        "x_test": _cifar_images(test, "test"),
        "y_test": _labels(test, b"fine_labels", "test"),
        "y_test_coarse": _labels(test, b"coarse_labels", "test"),
    }


# ------------------------------------------------------------------ the registry

def _idx_files(md5s: dict[str, str]) -> tuple[SourceFile, ...]:
    return tuple(SourceFile(f"{name}.gz", {name: digest}) for name, digest in md5s.items())


SOURCES: dict[str, DatasetSource] = {
    "digits": DatasetSource(
        name="digits",
        subdir="mnist",
        official_urls=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        files=_idx_files({
            "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
            "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
            "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        }),
        reader=read_idx_dataset,
    ),
    "fashion": DatasetSource(
        name="fashion",
        subdir="fashion-mnist",
        official_urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        files=_idx_files({
            "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
        }),
        reader=read_idx_dataset,
    ),
    "cifar10": DatasetSource(
        name="cifar10",
        subdir="",
        official_urls=("https://www.cs.toronto.edu/~kriz/",),
        files=(SourceFile("cifar-10-python.tar.gz", {
            "data_batch_1": "c99cafc152244af753f735de768cd75f",
            "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
            "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
            "data_batch_4": "634d18415352ddfa80567beed471001a",
            "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
            "test_batch": "40351d587109b95175f43aff81a1287e",
        }),),
        reader=read_cifar10,
        image_shape=(3, 32, 32),
    ),
    "cifar100": DatasetSource(
        name="cifar100",
        subdir="",
        official_urls=("https://www.cs.toronto.edu/~kriz/",),
        files=(SourceFile("cifar-100-python.tar.gz", {
            "train": "16019d7e3df5f24257cddd939b257f8d",
            "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        }),),
        reader=read_cifar100,
        image_shape=(3, 32, 32),
    ),
}


# ------------------------------------------------------------------ fetching

def _is_url(location: str) -> bool:
    return "://" in location


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *[p for p in parts if p]])


def _download(url: str, dest: Path) -> None:
    """Download to a temp file beside `dest`, rename only when complete."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.", delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, tmp)
        except BaseException as err:
            Path(tmp.name).unlink(missing_ok=True)
            if is_disk_full(err, dest.parent, None):
                raise no_space(dest, None) from None
            raise
    Path(tmp.name).replace(dest)


def locate(source: DatasetSource, file: SourceFile, mirror: str | None, raw_dir: Path) -> Path:
    """A local path holding `file`: the mirror directory itself, or a downloaded copy under raw_dir."""
    if mirror and not _is_url(mirror):
        path = Path(mirror).expanduser() / source.subdir / file.name
        if not Path(mirror).expanduser().is_dir():
            raise DatasetError(f"{path}: mirror directory {mirror} does not exist. {MIRROR_HINT}")
        if not path.is_file():
            raise DatasetError(f"{path}: missing from the mirror (expected content md5 "
                               f"{_expected(file)}). {MIRROR_HINT}")
        return path
    cached = raw_dir / source.subdir / file.name
    if cached.is_file():
        return cached
    urls = [_join(mirror, source.subdir, file.name)] if mirror else [base + file.name for base in source.official_urls]
    errors = []
    for url in urls:
        try:
            _download(url, cached)
            return cached
        except (urllib.error.URLError, OSError, ValueError) as err:
            errors.append(f"{url}: {err}")
    raise DatasetError(f"{file.name}: could not download ({'; '.join(errors)}). {MIRROR_HINT}")


def _expected(file: SourceFile) -> str:
    return ", ".join(f"{member} {digest}" for member, digest in file.members.items())


def read_verified(path: Path, file: SourceFile, verify: bool) -> tuple[dict[str, bytes], dict[str, str]]:
    """Unpack `path`, check each member's MD5; returns the contents and the actual checksums."""
    raw = path.read_bytes()
    if file.name.endswith(".tar.gz"):
        contents = unpack_tar(path, raw, set(file.members))
    else:
        (member,) = file.members
        contents = {member: unpack_gzip(path, raw)}
    actual = {member: md5(content) for member, content in contents.items()}
    for member, expected in file.members.items():
        if actual[member] == expected:
            continue
        message = (f"{path}: content of {member} has md5 {actual[member]}, expected {expected} "
                   f"({len(contents[member])} bytes; truncated or corrupt?). {MIRROR_HINT}")
        if verify:
            raise DatasetError(message)
        warnings.warn(f"data.verify is false, going on: {message}", stacklevel=2)
    return contents, actual


def fetch(source: DatasetSource, mirror: str | None, verify: bool, raw_dir: Path) -> tuple[dict[str, np.ndarray], dict]:
    """All of a dataset's arrays, plus a provenance record (files, actual and expected checksums)."""
    contents: dict[str, bytes] = {}
    provenance = {"dataset": source.name, "verified": verify, "files": {}}
    paths = []
    for file in source.files:
        path = locate(source, file, mirror, raw_dir)
        try:
            file_contents, actual = read_verified_or_refetched(source, file, path, mirror, verify, raw_dir)
        except DatasetError:
            if path.is_relative_to(raw_dir):
                path.unlink(missing_ok=True)  # a bad download must not be trusted next time
            raise
        paths.append(str(path))
        contents.update(file_contents)
        provenance["files"][file.name] = {
            "md5": actual,
            "expected_md5": dict(file.members),
            "matches": actual == dict(file.members),
        }
    try:
        arrays = source.reader(contents)
    except DatasetError as err:
        raise DatasetError(f"dataset {source.name} ({', '.join(paths)}): {err}. {MIRROR_HINT}") from None
    return arrays, provenance


def read_verified_or_refetched(source: DatasetSource, file: SourceFile, path: Path, mirror: str | None, verify: bool,
                               raw_dir: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    """read_verified, except that a cached download (under raw_dir) that is unreadable or not the
    expected content is discarded and downloaded once more: the mirror may have changed since."""
    cached = path.is_relative_to(raw_dir)
    if cached:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                contents, actual = read_verified(path, file, verify=True)
                return contents, actual
            except DatasetError:
                path.unlink(missing_ok=True)
                path = locate(source, file, mirror, raw_dir)
    return read_verified(path, file, verify)
