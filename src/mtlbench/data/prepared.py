"""The compact cached form under data/prepared: one uncompressed .npz of uint8/int64 arrays per
dataset (loads straight into tensors) and a .json provenance record beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mtlbench.data.sources import DatasetError, DatasetSource, fetch
from mtlbench.fileio import atomic_path, read_json, write_json


def prepared_paths(out_dir: Path, dataset: str) -> tuple[Path, Path]:
    return out_dir / f"{dataset}.npz", out_dir / f"{dataset}.json"


def prepare(source: DatasetSource, mirror: str | None, verify: bool, raw_dir: Path, out_dir: Path) -> dict:
    """Fetch, verify and convert one dataset; returns its provenance record."""
    arrays, provenance = fetch(source, mirror, verify, raw_dir)
    provenance["shapes"] = {key: list(value.shape) for key, value in arrays.items()}
    npz_path, json_path = prepared_paths(out_dir, source.name)
    with atomic_path(npz_path, sum(a.nbytes for a in arrays.values())) as tmp:
        with open(tmp, "wb") as handle:  # a file handle stops numpy from appending ".npz"
            np.savez(handle, **arrays)
    write_json(json_path, provenance)
    return provenance


def load_arrays(prepared_dir: Path, dataset: str) -> dict[str, np.ndarray]:
    npz_path, _ = prepared_paths(prepared_dir, dataset)
    if not npz_path.is_file():
        raise DatasetError(f"{npz_path}: not prepared; run the download stage first (`dvc repro download`)")
    with np.load(npz_path) as data:
        return {key: data[key] for key in data.files}


def load_provenance(prepared_dir: Path, dataset: str) -> dict:
    return read_json(prepared_paths(prepared_dir, dataset)[1])
