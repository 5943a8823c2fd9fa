"""Datasets: canonical, checksum-pinned ground truth in Hugging Face layout, built from the official releases.

>>> from medseg_eval.datasets import get_spec
>>> spec = get_spec("kvasir-seg")
>>> spec.splits["validation"], spec.test_split
(120, 'validation')
"""

from .build import BuildReport, UnpinnedManifestWarning, assign_splits, build, canonical_dir, shipped_manifest
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
