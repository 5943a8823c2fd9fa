"""Train one model and predict with its best checkpoint: torch alone, cases from anywhere."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import __version__
from ..devices import resolve_device
from .config import TrainConfig
from .data import Cases
from .generalist import GENERALISTS, ORACLE_PROMPTS, build_generalist
from .loop import TrainReport, distributed, fit, predict_logits, seed_everything, to_labels
from .zoo import build_model, model_info


def predict_labels(model: torch.nn.Module, cases: Cases, config: TrainConfig, device: torch.device, kind: str,
                   amp: bool) -> dict[str, np.ndarray]:
    """Predicted label maps at each case's own size (logits resized bilinearly before the decision)."""
    logits = predict_logits(model, (cases.images - config.normalization[0]) / config.normalization[1], device,
                            config.batch_size, amp, cases.masks)
    out = {}
    for case_id, case_logits, size in zip(cases.case_ids, logits, cases.sizes):
        resized = F.interpolate(case_logits[None], size=size, mode="bilinear", align_corners=False)
        out[case_id] = to_labels(resized, kind)[0].numpy().astype(np.uint8)
    return out


@dataclass
class Trained:
    """What :func:`train_and_predict` returns: the report, both sets of label maps, and the run's record."""

    report: TrainReport
    held_out: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    record: dict[str, Any]


def train_and_predict(config: TrainConfig, train: Cases, held: Cases, test: Cases, num_classes: int,
                      out_dir: str | Path, *, device: str = "auto", progress: bool = True,
                      command: str | None = None) -> Trained | None:
    """Build ``config.model``, :func:`fit` it, and predict ``held`` and ``test`` with the best checkpoint.

    Needs torch alone (no polars, no canonical dataset), so the cases can come from anywhere: the
    training half of :func:`train_fold`, and of the reduced protocol run on a bare GPU machine
    (``benchmarks/reduced_protocol.py``), whose predictions :func:`score_fold` scores elsewhere.
    Under ``torchrun`` the processes other than the first return ``None`` after training.
    """
    out_dir = Path(out_dir)
    dev = resolve_device(device)
    kind = config.loss or ("bce" if num_classes == 2 else "ce")
    out_channels = 1 if kind == "bce" else num_classes
    seed_everything(config.seed, config.deterministic)
    started = time.perf_counter()
    if config.model in GENERALISTS:
        model = build_generalist(config.model, out_channels, checkpoint=config.checkpoint,
                                 normalization=config.normalization)
        amp = True if config.amp is None else config.amp
    else:
        model = build_model(config.model, out_channels, pretrained=config.pretrained)
        amp = model_info(config.model).amp if config.amp is None else config.amp
    report = fit(config, model, train, held, out_dir, device=dev, num_classes=num_classes, amp=amp,
                 progress=progress)
    rank, world = distributed()
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # the first process's last checkpoint is written
        dist.destroy_process_group()
        if rank:
            return None
    model.load_state_dict(torch.load(out_dir / "best.pt", map_location=dev, weights_only=False)["model"])
    held_preds = predict_labels(model, held, config, dev, kind, amp)
    test_preds = predict_labels(model, test, config, dev, kind, amp)
    record: dict[str, Any] = {"config": config.as_dict(), "report": report.as_dict(), "command": command,
                              "device": _device_name(dev), "torch": torch.__version__, "processes": world,
                              "wall_s": time.perf_counter() - started, "amp": amp, "loss": kind,
                              "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
                              "package_version": __version__}
    if config.model in GENERALISTS:
        record["generalist"] = {"model": config.model, "checkpoint": config.checkpoint or GENERALISTS[config.model].checkpoint,
                                "prompts": ORACLE_PROMPTS + ", in training and prediction", "fine_tuned": True}
    return Trained(report, held_preds, test_preds, record)


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
