"""One fold end to end: train and predict (:mod:`.trainer`) on the canonical dataset, evaluate, and write a bundle."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_text
from ..datasets import get_spec
from ..evaluate import evaluate
from ..leaderboard import submit
from ..results import Results
from .config import TrainConfig
from .data import fold_ids, load_cases
from .generalist import GENERALISTS
from .loop import TrainReport
from .trainer import train_and_predict
from .zoo import model_info


@dataclass
class FoldRun:
    """Where a run put its outputs, and what it measured."""

    out_dir: Path
    report: TrainReport
    held_out: Results
    test: Results
    bundle: Path


def train_fold(config: TrainConfig, out_dir: str | Path, *, device: str = "auto", board_dir: str | Path | None = None,
               progress: bool = True, command: str | None = None, sweep_lr: bool = False) -> FoldRun | None:
    """Train ``config.model`` on the other folds of ``config.dataset``'s training cases and score it.

    Writes to ``out_dir``: ``last.pt`` / ``best.pt`` checkpoints (a rerun resumes), the held-out
    fold's and the test split's predictions (``predictions/held-out.npz``, ``predictions/<split>.npz``),
    and what :func:`score_fold` writes: their ``Results``, ``run.json`` (config, report,
    command, device, wall time) and a leaderboard bundle with the badge *reproduced* under
    ``board_dir`` (default ``out_dir/board``). Under ``torchrun`` the first process does all of
    that after training and the others return ``None``.

    ``sweep_lr=True`` is the study's learning-rate selection: one run per rate of
    ``config.lr_grid`` (in ``out_dir/lr-<rate>``, each resumable), and the rate whose best held-out
    IoU is highest (the first of the grid on a tie) is scored and submitted; ``run.json`` lists
    every rate's best IoU and epoch under ``lr_sweep``.
    """
    out_dir = Path(out_dir)
    spec = get_spec(config.dataset)
    train_ids, held_ids = fold_ids(spec.name, config.fold)
    train = load_cases(spec.name, "train", config.image_size, train_ids)
    held = load_cases(spec.name, "train", config.image_size, held_ids)
    test = load_cases(spec.name, spec.test_split, config.image_size)
    if not sweep_lr:
        trained = train_and_predict(config, train, held, test, spec.num_classes, out_dir, device=device,
                                    progress=progress, command=command)
    else:
        runs = [train_and_predict(replace(config, lr=lr), train, held, test, spec.num_classes, out_dir / f"lr-{lr:g}",
                                  device=device, progress=progress, command=command) for lr in config.lr_grid]
        if runs[0] is None:
            return None
        trained = max(runs, key=lambda r: r.report.best_iou)  # max keeps the first of equals
        trained.record["lr_sweep"] = [{"lr": lr, "best_iou": r.report.best_iou, "best_epoch": r.report.best_epoch}
                                      for lr, r in zip(config.lr_grid, runs)]
        config = TrainConfig(**trained.record["config"])
    if trained is None:
        return None
    (out_dir / "predictions").mkdir(exist_ok=True)
    np.savez_compressed(out_dir / "predictions" / "held-out.npz", **trained.held_out)
    np.savez_compressed(out_dir / "predictions" / f"{spec.test_split}.npz", **trained.test)
    return score_fold(config, out_dir, trained.held_out, trained.test, trained.record, board_dir=board_dir)


def score_fold(config: TrainConfig, out_dir: str | Path, held_out: dict[str, np.ndarray], test: dict[str, np.ndarray],
               record: dict[str, Any], *, board_dir: str | Path | None = None, name: str | None = None) -> FoldRun:
    """Score one fold's predictions against the canonical dataset and write its results and bundle.

    ``held_out`` is scored against the held-out fold's masks (``results/held-out``), ``test``
    against the test split (``results/test``); ``record`` (what :func:`train_and_predict`
    returned) becomes ``run.json`` and the bundle's config, badge *reproduced*, under ``board_dir``
    (default ``out_dir/board``) as ``name`` (default ``"<model> (fold <k>, medseg_eval)"``; a generalist's says it was fine-tuned with
    ground-truth boxes).
    """
    out_dir = Path(out_dir)
    spec = get_spec(config.dataset)
    held_ids = sorted(held_out)
    truth = dict(zip(held_ids, _original_masks(spec.name, held_ids)))
    held_results = evaluate(held_out, targets=truth, num_classes=spec.num_classes, progress=False)
    held_results.save(out_dir / "results" / "held-out")
    test_results = evaluate(test, spec.name, progress=False)
    test_results.save(out_dir / "results" / "test")
    atomic_write_text(out_dir / "run.json", json.dumps(record, indent=2, default=str) + "\n")
    generalist = config.model in GENERALISTS
    default_name = (f"{config.model} (fine-tuned, ground-truth boxes, fold {config.fold})" if generalist
                    else f"{config.model} (fold {config.fold}, medseg_eval)")
    bundle = submit(test_results, name or default_name,
                    board_dir or out_dir / "board", predictions=test, badge="reproduced", config=record,
                    parameters=round(record["parameters_m"], 2), seed=config.seed,
                    training_protocol=_protocol(config),
                    paper_url=None, code_url="https://github.com/medseg-eval/medseg_eval",
                    citation=GENERALISTS[config.model].paper if generalist else model_info(config.model).paper)
    return FoldRun(out_dir, TrainReport(**record["report"]), held_results, test_results, bundle)


def _protocol(config: TrainConfig) -> str:
    budget = f", no epoch started after {config.max_time_s:g} s" if config.max_time_s is not None else ""
    prompts = ", ground-truth box prompts (oracle)" if config.model in GENERALISTS else ""
    return (f"medseg_eval.train: founding-study protocol, {config.max_epochs} epochs max{budget}, {config.image_size}px, "
            f"lr {config.lr:g}, fold {config.fold} held out{prompts}")


def _original_masks(dataset: str, case_ids: list[str]) -> list[np.ndarray]:
    from .. import load_dataset

    wanted = set(case_ids)
    rows = load_dataset(dataset, split="train")
    rows = rows.select([i for i, c in enumerate(rows["case_id"]) if c in wanted])
    masks = {r["case_id"]: np.asarray(r["mask"], dtype=np.uint8) for r in rows}
    return [masks[c] for c in sorted(case_ids)]
