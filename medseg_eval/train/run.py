"""One fold end to end: train, predict the held-out fold and the test split, evaluate, and write a bundle."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import __version__
from .._atomic import atomic_write_text
from ..datasets import get_spec
from ..evaluate import evaluate
from ..leaderboard import submit
from ..results import Results
from .config import TrainConfig
from .data import Cases, fold_ids, load_cases
from .loop import TrainReport, distributed, fit, predict_logits, seed_everything, to_labels
from .zoo import build_model, model_info


@dataclass
class FoldRun:
    """Where a run put its outputs, and what it measured."""

    out_dir: Path
    report: TrainReport
    held_out: Results
    test: Results
    bundle: Path


def resolve_device(device: str) -> torch.device:
    """``"auto"``: CUDA when available (under ``torchrun`` the process's ``LOCAL_RANK`` GPU), else the CPU."""
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _labels(model: torch.nn.Module, cases: Cases, config: TrainConfig, device: torch.device, kind: str,
            amp: bool) -> dict[str, np.ndarray]:
    """Predicted label maps at each case's own size (logits resized bilinearly before the decision)."""
    logits = predict_logits(model, (cases.images - config.normalization[0]) / config.normalization[1], device,
                            config.batch_size, amp)
    out = {}
    for case_id, case_logits, size in zip(cases.case_ids, logits, cases.sizes):
        resized = F.interpolate(case_logits[None], size=size, mode="bilinear", align_corners=False)
        out[case_id] = to_labels(resized, kind)[0].numpy().astype(np.uint8)
    return out


def train_fold(config: TrainConfig, out_dir: str | Path, *, device: str = "auto", board_dir: str | Path | None = None,
               progress: bool = True, command: str | None = None) -> FoldRun | None:
    """Train ``config.model`` on the other folds of ``config.dataset``'s training cases and score it.

    Writes to ``out_dir``: ``last.pt`` / ``best.pt`` checkpoints (a rerun resumes), the held-out
    fold's predictions (``predictions/held-out.npz``) and their ``Results`` (``results/held-out``),
    the test split's predictions and ``Results`` (``results/test``), ``run.json`` (config, report,
    command, device, wall time), and a leaderboard bundle with the badge *reproduced* under
    ``board_dir`` (default ``out_dir/board``). Under ``torchrun`` the first process does all of
    that after training and the others return ``None``.
    """
    out_dir = Path(out_dir)
    spec = get_spec(config.dataset)
    info = model_info(config.model)
    dev = resolve_device(device)
    kind = config.loss or ("bce" if spec.num_classes == 2 else "ce")
    amp = info.amp if config.amp is None else config.amp
    seed_everything(config.seed)
    started = time.perf_counter()
    train_ids, held_ids = fold_ids(spec.name, config.fold)
    train = load_cases(spec.name, "train", config.image_size, train_ids)
    held = load_cases(spec.name, "train", config.image_size, held_ids)
    model = build_model(config.model, 1 if kind == "bce" else spec.num_classes, pretrained=config.pretrained)
    report = fit(config, model, train, held, out_dir, device=dev, num_classes=spec.num_classes, amp=amp,
                 progress=progress)
    rank, world = distributed()
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # the first process's last checkpoint is written
        dist.destroy_process_group()
        if rank:
            return None
    model.load_state_dict(torch.load(out_dir / "best.pt", map_location=dev, weights_only=False)["model"])
    held_preds = _labels(model, held, config, dev, kind, amp)
    (out_dir / "predictions").mkdir(exist_ok=True)
    np.savez_compressed(out_dir / "predictions" / "held-out.npz", **held_preds)
    truth = dict(zip(sorted(held_ids), _original_masks(spec.name, held_ids)))
    held_results = evaluate(held_preds, targets=truth, num_classes=spec.num_classes, progress=False)
    held_results.save(out_dir / "results" / "held-out")
    test = load_cases(spec.name, spec.test_split, config.image_size)
    test_preds = _labels(model, test, config, dev, kind, amp)
    np.savez_compressed(out_dir / "predictions" / f"{spec.test_split}.npz", **test_preds)
    test_results = evaluate(test_preds, spec.name, progress=False)
    test_results.save(out_dir / "results" / "test")
    wall = time.perf_counter() - started
    parameters = sum(p.numel() for p in model.parameters()) / 1e6
    record: dict[str, Any] = {"config": config.as_dict(), "report": report.as_dict(), "command": command,
                              "device": _device_name(dev), "processes": world, "wall_s": wall, "amp": amp, "loss": kind,
                              "parameters_m": parameters, "package_version": __version__}
    atomic_write_text(out_dir / "run.json", json.dumps(record, indent=2, default=str) + "\n")
    bundle = submit(test_results, f"{config.model} (fold {config.fold}, medseg_eval)", board_dir or out_dir / "board",
                    badge="reproduced", config=record, parameters=round(parameters, 2), seed=config.seed,
                    training_protocol=f"medseg_eval.train: founding-study protocol, {config.max_epochs} epochs max, "
                                      f"{config.image_size}px, fold {config.fold} held out",
                    paper_url=None, code_url="https://github.com/medseg-eval/medseg_eval",
                    citation=info.paper)
    return FoldRun(out_dir, report, held_results, test_results, bundle)


def _original_masks(dataset: str, case_ids: list[str]) -> list[np.ndarray]:
    from .. import load_dataset

    wanted = set(case_ids)
    rows = load_dataset(dataset, split="train")
    rows = rows.select([i for i, c in enumerate(rows["case_id"]) if c in wanted])
    masks = {r["case_id"]: np.asarray(r["mask"], dtype=np.uint8) for r in rows}
    return [masks[c] for c in sorted(case_ids)]


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
