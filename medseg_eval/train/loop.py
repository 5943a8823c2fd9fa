"""A plain torch training loop: AdamW, REX per iteration, mixed precision on CUDA, early stopping,
a checkpoint every epoch and an exact resume."""

from __future__ import annotations

import io
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .._atomic import atomic_write_bytes
from .config import TrainConfig
from .data import Cases, augment


@dataclass
class TrainReport:
    """What a run did: per-epoch history (``epoch, train_loss, val_iou, lr``), best epoch and IoU,
    and how it ended (early stopping, or ``out_of_time`` when ``TrainConfig.max_time_s`` ran out)."""

    epochs_run: int
    best_epoch: int
    best_iou: float
    stopped_early: bool
    amp_used: bool
    device: str
    wall_s: float
    resumed_from_epoch: int | None = None
    out_of_time: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for the results' provenance and the bundle."""
        return asdict(self)


def rex_factor(step: int, total: int) -> float:
    """REX learning-rate factor ``(1 - t) / (1 - t / 2)`` at ``t = step / total`` (Chen et al., MLSys 2022).

    Examples
    --------
    >>> rex_factor(0, 100), rex_factor(50, 100), rex_factor(100, 100)
    (1.0, 0.6666666666666666, 0.0)
    """
    t = min(step / total, 1.0)
    return (1 - t) / (1 - t / 2)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; with ``deterministic``, ask torch for deterministic algorithms where
    it has them, else let cuDNN pick the fastest (benchmark mode: faster on some GPUs, not bitwise repeatable).

    Examples
    --------
    >>> seed_everything(42, deterministic=False); torch.backends.cudnn.benchmark
    True
    >>> seed_everything(42); torch.backends.cudnn.benchmark, torch.are_deterministic_algorithms_enabled()
    (False, True)
    """
    if deterministic:
        # cuBLAS is deterministic only with a fixed workspace, read when it first starts (after this call).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic


def distributed() -> tuple[int, int]:
    """``(rank, world size)`` under ``torchrun`` (starting the process group once), else ``(0, 1)``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), world


def loss_fn(logits: torch.Tensor, masks: torch.Tensor, kind: str) -> torch.Tensor:
    """BCE with logits on one channel (binary tasks) or cross-entropy over the classes, in fp32."""
    logits = logits.float()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits[:, 0], (masks > 0).float())
    return F.cross_entropy(logits, masks)


