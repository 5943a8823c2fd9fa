"""The study's protocol as one typed config; every field is recorded with results and submissions."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

#: The study's learning-rate grid; ``medseg-eval train --lr`` picks one, and the grid is recorded.
LR_GRID: tuple[float, ...] = (1e-4, 5e-5, 1e-5)


@dataclass
class TrainConfig:
    """The founding study's protocol (arXiv 2603.13044), with its defaults.

    Attributes
    ----------
    model, dataset, fold
        Architecture (``medseg_eval.train.list_models()``, or a generalist ``sam``, ``medsam``,
        ``sam2`` fine-tuned with ground-truth box prompts), registered dataset, and the held-out
        fold (0-4) of the shipped 5-fold split of the training cases: trained on the other four,
        early-stopped and checkpointed on it.
    image_size
        Images and masks are resized to ``image_size`` x ``image_size`` (bilinear / nearest)
        for training; predictions are resized back to each case's size before scoring.
    max_epochs, batch_size, lr, weight_decay
        AdamW (PyTorch's default betas) with the REX schedule stepped per iteration over the
        whole ``max_epochs`` budget: ``lr * (1 - t) / (1 - t / 2)``, ``t = step / total steps``.
    patience, min_delta
        Early stopping on the validation IoU (foreground classes, pixels pooled).
    amp
        Mixed precision on CUDA; ``None`` takes the model's protocol default (off for SegNeXt).
        On the CPU training runs in fp32 whatever this says (recorded as ``amp_used``).
    loss
        ``"bce"`` (one logit channel) for binary tasks, ``"ce"`` otherwise; ``None`` chooses so.
    max_time_s
        A wall-clock budget for the training loop of one process (``None``: none): training stops
        after the epoch in which it runs out, as Lightning's ``max_time`` does, and the report says
        so (``out_of_time``). The REX schedule still spans ``max_epochs``, so such a run ends
        early on a schedule that had not decayed; for reduced protocols on a lent machine.
    deterministic
        Deterministic algorithms where torch has them (default: a rerun gives the same numbers);
        ``False`` lets cuDNN benchmark and pick the fastest kernels, which may speed up models with
        depthwise or grouped convolutions on a GPU at the cost of bitwise repeatability.
    pretrained, checkpoint
        ImageNet weights for the zoo's models (``pretrained``). A generalist always starts from
        ``checkpoint`` (a Hub id or a local folder in ``save_pretrained`` layout; ``None``: its
        reference checkpoint), so ``pretrained`` is true for it: fine-tuning is what it is for.
    augmentation
        ``"standard"``: the same for every model: random horizontal and vertical flips, rotations
        by multiples of 90 degrees and brightness/contrast jitter of +/-10%, drawn from
        generators seeded by (seed, epoch), so a resumed run draws what an uninterrupted one would.
    """

    model: str
    dataset: str
    fold: int = 0
    image_size: int = 512
    max_epochs: int = 150
    batch_size: int = 8
    lr: float = 1e-4
    lr_grid: tuple[float, ...] = LR_GRID
    weight_decay: float = 0.01
    schedule: Literal["rex"] = "rex"
    patience: int = 20
    min_delta: float = 0.001
    amp: bool | None = None
    loss: Literal["bce", "ce"] | None = None
    augmentation: Literal["standard", "none"] = "standard"
    normalization: tuple[float, float] = (0.5, 0.5)
    seed: int = 42
    deterministic: bool = True
    pretrained: bool = False
    checkpoint: str | None = None
    max_steps_per_epoch: int | None = None
    max_time_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.fold < 5:
            raise ValueError(f"`fold` must be 0-4 (the shipped 5-fold split), got {self.fold}.")
        if self.image_size % 32:
            raise ValueError(f"`image_size` must be a multiple of 32, got {self.image_size}.")
        for name in ("max_epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be at least 1, got {getattr(self, name)}.")
        self.lr_grid = tuple(self.lr_grid)
        if not self.lr > 0 or not self.lr_grid or not all(lr > 0 for lr in self.lr_grid):
            raise ValueError(f"`lr` and every rate of `lr_grid` must be positive (lr_grid not empty), got lr={self.lr}, "
                             f"lr_grid={self.lr_grid}; the study's grid is {LR_GRID}.")
        if self.max_time_s is not None and self.max_time_s < 0:
            raise ValueError(f"`max_time_s` must be None or at least 0 seconds, got {self.max_time_s}.")
        self.normalization = tuple(self.normalization)
        from .generalist import GENERALISTS

        if self.model in GENERALISTS:
            self.pretrained = True
        elif self.checkpoint is not None:
            raise ValueError(f"`checkpoint` is for the generalists ({', '.join(GENERALISTS)}); {self.model} takes "
                             "ImageNet weights with `pretrained`.")

    def as_dict(self) -> dict[str, Any]:
        """Every field as JSON-able values."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Read a JSON or YAML config; ``overrides`` (e.g. from the command line) win; unknown keys are an error."""
        text = Path(path).read_text()
        if Path(path).suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        else:
            values = json.loads(text)
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown config keys {unknown}; known: {', '.join(sorted(known))}.")
        return cls(**values)
