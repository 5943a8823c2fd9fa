"""What the messages say: the exact build command of a dataset, and where its files come from.

Every error that asks the user to build, download or unpack something takes its wording from
here, so the command a message prints is the command that works (and a generated dataset's
message never asks for ``--source``).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from .download import source_url
from .registry import DatasetSpec, SourceFile

#: Where the messages tell users of registration-only releases to save the files.
DOWNLOADS = "~/Downloads"


def _splits(spec: DatasetSpec, splits: Sequence[str] | None) -> list[str]:
    return list(spec.splits) if splits is None else [s for s in spec.splits if s in set(splits)]


def needed_files(spec: DatasetSpec, splits: Sequence[str] | None = None, *, images: bool = True) -> tuple[SourceFile, ...]:
    """The release's files a build of ``splits`` (masks only unless ``images``) reads."""
    return spec.sources_for(_splits(spec, splits), images=images)


def build_command(spec: DatasetSpec, splits: Sequence[str] | None = None, *, images: bool = True) -> str:
    """The shell command that builds ``splits`` of ``spec`` (all when ``None``), masks only unless ``images``.

    For a release behind a registration, it names the downloaded files (or the folder they were
    unpacked in) as ``--source``; otherwise no source is needed.

    Examples
    --------
    >>> from medseg_eval.datasets import get_spec
    >>> build_command(get_spec("isic2018"), ["test"], images=False)
    'medseg-eval datasets build isic2018 --split test --masks-only'
    >>> build_command(get_spec("monuseg"), ["test"])
    'medseg-eval datasets build monuseg --split test --source ~/Downloads/MoNuSegTestData.zip'
    >>> build_command(get_spec("synthetic-lesions"))
    'medseg-eval datasets build synthetic-lesions'
    """
    chosen = _splits(spec, splits)
    words = ["medseg-eval datasets build", spec.name]
    if set(chosen) != set(spec.splits):
        words += [f"--split {s}" for s in chosen]
    if not images:
        words.append("--masks-only")
    if spec.manual_download:
        files = needed_files(spec, chosen, images=images)
        if any(f.unpack_first for f in files):
            words.append(f"--source {DOWNLOADS}")
        else:
            words += [f"--source {DOWNLOADS}/{shlex.quote(f.filename)}" for f in files]
    return " ".join(words)


def manual_message(spec: DatasetSpec, splits: Sequence[str] | None = None, *, images: bool = True) -> str:
    """Why ``spec`` cannot be fetched automatically, and exactly what to download and run instead.

    Examples
    --------
    >>> from medseg_eval.datasets import get_spec
    >>> print(manual_message(get_spec("drive"), ["test"]))  # doctest: +ELLIPSIS
    drive cannot be fetched for you: the release is behind a registration. Page: https://drive.grand-challenge.org/. ...
    """
    files = needed_files(spec, splits, images=images)
    listed = ", ".join(f"{f.filename!r} ({f.url})" for f in files)
    where = (f"unpack them in {DOWNLOADS}, then run" if any(f.unpack_first for f in files)
             else f"save {'it' if len(files) == 1 else 'them'} in {DOWNLOADS}, then run")
    return (f"{spec.name} cannot be fetched for you: the release is behind a registration. Page: {spec.homepage}. "
            f"To do: {spec.manual_download} File(s) to download: {listed}; {where}: {build_command(spec, splits, images=images)}")


def fetch_summary(spec: DatasetSpec, splits: Sequence[str] | None = None, *, images: bool = True) -> str:
    """The files a build of ``splits`` fetches and where from (``MEDSEG_EVAL_MIRROR`` applied).

    Examples
    --------
    >>> from medseg_eval.datasets import get_spec
    >>> fetch_summary(get_spec("isic2018"), ["test"], images=False)  # doctest: +ELLIPSIS
    'ISIC2018_Task1_Test_GroundTruth.zip from https://isic-challenge-data.s3.amazonaws.com/2018/...'
    """
    return ", ".join(f"{f.filename} from {source_url(f.filename, f.url)}" for f in needed_files(spec, splits, images=images))


def what_file_holds(source: SourceFile, splits: Sequence[str], *, images: bool) -> str:
    """``"test masks"``, ``"train and validation masks and images"``: what of ``splits`` a file brings.

    Examples
    --------
    >>> what_file_holds(SourceFile("a.zip", "u", masks=("train", "test"), images=("train", "test")), ["test"], images=False)
    'test masks'
    """
    parts = [kind for kind, held in (("masks", source.masks), ("images", source.images))
             if set(held) & set(splits) and (kind == "masks" or images)]
    named = [s for s in splits if s in set(source.masks) | set(source.images)]
    return f"{' and '.join(named)} {' and '.join(parts)}"
