"""The slow, obvious lesion reference: skimage labelling and Python loops over lesions and objects."""

from __future__ import annotations

import numpy as np
from skimage.measure import label


def reference_lesions(pred: np.ndarray, target: np.ndarray, num_classes: int, connectivity: int = 8,
                      min_overlap: float = 0.0, criterion: str = "overlap", iou_threshold: float = 0.5):
    """Per-lesion rows and per-case, per-class counts for a batch ``[B, H, W]`` of label maps."""
    rows, counts = [], {}
    for case in range(pred.shape[0]):
        for cls in range(1, num_classes):
            gt_labels = label(target[case] == cls, connectivity=1 if connectivity == 4 else 2)
            pred_labels = label(pred[case] == cls, connectivity=1 if connectivity == 4 else 2)
            lesion_ids = range(1, gt_labels.max() + 1)
            object_ids = range(1, pred_labels.max() + 1)
            iou = {}
            for g in lesion_ids:
                for p in object_ids:
                    inter = np.sum((gt_labels == g) & (pred_labels == p))
                    if inter:
                        iou[g, p] = inter / np.sum((gt_labels == g) | (pred_labels == p))
            if criterion == "iou":
                matched = {(g, p) for (g, p), v in iou.items() if v >= iou_threshold
                           and v == max(iou[g, q] for q in object_ids if (g, q) in iou)
                           and v == max(iou[h, p] for h in lesion_ids if (h, p) in iou)}
            detected_total, hits = 0, set()
            for g in lesion_ids:
                lesion = gt_labels == g
                area = int(lesion.sum())
                covered = int(np.sum(lesion & (pred[case] == cls)))
                if criterion == "overlap":
                    detected = covered > 0 and covered >= min_overlap * area
                else:
                    detected = any(gg == g for gg, _ in matched)
                rows_y, rows_x = np.nonzero(lesion)
                rows.append({"case": case, "class": cls, "lesion": g, "area": area, "covered": covered,
                             "top": rows_y.min(), "left": rows_x.min(), "bottom": rows_y.max(), "right": rows_x.max(),
                             "best_iou": max([iou[g, p] for p in object_ids if (g, p) in iou], default=0.0),
                             "detected": detected})
                detected_total += detected
            for p in object_ids:
                if criterion == "overlap" and any((g, p) in iou for g in lesion_ids):
                    hits.add(p)
                if criterion == "iou" and any(pp == p for _, pp in matched):
                    hits.add(p)
            counts[case, cls] = (len(lesion_ids), detected_total, len(object_ids), len(hits))
    return rows, counts


def random_lesion_case(rng: np.random.Generator, shape=(48, 64), num_classes: int = 2):
    """A ground truth with 1-12 lesions of many sizes and a prediction that finds some, misses some, adds some."""
    h, w = shape
    target = np.zeros(shape, np.uint8)
    pred = np.zeros(shape, np.uint8)
    yy, xx = np.mgrid[:h, :w]
    for _ in range(int(rng.integers(1, 13))):
        cls = int(rng.integers(1, num_classes))
        r = float(rng.choice([0.5, 1, 1.5, 2, 3, 5, 8]))
        cy, cx = rng.uniform(-2, h + 2), rng.uniform(-2, w + 2)  # some touch or cross the border
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        target[disk] = cls
        fate = rng.random()
        if fate < 0.6:  # found, shifted and resized
            r2 = r * rng.uniform(0.5, 1.4)
            pred[(yy - cy - rng.normal(0, 1.5)) ** 2 + (xx - cx - rng.normal(0, 1.5)) ** 2 <= r2 * r2] = cls
        elif fate < 0.75:  # found as the wrong class or as speckle
            pred[disk & (rng.random(shape) < 0.3)] = int(rng.integers(1, num_classes))
    for _ in range(int(rng.integers(0, 5))):  # false positives
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        pred[y:y + int(rng.integers(1, 5)), x:x + int(rng.integers(1, 5))] = int(rng.integers(1, num_classes))
    return pred, target
