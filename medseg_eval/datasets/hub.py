"""Loading canonical copies (local cache, a folder, or the Hub at a pinned revision) and pushing them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .build import canonical_dir, shipped_manifest
from .canonical import read_manifest, read_split, split_files
from .download import home
from .errors import DatasetNotBuiltError, ManifestMismatchError
from .fetch import ensure, not_built_hint
from .registry import get_spec
from .verify import verify

if TYPE_CHECKING:
    import datasets


def load_dataset(name: str, split: str | None = None, revision: str | None = None, *,
                 data_dir: str | Path | None = None, download: bool = True) -> datasets.Dataset | datasets.DatasetDict:
    """Load a dataset's canonical copy as a Hugging Face ``datasets.Dataset`` (or all splits as a ``DatasetDict``).

    Columns: ``case_id``, ``image`` and ``mask`` (PIL images; the mask's values are class ids),
    ``roi`` where the dataset has a region of interest, ``spacing`` ``(sy, sx)`` and ``group``.
    The case ids of each split are checked against the shipped manifest; mask hashes are checked
    by :func:`medseg_eval.datasets.verify` and before scoring.

    Parameters
    ----------
    name
        A registered dataset (``medseg-eval datasets list``).
    split
        One split (e.g. ``"validation"`` for Kvasir-SEG's official 120 images); all when ``None``.
    revision
        A commit of the Hub mirror; ``None`` takes the local build if there is one, else the pinned revision.
    data_dir
        A folder in the canonical layout to read instead (e.g. a clone of the Hub repo).
    download
        On first use, build the split(s) from the official release when it is public (and the
        generated datasets in any case); ``False`` (or ``MEDSEG_EVAL_OFFLINE=1``, ``HF_HUB_OFFLINE=1``)
        raises :class:`DatasetNotBuiltError` instead, without any request. See
        :func:`medseg_eval.datasets.fetch.ensure`.

    Examples
    --------
    >>> from medseg_eval.datasets import canonical_dir
    >>> ds = load_dataset("drive", split="test") if canonical_dir("drive").exists() else None  # built above
    >>> ds is None or (ds.num_rows, ds.column_names[:4]) == (20, ["case_id", "image", "mask", "roi"])
    True
    """
    import datasets

    spec = get_spec(name)
    splits = [spec.check_split(split)] if split is not None else list(spec.splits)
    folder = Path(data_dir) if data_dir is not None else ensure(spec.name, splits, revision=revision, download=download)
    manifest = shipped_manifest(spec.name)
    if manifest is None and (folder / "manifest.csv").is_file():
        manifest = read_manifest(folder / "manifest.csv")
    loaded = {}
    for s in splits:
        if not split_files(folder, s):
            raise DatasetNotBuiltError(f"{folder} holds no shards for split {s!r} of {spec.name}; {not_built_hint(spec, [s])}")
        # A local build keeps its Arrow cache inside, so a rebuild (which replaces the folder) drops it.
        cache = folder / ".arrow" if folder == canonical_dir(spec.name) else home() / "arrow" / spec.name
        ds = read_split(folder, s, cache_dir=cache)
        if manifest is not None:
            want = set(manifest.filter(manifest["split"] == s)["case_id"])
            have = set(ds["case_id"])
            if want != have:
                raise ManifestMismatchError(spec.name, missing=sorted(want - have), extra=sorted(have - want),
                                            hint=f"The copy in {folder} is not the canonical {s!r} split; rebuild it.")
        loaded[s] = ds
    return loaded[split] if split is not None else datasets.DatasetDict(loaded)


def push(name: str, repo_id: str, *, token: str | None = None, private: bool = False, create_pr: bool = False,
         dry_run: bool = False) -> list[str]:
    """Upload the verified canonical copy of ``name`` to the Hugging Face dataset repo ``repo_id``.

    The copy is verified against the manifest first; a copy that fails is never pushed. With
    ``dry_run`` nothing is sent and the paths that would be committed are returned. Maintainers then
    pin the commit as the spec's ``hub_revision``.

    Examples
    --------
    >>> from medseg_eval.datasets import canonical_dir
    >>> files = push("drive", "medseg-eval/drive", dry_run=True) if canonical_dir("drive").exists() else ["README.md"]
    >>> "README.md" in files
    True
    """
    spec = get_spec(name)
    folder = canonical_dir(spec.name)
    report = verify(spec.name, progress=False)
    if not report.ok:
        raise ManifestMismatchError(spec.name, missing=report.missing, extra=report.extra,
                                    mismatched=report.mismatched + report.misplaced, hint="Not pushed; rebuild the copy.")
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if dry_run:
        return files
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    operations = [CommitOperationAdd(path_in_repo=f, path_or_fileobj=folder / f) for f in files]
    api.create_commit(repo_id, operations, repo_type="dataset", create_pr=create_pr,
                      commit_message=f"{spec.name}: canonical copy (builder v{spec.builder_version}, "
                                     f"manifest {report.pinned and 'pinned' or 'unpinned'})")
    return files
