"""Generalist promptable models as extra rows: SAM, MedSAM and SAM 2 with boxes from the ground truth,
zero-shot (:func:`zero_shot`) and fine-tuned under the protocol (:class:`BoxPrompted`, through ``train``).

The boxes come from the ground truth (one per connected component of each class, optionally
jittered), so these are *oracle-prompt* numbers, recorded as such in the results' provenance and
in the bundle; they are not comparable with the fully automatic models. Models load through
transformers (``SamModel``, ``Sam2Model``; the ``train`` extra). This module needs torch alone
until a model is loaded (transformers) or scored (:func:`zero_shot`).

References
----------
Kirillov et al., Segment Anything, ICCV 2023, arXiv 2304.02643. Ma et al., Segment anything in
medical images (MedSAM), Nat. Commun. 2024, arXiv 2304.12306. Ravi et al., SAM 2, arXiv 2408.00714.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..metrics import label_components
from .zoo import PretrainedUnavailableError

if TYPE_CHECKING:
    from ..results import Results


@dataclass(frozen=True)
class Generalist:
    """A promptable model: its transformers class, reference Hub checkpoint and paper."""

    class_name: str
    checkpoint: str
    paper: str


GENERALISTS: dict[str, Generalist] = {
    "sam": Generalist("SamModel", "facebook/sam-vit-base", "Kirillov et al., Segment Anything, ICCV 2023"),
    "medsam": Generalist("SamModel", "wanglab/medsam-vit-base",
                         "Ma et al., Segment anything in medical images, Nat. Commun. 2024"),
    "sam2": Generalist("Sam2Model", "facebook/sam2-hiera-tiny-hf",
                       "Ravi et al., SAM 2: Segment Anything in Images and Videos, ICLR 2025"),
}
#: How the prompts are made, recorded with every generalist's results.
ORACLE_PROMPTS = "ground-truth boxes, one per 8-connected component of each class (oracle)"
#: SAM's pixel normalisation (ImageNet mean and std, on 0-255 values).
PIXEL_MEAN, PIXEL_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def load_generalist(name: str, checkpoint: str | None = None) -> torch.nn.Module:
    """The pretrained model ``name`` (``sam``, ``medsam``, ``sam2``) from the Hub, or a clear error offline."""
    if name not in GENERALISTS:
        raise KeyError(f"unknown generalist {name!r}; expected one of {', '.join(GENERALISTS)}.")
    class_name, default = GENERALISTS[name].class_name, GENERALISTS[name].checkpoint
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
    labels = torch.from_numpy(np.asarray(mask, dtype=np.int64))[None]
    found, classes = mask_boxes(labels, int(labels.max()) + 1)
    boxes = []
    for class_id, box in zip(classes[0].tolist(), found[0].double().numpy()):
        if not class_id:
            break  # padding
        if jitter:
            box = box + (rng or np.random.default_rng(0)).integers(-jitter, jitter + 1, 4)
            box = np.clip(box, 0, [w - 1, h - 1, w - 1, h - 1])
        boxes.append((class_id, tuple(float(v) for v in box)))
    return boxes


def mask_boxes(masks: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Box of every 8-connected component of each foreground class, for a batch of label maps.

    Parameters
    ----------
    masks
        Integer label maps ``[B, H, W]``.
    num_classes
        Classes with background; classes ``1..num_classes-1`` get boxes.

    Returns
    -------
    boxes, classes
        ``[B, M, 4]`` boxes ``(x0, y0, x1, y1)`` (inclusive pixel coordinates, long) and ``[B, M]``
        their classes, per image by class and then by each component's first pixel (row-major); ``M``
        is the most boxes of any image (at least 1), and the rest of a row is padding with class 0.

    Examples
    --------
    >>> m = torch.zeros(2, 6, 6, dtype=torch.long); m[0, 1:3, 1:4] = 1; m[0, 4, 4] = 1
    >>> boxes, classes = mask_boxes(m, 2)
    >>> boxes[0].tolist(), classes.tolist()
    ([[1, 1, 3, 2], [4, 4, 4, 4]], [[1, 1], [0, 0]])
    """
    b, h, w = masks.shape
    k = num_classes - 1
    device = masks.device
    per_class = masks[:, None] == torch.arange(1, num_classes, device=device)[None, :, None, None]
    labels = label_components(per_class.flatten(0, 1))  # [B*K, H, W], 1..n per class map
    count = labels.flatten(1).amax(1) if labels.numel() else torch.zeros(b * k, dtype=torch.long, device=device)
    owner, ys, xs = labels.nonzero(as_tuple=True)
    # One index per component across the batch, in (image, class, label) order.
    component = (count.cumsum(0) - count)[owner] + labels[owner, ys, xs] - 1
    total = int(count.sum())
    extent = torch.stack([torch.full((total,), w, device=device), torch.full((total,), h, device=device),
                          torch.full((total,), -1, device=device), torch.full((total,), -1, device=device)], 1)
    for axis, (coords, reduce) in enumerate([(xs, "amin"), (ys, "amin"), (xs, "amax"), (ys, "amax")]):
        extent[:, axis].scatter_reduce_(0, component, coords, reduce)
    map_of = torch.repeat_interleave(torch.arange(b * k, device=device), count)
    image = map_of // max(k, 1)
    per_image = torch.bincount(image, minlength=b)
    slot = torch.arange(total, device=device) - (per_image.cumsum(0) - per_image)[image]
    m = max(1, int(per_image.max()) if b else 1)
    boxes = torch.zeros(b, m, 4, dtype=torch.long, device=device)
    classes = torch.zeros(b, m, dtype=torch.long, device=device)
    boxes[image, slot] = extent
    classes[image, slot] = map_of % max(k, 1) + 1
    return boxes, classes