def to_labels(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Label maps from logits: ``sigmoid > 0.5`` on one channel, else the argmax."""
    return (logits[:, 0] > 0).long() if kind == "bce" else logits.argmax(1)


def pooled_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """IoU of the foreground classes with pixels pooled over cases and classes (the study's micro IoU)."""
    inter = union = 0
    for c in range(1, num_classes):
        p, t = pred == c, target == c
        inter += int((p & t).sum())
        union += int((p | t).sum())
    return inter / union if union else 1.0


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, device: torch.device, batch_size: int,
                   amp: bool, masks: torch.Tensor | None = None) -> torch.Tensor:
    """Logits of ``images`` (on the CPU), batch by batch, in eval mode.

    A prompted model (``model.prompted``, the generalists) also gets ``masks``, the label maps its
    prompts are drawn from.
    """
    model.eval()
    out = []
    for start in range(0, images.shape[0], batch_size):
        part = slice(start, start + batch_size)
        with _autocast(device, amp):
            out.append(_forward(model, images[part], masks[part] if masks is not None else None, device).float().cpu())
    return torch.cat(out)


def _forward(net: nn.Module, images: torch.Tensor, masks: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    prompted = getattr(net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net, "prompted", False)
    if not prompted:
        return net(images.to(device))
    if masks is None:
        raise ValueError("a prompted model (SAM, MedSAM, SAM 2) needs the masks its box prompts come from.")
    return net(images.to(device), masks.to(device))


@contextmanager
def _autocast(device: torch.device, enabled: bool) -> Iterator[None]:
    with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=enabled and device.type == "cuda"):
        yield


def fit(config: TrainConfig, model: nn.Module, train: Cases, val: Cases, out_dir: str | Path, *,
        device: torch.device, num_classes: int, amp: bool, progress: bool = True) -> TrainReport:
    """Train ``model`` on ``train``, early-stop on ``val``; ``out_dir/last.pt`` each epoch, ``best.pt`` at the best.

    When ``out_dir/last.pt`` exists the run resumes after its epoch with every state restored
    (model, optimizer, scaler, step, early-stopping counters, RNG), so that it ends with the same
    numbers as a run that was never interrupted.

    Under ``torchrun`` (several processes) each step's global batch of ``batch_size`` is split
    between the processes and DDP averages the gradients (with synchronised batch norm on CUDA);
    every process validates, only the first writes checkpoints.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kind = config.loss or ("bce" if num_classes == 2 else "ce")
    rank, world = distributed()
    model, net = _for_processes(model, device, world, config.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    amp_used = bool(amp and device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type, enabled=amp_used)
    steps_per_epoch = _steps_per_epoch(config, train.images.shape[0])
    total_steps = config.max_epochs * steps_per_epoch
    last = out_dir / "last.pt"
    state, resumed = _resume(last, model, optimizer, scaler, device)
    start = time.perf_counter()
    stopped = out_of_time = False
    epochs = range(state["epoch"] + 1, config.max_epochs + 1)
    for epoch in tqdm(epochs, desc=f"{config.model} fold {config.fold}", disable=not progress, unit="epoch"):
        if state["bad_epochs"] >= config.patience:
            stopped = True
            break
        losses = _train_epoch(config, net, model, optimizer, scaler, train, epoch, steps_per_epoch, total_steps, state,
                              device, kind, amp_used, rank, world)
        val_logits = predict_logits(model, (val.images - config.normalization[0]) / config.normalization[1], device,
                                    config.batch_size, amp_used, val.masks)
        iou = pooled_iou(to_labels(val_logits, kind), val.masks, num_classes)
        state["history"].append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_iou": iou,
                                 "lr": optimizer.param_groups[0]["lr"]})
        if iou > state["best_iou"] + config.min_delta:
            state.update(best_iou=iou, best_epoch=epoch, bad_epochs=0)
            if rank == 0:
                _save(out_dir / "best.pt", {"model": model.state_dict(), "epoch": epoch, "val_iou": iou})
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        if rank == 0:
            _save(last, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                         "state": state, "config": config.as_dict(),
                         "rng": {"torch": torch.get_rng_state(),
                                 "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}})
        if config.max_time_s is not None and time.perf_counter() - start >= config.max_time_s:
            out_of_time = epoch < config.max_epochs
            break
    return TrainReport(state["epoch"], state["best_epoch"], state["best_iou"], stopped, amp_used, str(device),
                       time.perf_counter() - start, resumed, out_of_time, state["history"])


def _for_processes(model: nn.Module, device: torch.device, world: int,
                   batch_size: int) -> tuple[nn.Module, nn.Module]:
    """``model`` on ``device`` (with synchronised batch norm on CUDA under several processes, a new module),
    and the module to run forward: the model itself, or its DDP wrapper under several processes."""
    if batch_size % world:
        raise ValueError(f"batch size {batch_size} does not split over {world} processes.")
    if world > 1 and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if world > 1:
        return model, nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                          else None)
    return model, model


def _steps_per_epoch(config: TrainConfig, n: int) -> int:
    """Whole batches per epoch, capped by ``max_steps_per_epoch``: an incomplete last batch is dropped, since
    a batch of one breaks batch norm on 1x1 pooled maps (UPerHead, VWFormer)."""
    steps = max(1, n // config.batch_size)
    return min(steps, config.max_steps_per_epoch) if config.max_steps_per_epoch else steps


def _resume(last: Path, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
            device: torch.device) -> tuple[dict[str, Any], int | None]:
    """The training state, restored from ``last`` (model, optimizer, scaler, counters, RNG) where it exists,
    and the epoch resumed after (``None`` for a fresh run)."""
    if not last.is_file():
        return {"epoch": 0, "step": 0, "best_iou": -1.0, "best_epoch": 0, "bad_epochs": 0, "history": []}, None
    # On the CPU: RNG states must stay CPU byte tensors; the optimizer moves its state to the parameters.
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scaler.load_state_dict(checkpoint["scaler"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    if device.type == "cuda" and checkpoint["rng"].get("cuda") is not None:
        torch.cuda.set_rng_state(checkpoint["rng"]["cuda"], device)
    return checkpoint["state"], checkpoint["state"]["epoch"]


def _train_epoch(config: TrainConfig, net: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler, train: Cases, epoch: int, steps_per_epoch: int, total_steps: int,
                 state: dict[str, Any], device: torch.device, kind: str, amp_used: bool, rank: int,
                 world: int) -> list[float]:
    """One epoch of steps (this process's share of each global batch); the losses, one per step."""
    model.train()
    # Per-epoch generators: a resumed run draws the same order and augmentations as an uninterrupted one.
    order = torch.randperm(train.images.shape[0], generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch))
    draws = torch.Generator().manual_seed(config.seed * 100_019 + epoch)
    losses = []
    for i in range(steps_per_epoch):
        index = order[i * config.batch_size:(i + 1) * config.batch_size]
        images, masks = train.images[index], train.masks[index]
        if config.augmentation == "standard":
            images, masks = augment(images, masks, draws)
        images, masks = images[rank::world], masks[rank::world]
        images = (images - config.normalization[0]) / config.normalization[1]
        for group in optimizer.param_groups:
            group["lr"] = config.lr * rex_factor(state["step"], total_steps)
        with _autocast(device, amp_used):
            logits = _forward(net, images, masks, device)
        loss = loss_fn(logits, masks.to(device), kind)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{config.model}: the loss is {loss.item()} at epoch {epoch}, step {i}; "
                                     "try a smaller learning rate (the study's grid: 1e-4, 5e-5, 1e-5).")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        state["step"] += 1
        losses.append(loss.item())
    return losses


def _save(path: Path, obj: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())  # a kill mid-write leaves the previous checkpoint
