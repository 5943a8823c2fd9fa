"""Where datasets live on disk, read without decoding anything: the canonical folder, its shards, the splits
a copy holds, and whether a manifest ships with the package.

This module imports only the standard library and the registry, so that listing datasets (``medseg-eval
datasets list``) stays fast; reading manifests and shards is :mod:`.canonical`'s and :mod:`.build`'s job.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from .download import home
from .registry import get_spec

#: The split manifests shipped with the package, one ``<name>.csv`` per pinned dataset.
MANIFESTS = resources.files("medseg_eval.datasets") / "splits"


def canonical_dir(name: str) -> Path:
    """Where the canonical copy of ``name`` lives: ``$MEDSEG_EVAL_HOME/datasets/<name>``.

    Examples
    --------
    >>> canonical_dir("kvasir-seg").parts[-2:]
    ('datasets', 'kvasir-seg')
    """
    return home() / "datasets" / get_spec(name).name


def shipped_manifest_file(name: str):  # -> importlib.resources.abc.Traversable | None
    """The manifest file shipped for ``name``, or ``None`` when none is pinned yet.

    Examples
    --------
    >>> shipped_manifest_file("kvasir-seg").name
    'kvasir-seg.csv'
    """
    path = MANIFESTS / f"{get_spec(name).name}.csv"
    return path if path.is_file() else None


def split_files(folder: Path, split: str) -> list[Path]:
    """The parquet shards of ``split`` in a canonical folder, in order.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> split_files(pathlib.Path(tempfile.mkdtemp()), "test")
    []
    """
    return sorted((folder / "data").glob(f"{split}-*-of-*.parquet"))


def built_splits(folder: Path) -> dict[str, bool]:
    """The splits a canonical folder holds, each with whether its images are stored (``False``: masks only).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> built_splits(pathlib.Path(tempfile.mkdtemp()))
    {}
    """
    info_file = folder / "build_info.json"
    if not (folder / "data").is_dir() or not info_file.is_file():
        return {}
    info = json.loads(info_file.read_text())
    if "splits" in info:
        return {s: bool(v["images"]) for s, v in info["splits"].items() if split_files(folder, s)}
    # Copies built before partial builds existed hold every split they have shards for, with images.
    return {s: True for s in info.get("counts", {}) if split_files(folder, s)}
