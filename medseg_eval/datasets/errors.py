"""Errors of :mod:`medseg_eval.datasets`: one type per failure, each naming the file or case and the fix."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import MedsegEvalError


class DatasetError(MedsegEvalError):
    """Base class of every error raised by :mod:`medseg_eval.datasets`."""


class UnknownDatasetError(DatasetError, LookupError):
    """The dataset name is not in the registry."""


class UnknownSplitError(DatasetError, LookupError):
    """The split is not one of the dataset's splits."""


class SourceFileMissingError(DatasetError, FileNotFoundError):
    """A file or folder of the official release is not where the release puts it."""


class SourceFormatError(DatasetError, ValueError):
    """A file of the release cannot be read, or holds what the release does not (e.g. a mask of the wrong size)."""


class ChecksumError(DatasetError):
    """A downloaded or given archive does not have the expected sha256."""


class DownloadError(DatasetError):
    """A download failed (network, HTTP status, truncated transfer)."""


class ManualDownloadRequired(DatasetError):
    """The release cannot be fetched automatically (registration or licence click-through)."""


class DatasetNotBuiltError(DatasetError, FileNotFoundError):
    """No canonical copy of the dataset was found in the cache or on the Hub."""


def _preview(ids: Sequence[str], shown: int = 5) -> str:
    head = ", ".join(ids[:shown])
    return f"{head}, ... ({len(ids)} in all)" if len(ids) > shown else head


class ManifestMismatchError(DatasetError):
    """Cases differ from the shipped split manifest: missing, extra, or with another mask (or instance map) hash."""

    def __init__(self, dataset: str, *, missing: Sequence[str] = (), extra: Sequence[str] = (),
                 mismatched: Sequence[str] = (), mismatched_instances: Sequence[str] = (), hint: str = "") -> None:
        self.dataset, self.missing, self.extra, self.mismatched = dataset, list(missing), list(extra), list(mismatched)
        self.mismatched_instances = list(mismatched_instances)
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} case(s) of the manifest missing: {_preview(self.missing)}")
        if self.extra:
            parts.append(f"{len(self.extra)} case(s) not in the manifest: {_preview(self.extra)}")
        if self.mismatched:
            parts.append(f"{len(self.mismatched)} mask(s) differ from the manifest's sha256: {_preview(self.mismatched)}")
        if self.mismatched_instances:
            parts.append(f"{len(self.mismatched_instances)} instance map(s) differ from the manifest's instances_sha256: "
                         f"{_preview(self.mismatched_instances)}")
        message = f"{dataset}: " + "; ".join(parts) + "."
        super().__init__(message + (f" {hint}" if hint else ""))
