"""Submitting bundles to a leaderboard dataset repo on the Hugging Face Hub, as a pull request."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from .._atomic import atomic_directory
from ..datasets import get_spec
from .board import build, load_bundles


def pull_request_files(board_dir: str | Path, dataset: str, bundles: Sequence[str] | None = None) -> dict[str, Path]:
    """``{path in the repo: local file}`` of a pull request: the bundles (all of ``dataset``, or the named
    folders), each validated, and the rebuilt board of that dataset."""
    board_dir, dataset = Path(board_dir), get_spec(dataset).name
    valid = {slug for slug, _ in load_bundles(board_dir, dataset)}
    chosen = sorted(valid) if bundles is None else list(bundles)
    unknown = sorted(set(chosen) - valid)
    if unknown:
        raise FileNotFoundError(f"no bundle {', '.join(unknown)} under {board_dir / dataset}; it has "
                                f"{', '.join(sorted(valid))}.")
    build(board_dir, dataset)
    files = {f"{dataset}/README.md": board_dir / dataset / "README.md"}
    for slug in chosen:
        for path in sorted((board_dir / dataset / slug).iterdir()):
            files[f"{dataset}/{slug}/{path.name}"] = path
    return dict(sorted(files.items()))


def push(board_dir: str | Path, dataset: str, repo_id: str, *, bundles: Sequence[str] | None = None,
         dry_run: str | Path | None = None, token: str | None = None) -> str:
    """Open a pull request on the dataset repo ``repo_id`` that adds the bundles and the rebuilt board.

    With ``dry_run`` (a folder) nothing is sent: the exact files of the commit are written there
    under their paths in the repo, with ``commit.json`` (repo, message, file list), and the folder
    is returned. Otherwise ``huggingface_hub.HfApi.create_commit(..., create_pr=True)`` opens the
    pull request and its URL is returned.
    """
    files = pull_request_files(board_dir, dataset, bundles)
    names = sorted({path.split("/")[1] for path in files if path.count("/") == 2})
    message = f"{get_spec(dataset).name}: submit {', '.join(names)}"
    if dry_run is not None:
        owned = {path.split("/")[0] for path in files} | {"commit.json"}
        with atomic_directory(dry_run, owned=owned) as staging:
            for path_in_repo, local in files.items():
                (staging / path_in_repo).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(local, staging / path_in_repo)
            (staging / "commit.json").write_text(json.dumps({"repo_id": repo_id, "repo_type": "dataset",
                                                             "create_pr": True, "commit_message": message,
                                                             "files": list(files)}, indent=2) + "\n")
        return str(dry_run)
    from huggingface_hub import CommitOperationAdd, HfApi

    operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(local)) for p, local in files.items()]
    info = HfApi(token=token).create_commit(repo_id, operations, commit_message=message, repo_type="dataset",
                                            create_pr=True)
    return str(info.pr_url)
