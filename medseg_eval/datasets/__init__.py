"""Datasets: canonical, checksum-pinned ground truth in Hugging Face layout, built from the official releases.

>>> from medseg_eval.datasets import get_spec
>>> spec = get_spec("kvasir-seg")
>>> spec.splits["validation"], spec.test_split
(120, 'validation')
"""

from typing import TYPE_CHECKING, Any

from .._lazy import load, make_lazy

#: Public name -> the submodule that defines it. Submodules load on first use (PEP 562): listing the
#: datasets needs the registry only, not polars, pyarrow or ``datasets``.
_LAZY: dict[str, tuple[str, str | None]] = {
    "BuildReport": ("build", "BuildReport"),
    "UnpinnedManifestWarning": ("build", "UnpinnedManifestWarning"),
    "assign_splits": ("build", "assign_splits"),
    "build": ("build", "build"),
    "shipped_manifest": ("build", "shipped_manifest"),
    "canonical_dir": ("layout", "canonical_dir"),
    "CaseRecord": ("canonical", "CaseRecord"),
    "CaseSource": ("canonical", "CaseSource"),
    "manifest_sha256": ("canonical", "manifest_sha256"),
    "mask_sha256": ("canonical", "mask_sha256"),
    "render_card": ("cards", "render_card"),
    "download": ("download", "download"),
    "home": ("download", "home"),
    "offline": ("download", "offline"),
    "ChecksumError": ("errors", "ChecksumError"),
    "DatasetError": ("errors", "DatasetError"),
    "DatasetNotBuiltError": ("errors", "DatasetNotBuiltError"),
    "DownloadError": ("errors", "DownloadError"),
    "ManifestMismatchError": ("errors", "ManifestMismatchError"),
    "ManualDownloadRequired": ("errors", "ManualDownloadRequired"),
    "SourceFileMissingError": ("errors", "SourceFileMissingError"),
    "SourceFormatError": ("errors", "SourceFormatError"),
    "UnknownDatasetError": ("errors", "UnknownDatasetError"),
    "UnknownSplitError": ("errors", "UnknownSplitError"),
    "expected_manifest": ("expected", "expected_manifest"),
    "ensure": ("fetch", "ensure"),
    "load_dataset": ("hub", "load_dataset"),
    "push": ("hub", "push"),
    "DatasetSpec": ("registry", "DatasetSpec"),
    "Selection": ("registry", "Selection"),
    "SourceFile": ("registry", "SourceFile"),
    "get_spec": ("registry", "get_spec"),
    "list_datasets": ("registry", "list_datasets"),
    "VerifyReport": ("verify", "VerifyReport"),
    "verify": ("verify", "verify"),
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
    return load(__name__, _LAZY, name)


make_lazy(__name__)
