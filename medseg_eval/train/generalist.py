"""Generalist promptable models as extra rows: SAM, MedSAM and SAM 2, zero-shot with boxes from the ground truth.

The boxes come from the ground truth (one per connected component of each class, optionally
jittered), so these are *oracle-prompt* numbers, recorded as such in the results' provenance and
in the bundle; they are not comparable with the fully automatic models. Models load through
transformers (``SamModel``, ``Sam2Model``; the ``train`` extra).

References
----------
Kirillov et al., Segment Anything, ICCV 2023, arXiv 2304.02643. Ma et al., Segment anything in
medical images (MedSAM), Nat. Commun. 2024, arXiv 2304.12306. Ravi et al., SAM 2, arXiv 2408.00714.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import evaluate, load_dataset
from ..datasets import get_spec
from ..metrics import label_components
from ..results import Results
from .trainer import resolve_device
from .zoo import PretrainedUnavailableError

#: name: (transformers class, default Hub checkpoint)
GENERALISTS: dict[str, tuple[str, str]] = {
    "sam": ("SamModel", "facebook/sam-vit-base"),
    "medsam": ("SamModel", "wanglab/medsam-vit-base"),
    "sam2": ("Sam2Model", "facebook/sam2-hiera-tiny-hf"),
}
#: SAM's pixel normalisation (ImageNet mean and std, on 0-255 values).
PIXEL_MEAN, PIXEL_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def load_generalist(name: str, checkpoint: str | None = None) -> torch.nn.Module:
    """The pretrained model ``name`` (``sam``, ``medsam``, ``sam2``) from the Hub, or a clear error offline."""
    if name not in GENERALISTS:
        raise KeyError(f"unknown generalist {name!r}; expected one of {', '.join(GENERALISTS)}.")
    class_name, default = GENERALISTS[name]
    try:
        import transformers
    except ImportError as err:
        raise ImportError("generalist models need transformers: pip install 'medseg-eval[train]'") from err
    try:
        return getattr(transformers, class_name).from_pretrained(checkpoint or default).eval()
    except OSError as err:
        raise PretrainedUnavailableError(f"could not load {checkpoint or default} for {name} (offline, or no such "
                                         f"checkpoint): {err}") from err


def ground_truth_boxes(mask: np.ndarray, *, jitter: int = 0, rng: np.random.Generator | None = None
                       ) -> list[tuple[int, tuple[float, float, float, float]]]:
    """``(class id, (x0, y0, x1, y1))`` per 8-connected component of each foreground class of ``mask``.

    With ``jitter``, each side moves by a uniform integer in ``[-jitter, jitter]`` pixels (then
    clipped to the image), as MedSAM's evaluation does.

    Examples
    --------
    >>> m = np.zeros((8, 8), np.uint8); m[1:3, 1:4] = 1; m[5:7, 5:7] = 2
    >>> ground_truth_boxes(m)
    [(1, (1.0, 1.0, 3.0, 2.0)), (2, (5.0, 5.0, 6.0, 6.0))]
    """
    h, w = mask.shape
    boxes = []
    for class_id in sorted(int(c) for c in np.unique(mask) if c):
        labels = label_components(torch.from_numpy(mask == class_id))[0].numpy()
        for component in range(1, int(labels.max()) + 1):
            ys, xs = np.nonzero(labels == component)
            box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64)
            if jitter:
                box += (rng or np.random.default_rng(0)).integers(-jitter, jitter + 1, 4)
                box = np.clip(box, 0, [w - 1, h - 1, w - 1, h - 1])
            boxes.append((class_id, tuple(float(v) for v in box)))
    return boxes


@torch.no_grad()
def segment_with_boxes(model: torch.nn.Module, image: np.ndarray, boxes: list[tuple[int, tuple[float, ...]]],
                       device: torch.device) -> np.ndarray:
    """A label map from one box per object: each box's mask (logits > 0) painted with its class, in order.

    The image is resized to the model's square input (SAM pads the long side instead; a resize keeps
    the whole field of view and is recorded as this pipeline's choice).
    """
    h, w = image.shape[:2]
    out = np.zeros((h, w), np.uint8)
    if not boxes:
        return out
    size = model.config.prompt_encoder_config.image_size  # SAM and SAM 2 alike
    size = size if isinstance(size, int) else size[0]
    pixels = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None]
    pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False)
    pixels = (pixels - torch.tensor(PIXEL_MEAN)[:, None, None]) / torch.tensor(PIXEL_STD)[:, None, None]
    scale = torch.tensor([size / w, size / h, size / w, size / h])
    prompts = torch.stack([torch.tensor(b) for _, b in boxes]) * scale
    outputs = model(pixel_values=pixels.to(device), input_boxes=prompts[None].to(device), multimask_output=False)
    logits = outputs.pred_masks[0, :, 0].float().cpu()  # [boxes, h', w']
    masks = F.interpolate(logits[None], size=(h, w), mode="bilinear", align_corners=False)[0] > 0
    for (class_id, _), m in zip(boxes, masks):
        out[m.numpy()] = class_id
    return out


def zero_shot(name: str, dataset: str, *, split: str | None = None, model: torch.nn.Module | None = None,
              checkpoint: str | None = None, jitter: int = 0, seed: int = 42, device: str = "auto",
              progress: bool = False) -> Results:
    """Score a promptable model zero-shot on ``dataset`` with ground-truth boxes (oracle prompts).

    ``model`` replaces the pretrained checkpoint (e.g. a fine-tuned or a small test model).
    The results' provenance gets ``generalist``: model, checkpoint, prompts, jitter, seed.
    """
    spec = get_spec(dataset)
    split = split or spec.test_split
    dev = resolve_device(device)
    model = (model or load_generalist(name, checkpoint)).to(dev).eval()
    rng = np.random.default_rng(seed)
    preds = {}
    for row in load_dataset(spec.name, split=split):
        image = np.asarray(row["image"].convert("RGB"))
        boxes = ground_truth_boxes(np.asarray(row["mask"], np.uint8), jitter=jitter, rng=rng)
        preds[row["case_id"]] = segment_with_boxes(model, image, boxes, dev)
    results = evaluate(preds, spec.name, split=split, progress=progress)
    info: dict[str, Any] = {"model": name, "checkpoint": checkpoint or (GENERALISTS[name][1] if name in GENERALISTS
                                                                         else None),
                            "prompts": "ground-truth boxes, one per 8-connected component of each class (oracle)",
                            "jitter_px": jitter, "seed": seed, "input": "image resized to the model's square input"}
    results.provenance["generalist"] = info
    return results
