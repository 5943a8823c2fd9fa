"""First use: find the canonical copy a caller needs, and build what is missing when the release allows.

Sources, in order: the local build (``$MEDSEG_EVAL_HOME/datasets/<name>``), the Hub mirror at the
pinned revision, then the official release: a public release is fetched and built on first use
(only the files holding the splits asked for, masks only when scoring), a generated dataset
builds itself, and a release behind a registration raises with what to download and run.
``download=False``, ``MEDSEG_EVAL_OFFLINE=1`` and ``HF_HUB_OFFLINE=1`` turn fetching off, before
any request is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .build import build, built_splits, canonical_dir
from .download import home, offline
from .errors import DatasetNotBuiltError
from .hints import build_command, fetch_summary, manual_message
from .registry import DatasetSpec, get_spec


def ensure(name: str, splits: Sequence[str] | None = None, *, images: bool = True, download: bool = True,
           revision: str | None = None, progress: bool = True) -> Path:
    """The folder holding ``splits`` of ``name`` (all when ``None``), with images unless ``images`` is False.

    A local build that holds them is used as it is; otherwise the Hub mirror at the pinned
    revision (or ``revision``); otherwise, for a public release and with ``download``, the missing
    splits are built from the official files (``$MEDSEG_EVAL_MIRROR`` when set), which prints one
    line per file fetched (what, how large, from where) and a progress bar. A generated dataset is
    built without any download, even offline.

    Raises
    ------
    DatasetNotBuiltError
        When the splits are missing and fetching is off (``download=False``, ``MEDSEG_EVAL_OFFLINE``,
        ``HF_HUB_OFFLINE``; no request is made), or the release is behind a registration (the
        message names the page, the files and the exact build command).
    ChecksumError, DownloadError
        From the fetch: a file whose sha256 is not the pinned one (deleted), a failed transfer
        (rerun to resume).

    Examples
    --------
    >>> import os, tempfile
    >>> os.environ["MEDSEG_EVAL_HOME"] = tempfile.mkdtemp()
    >>> folder = ensure("synthetic-lesions", ["test"], images=False, download=False, progress=False)
    >>> sorted(p.name.split("-")[0] for p in (folder / "data").iterdir())
    ['test', 'train']
    >>> del os.environ["MEDSEG_EVAL_HOME"]
    """
    spec = get_spec(name)
    wanted = list(spec.splits) if splits is None else [spec.check_split(s) for s in splits]
    local = canonical_dir(spec.name)
    held = built_splits(local)
    missing = [s for s in wanted if s not in held or (images and not held[s])]
    if revision is None and not missing:
        return local
    if revision is not None or spec.hub_repo is not None:
        return _hub_snapshot(spec, revision)
    if spec.generated:  # nothing to download: every split, with images (seconds)
        build(spec.name, progress=progress)
        return local
    why = "download=False" if not download else "MEDSEG_EVAL_OFFLINE or HF_HUB_OFFLINE is set" if offline() else None
    what = f"split(s) {', '.join(missing)} of {spec.name}{' with images' if images else ''}"
    if spec.manual_download:
        raise DatasetNotBuiltError(f"{what} not built in {local} and no Hub mirror yet. "
                                   + manual_message(spec, missing, images=images))
    if why is not None:
        raise DatasetNotBuiltError(f"{what} not built in {local}, no Hub mirror yet, and fetching on first use is off "
                                   f"({why}). Run: {build_command(spec, missing, images=images)} (fetches "
                                   f"{fetch_summary(spec, missing, images=images)}).")
    build(spec.name, splits=missing, images=images, progress=progress)
    return local


def not_built_hint(spec: DatasetSpec, splits: Sequence[str] | None = None) -> str:
    """How to get ``splits`` of ``spec`` built: the exact command, or what to download by hand first.

    Examples
    --------
    >>> not_built_hint(get_spec("kvasir-seg"))
    'run `medseg-eval datasets build kvasir-seg`.'
    """
    if spec.manual_download:
        return manual_message(spec, splits)
    return f"run `{build_command(spec, splits)}`."


def _hub_snapshot(spec: DatasetSpec, revision: str | None) -> Path:
    """The Hub mirror of ``spec`` at ``revision`` (default: the pinned one), from the Hub cache when offline."""
    if spec.hub_repo is None:
        raise DatasetNotBuiltError(f"{spec.name} has no Hub mirror, so revision {revision!r} cannot be loaded; "
                                   f"{not_built_hint(spec)}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(spec.hub_repo, repo_type="dataset", revision=revision or spec.hub_revision,
                                      cache_dir=home() / "hub", local_files_only=offline()))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as err:
        raise DatasetNotBuiltError(f"{spec.name}: cannot fetch {spec.hub_repo}@{revision or spec.hub_revision} "
                                   f"({err}); offline, {not_built_hint(spec)}") from err