def _input_size(model: nn.Module) -> int:
    size = model.config.prompt_encoder_config.image_size  # SAM and SAM 2 alike
    return size if isinstance(size, int) else size[0]


class BoxPrompted(nn.Module):
    """SAM or SAM 2 as a segmenter that is trained and evaluated with ground-truth boxes (oracle prompts).

    ``forward(images, masks)`` takes images normalised as the protocol normalises every model's
    (``normalization``: scalar mean and std on [0, 1] values), turns them into the model's pixel
    normalisation at its square input size, prompts one box per object of ``masks`` (:func:`mask_boxes`)
    and returns logits ``[B, out_channels, H, W]`` at the images' size: with one channel, the
    largest logit of any box (the union of the objects' masks); with more, 0 for background and,
    for class ``c``, the largest logit of its boxes (``-1e4`` without one), so that
    sigmoid > 0.5 and argmax paint each box's mask where its logit is positive, as
    :func:`segment_with_boxes` does (argmax, not drawing order, decides where two classes' masks overlap).

    As MedSAM's fine-tuning does, the prompt encoder is frozen; image encoder and mask decoder train.

    Examples
    --------
    >>> import transformers
    >>> config = transformers.SamConfig(
    ...     vision_config={"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "output_channels": 8,
    ...                    "image_size": 64, "patch_size": 16, "mlp_dim": 16, "global_attn_indexes": [0],
    ...                    "num_pos_feats": 4},
    ...     prompt_encoder_config={"hidden_size": 8, "image_size": 64, "patch_size": 16},
    ...     mask_decoder_config={"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "mlp_dim": 8,
    ...                          "iou_head_hidden_dim": 8})
    >>> model = BoxPrompted(transformers.SamModel(config), out_channels=1)
    >>> masks = torch.zeros(2, 32, 32, dtype=torch.long); masks[0, 4:9, 6:20] = 1
    >>> model(torch.zeros(2, 3, 32, 32), masks).shape
    torch.Size([2, 1, 32, 32])
    """

    prompted = True  # the training loop passes the masks the prompts come from

    def __init__(self, model: nn.Module, out_channels: int, normalization: tuple[float, float] = (0.5, 0.5)) -> None:
        super().__init__()
        self.model = model
        self.out_channels = out_channels
        self.normalization = tuple(normalization)
        self.model.prompt_encoder.requires_grad_(False)

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        size = _input_size(self.model)
        mean, std = self.normalization
        pixels = F.interpolate(images * std + mean, size=(size, size), mode="bilinear", align_corners=False) * 255
        pixels = ((pixels - pixels.new_tensor(PIXEL_MEAN)[:, None, None]) / pixels.new_tensor(PIXEL_STD)[:, None, None])
        num_classes = 2 if self.out_channels == 1 else self.out_channels
        boxes, classes = mask_boxes(masks, num_classes)
        scale = boxes.new_tensor([size / w, size / h, size / w, size / h], dtype=torch.float32)
        outputs = self.model(pixel_values=pixels, input_boxes=boxes.float() * scale, multimask_output=False)
        logits = F.interpolate(outputs.pred_masks[:, :, 0], size=(h, w), mode="bilinear", align_corners=False)
        per_class = [logits.masked_fill((classes != c)[:, :, None, None], -1e4).amax(1)
                     for c in range(1, num_classes)]
        if self.out_channels == 1:
            return per_class[0][:, None]
        return torch.stack([torch.zeros_like(per_class[0]), *per_class], 1)


def build_generalist(name: str, out_channels: int, *, checkpoint: str | None = None,
                     normalization: tuple[float, float] = (0.5, 0.5)) -> BoxPrompted:
    """:class:`BoxPrompted` around the pretrained ``name`` (its reference checkpoint, or ``checkpoint``:
    a Hub id or a local folder), ready to fine-tune."""
    return BoxPrompted(load_generalist(name, checkpoint), out_channels, normalization)


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
    size = _input_size(model)
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
    from .. import evaluate, load_dataset
    from ..datasets import get_spec
    from ..devices import resolve_device

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
    info: dict[str, Any] = {"model": name, "checkpoint": checkpoint or (GENERALISTS[name].checkpoint
                                                                         if name in GENERALISTS else None),
                            "prompts": ORACLE_PROMPTS, "jitter_px": jitter, "seed": seed, "input": "image resized to the model's square input"}
    results.provenance["generalist"] = info
    return results
