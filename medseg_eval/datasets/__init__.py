"""Datasets: canonical, checksum-pinned ground truth in Hugging Face layout, built from the official releases.

>>> from medseg_eval.datasets import get_spec
>>> spec = get_spec("kvasir-seg")
>>> spec.splits["validation"], spec.test_split
(120, 'validation')
"""

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

#: Public name -> the submodule that defines it. Submodules load on first use (PEP 562): listing the
#: datasets needs the registry only, not polars, pyarrow or ``datasets``.
_LAZY: dict[str, str] = {
    "BuildReport": "build",
    "UnpinnedManifestWarning": "build",
    "assign_splits": "build",
    "build": "build",
    "shipped_manifest": "build",
    "canonical_dir": "layout",
    "CaseRecord": "canonical",
    "CaseSource": "canonical",
    "manifest_sha256": "canonical",
    "mask_sha256": "canonical",
    "render_card": "cards",
    "download": "download",
    "home": "download",
    "offline": "download",
    "ChecksumError": "errors",
    "DatasetError": "errors",
    "DatasetNotBuiltError": "errors",
    "DownloadError": "errors",
    "ManifestMismatchError": "errors",
    "ManualDownloadRequired": "errors",
    "SourceFileMissingError": "errors",
    "SourceFormatError": "errors",
    "UnknownDatasetError": "errors",
    "UnknownSplitError": "errors",
    "expected_manifest": "expected",
    "ensure": "fetch",
    "load_dataset": "hub",
    "push": "hub",
    "DatasetSpec": "registry",
    "Selection": "registry",
    "SourceFile": "registry",
    "get_spec": "registry",
    "list_datasets": "registry",
    "VerifyReport": "verify",
    "verify": "verify",
}

if TYPE_CHECKING:
    from .build import BuildReport, UnpinnedManifestWarning, assign_splits, build, shipped_manifest
    from .canonical import CaseRecord, CaseSource, manifest_sha256, mask_sha256
    from .cards import render_card
    from .download import download, home, offline
    from .errors import (
        ChecksumError,
        DatasetError,
        DatasetNotBuiltError,
        DownloadError,
        ManifestMismatchError,
        ManualDownloadRequired,
        SourceFileMissingError,
        SourceFormatError,
        UnknownDatasetError,
        UnknownSplitError,
    )
    from .expected import expected_manifest
    from .fetch import ensure
    from .hub import load_dataset, push
    from .layout import canonical_dir
    from .registry import DatasetSpec, Selection, SourceFile, get_spec, list_datasets
    from .verify import VerifyReport, verify

__all__ = [
    "BuildReport", "CaseRecord", "CaseSource", "ChecksumError", "DatasetError", "DatasetNotBuiltError",
    "DatasetSpec", "DownloadError", "ManifestMismatchError", "ManualDownloadRequired", "Selection", "SourceFile",
    "SourceFileMissingError", "SourceFormatError", "UnknownDatasetError", "UnknownSplitError",
    "UnpinnedManifestWarning", "VerifyReport", "assign_splits", "build", "canonical_dir", "download", "ensure",
    "expected_manifest", "get_spec",
    "home", "list_datasets", "load_dataset", "manifest_sha256", "mask_sha256", "offline", "push", "render_card",
    "shipped_manifest", "verify",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        # Importing the submodules `build`, `download` and `verify` binds each to the package's attribute of
        # the same name; the public name stays the function, as `from medseg_eval.datasets import build` promises.
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
