"""Instance metrics inside :func:`medseg_eval.evaluate`: which predictions are instance maps, where the
ground truth's instances come from, and the scores of a window of cases.

A dataset that keeps instance ids (GlaS, MoNuSeg: ``DatasetSpec.instances``) has an ``instances``
column; its instance metrics (:data:`medseg_eval.metrics.INSTANCE_METRICS`) compare the predicted
objects with those. Predictions are either

- **instance maps** (``evaluate(..., instances=True)``): integer label maps, 0 = background, each
  object its own id (any number of ids, up to :data:`INSTANCE_ID_LIMIT`); their foreground (id > 0)
  is the class-1 prediction the pixel metrics score; or
- **semantic masks** (the default): the objects are the connected components of class 1
  (:func:`medseg_eval.metrics.label_components`, 8-connected), and the rule is recorded in the
  provenance as ``{"instances_from": "connected_components", "connectivity": 8}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from . import metrics as engine
from .datasets import DatasetSpec
from .metrics.errors import OptionError

#: Ids an instance prediction may hold: ``0 .. INSTANCE_ID_LIMIT - 1`` (read as int64).
INSTANCE_ID_LIMIT = 2**31
#: The connectivity of the components that stand for a semantic prediction's objects.
CONNECTIVITY = 8


@dataclass(frozen=True)
class InstanceScoring:
    """The instance metrics of one :func:`~medseg_eval.evaluate` call and where the predicted objects come from.

    Examples
    --------
    >>> InstanceScoring(("aji",), from_predictions=False).provenance()
    {'instances_from': 'connected_components', 'connectivity': 8}
    """

    metrics: tuple[str, ...]
    from_predictions: bool

    def provenance(self) -> dict[str, object]:
        """How the predicted objects were found, as recorded in the results."""
        if self.from_predictions:
            return {"instances_from": "predictions"}
        return {"instances_from": "connected_components", "connectivity": CONNECTIVITY}

    def semantic(self, mask: np.ndarray) -> np.ndarray:
        """The class-1 label map the pixel metrics score: an instance map's foreground, a semantic mask as it is."""
        return (mask > 0).view(np.uint8) if self.from_predictions else mask

    def score(self, ids: Sequence[str], masks: Sequence[np.ndarray], targets: Sequence[np.ndarray],
              spacing: Mapping[str, tuple[float, float]], empty: engine.EmptyPolicy,
              device: torch.device) -> dict[str, dict[str, float]]:
        """The instance metrics of the cases ``ids``: case id -> metric -> value.

        ``masks`` are the predictions as read (instance maps, or semantic masks whose class-1 components
        become the objects), ``targets`` the ground truth's instance maps. Cases of one size are scored
        in one call on ``device``, at their own size (so that the empty-mask rule's diagonal is theirs).
        """
        out: dict[str, dict[str, float]] = {}
        by_shape: dict[tuple[int, int], list[int]] = {}
        for i, mask in enumerate(masks):
            by_shape.setdefault(mask.shape, []).append(i)
        for members in by_shape.values():
            pred = torch.from_numpy(np.stack([masks[i] for i in members])).to(device)
            pred = pred.long() if self.from_predictions else engine.label_components(pred == 1, CONNECTIVITY)
            target = torch.from_numpy(np.stack([targets[i] for i in members])).to(device)
            pairs = torch.tensor([spacing[ids[i]] for i in members], dtype=torch.float64)
            values = engine.instance_metrics(pred, target, list(self.metrics), spacing=pairs, empty=empty)
            for j, i in enumerate(members):
                out[ids[i]] = {m: float(values[m][j]) for m in self.metrics}
        return out


def split_metrics(metrics: Sequence[str], spec: DatasetSpec | None,
                  instances: bool) -> tuple[list[str], InstanceScoring | None]:
    """The pixel metrics for :func:`medseg_eval.metrics.compute`, and the instance scoring of ``metrics`` asked
    on the dataset ``spec`` (``None``: the caller's own targets); ``None`` without instance metrics or
    instance predictions.

    Raises
    ------
    OptionError
        Instance metrics without instance ground truth, or ``instances=True`` where none is kept.

    Examples
    --------
    >>> from medseg_eval.datasets import get_spec
    >>> pixel, scoring = split_metrics(["aji", "dice"], get_spec("monuseg"), False)
    >>> pixel, scoring.metrics, scoring.from_predictions
    (['dice'], ('aji',), False)
    """
    if isinstance(metrics, str) or not isinstance(metrics, Sequence | np.ndarray):
        raise OptionError(f"`metrics` must be a list of names such as ['dice', 'hd95'], but got {metrics!r}.")
    asked = [m for m in metrics if isinstance(m, str) and m in engine.INSTANCE_METRICS]
    pixel = [m for m in metrics if not (isinstance(m, str) and m in engine.INSTANCE_METRICS)]
    kept = spec is not None and spec.instances is not None
    if instances and not kept:
        where = f"{spec.name} keeps no instance ids" if spec is not None else "targets given by the caller are semantic"
        raise OptionError(f"`instances=True` says the predictions are instance maps, but {where}; pass semantic "
                          "label maps without `instances=True`, or score a dataset that keeps instances "
                          f"({', '.join(instance_datasets())}).")
    if asked and not kept:
        where = f"{spec.name} keeps no instance ids" if spec is not None else "targets given by the caller are semantic"
        raise OptionError(f"instance metric(s) {asked} need instance ground truth, but {where}; score them on a "
                          f"dataset that keeps instances ({', '.join(instance_datasets())}) or call "
                          "medseg_eval.metrics.instance_metrics on your own instance maps.")
    if spec is not None and kept and asked and spec.num_classes != 2:
        raise OptionError(f"{spec.name}: instance metrics are defined for one foreground class, but it has "
                          f"{spec.num_classes - 1}.")
    return pixel, (InstanceScoring(tuple(dict.fromkeys(asked)), instances) if asked or instances else None)


def instance_datasets() -> list[str]:
    """The registered datasets that keep instance ids.

    Examples
    --------
    >>> instance_datasets()
    ['glas', 'monuseg']
    """
    from .datasets import get_spec, list_datasets

    return [name for name in list_datasets() if get_spec(name).instances is not None]

