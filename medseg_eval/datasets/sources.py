"""Where a build reads the release from: given folders, given archives, URLs, or the official files.

Official files are fetched (from ``$MEDSEG_EVAL_MIRROR`` when set) into
``$MEDSEG_EVAL_HOME/downloads/<name>/``, checked against the registry's sha256, and extracted into
``$MEDSEG_EVAL_HOME/sources/<name>/<archive>/``; both are reused by later builds, so a build of
more splits fetches only the files it lacks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from .download import download, extract, file_sha256, home, is_archive, source_url, url_filename, verify_sha256
from .errors import ManualDownloadRequired, SourceFileMissingError, SourceFormatError
from .hints import manual_message, what_file_holds
from .registry import DatasetSpec, Selection

_URL = re.compile(r"^https?://", re.IGNORECASE)


def official_sources(spec: DatasetSpec, want: Selection) -> list[tuple[str, str]]:
    """``(url, label)`` of each official file a build of ``want`` reads; mirror applied.

    Raises
    ------
    ManualDownloadRequired
        For a release behind a registration, with the page, the files and the exact command.

    Examples
    --------
    >>> from medseg_eval.datasets import get_spec
    >>> [label for _, label in official_sources(get_spec("isic2018"), Selection(frozenset({"test"}), images=False))]
    ['isic2018 test masks']
    """
    if spec.manual_download:
        raise ManualDownloadRequired(manual_message(spec, sorted(want.splits), images=want.images))
    splits = [s for s in spec.splits if s in want.splits]
    return [(source_url(f.filename, f.url), f"{spec.name} {what_file_holds(f, splits, images=want.images)}")
            for f in spec.sources_for(splits, images=want.images)]


def resolve_sources(spec: DatasetSpec, sources: Sequence[str | Path], *, want: Selection,
                    sha256: str | Mapping[str, str] | None = None,
                    progress: bool = True) -> tuple[list[Path], list[dict[str, object]]]:
    """Folders holding the release: given folders as they are; archives and URLs fetched, checked, extracted.

    With no ``sources``, the official files that hold ``want`` (nothing for a generated dataset).
    An archive is checked against the hash given for it in ``sha256`` (one hash when a single
    source is given, or a mapping from archive file name to hash), else against the spec's pinned
    hash for its file name; with neither, its hash is only recorded, marked unpinned. Returns the
    folders and one provenance record per source (for ``build_info.json``).
    """
    labels: dict[str, str] = {}
    if not sources and not spec.generated:
        official = official_sources(spec, want)
        sources, labels = [url for url, _ in official], dict(official)
    expected = {s.filename: s.sha256 for s in spec.sources if s.sha256}
    if isinstance(sha256, str):
        if len(sources) != 1:
            raise ValueError("one sha256 was given for several sources; give a mapping {archive name: sha256}.")
        only = str(sources[0])
        expected[url_filename(only) if _URL.match(only) else Path(only).name] = sha256
    elif sha256 is not None:
        expected.update(sha256)
    roots, provenance = [], []
    for source in sources:
        text = str(source)
        if _URL.match(text):
            pinned = expected.get(url_filename(text))
            path = download(text, home() / "downloads" / spec.name, sha256=pinned, progress=progress,
                            label=labels.get(text))
        else:
            path = Path(text).expanduser()
            if not path.exists():
                raise SourceFileMissingError(f"source {path} does not exist; pass the folder holding "
                                             f"{spec.source_folder}/, its archive, or a URL.")
            pinned = expected.get(path.name) if path.is_file() else None
            if pinned:
                verify_sha256(path, pinned)
        record: dict[str, object] = {"source": text}
        if path.is_dir():
            roots.append(path)
        elif is_archive(path):
            digest = pinned or file_sha256(path)
            record.update(archive=path.name, sha256=digest, sha256_pinned=pinned is not None)
            roots.append(extract(path, home() / "sources" / spec.name / path.name, sha256=digest))
        else:
            raise SourceFormatError(f"source {path} is neither a folder nor a zip/tar archive (a RAR must be unpacked first).")
        provenance.append(record)
    return roots, provenance
