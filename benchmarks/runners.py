"""How each side of the speed suite runs a list of cases: medseg_eval and a reference library, same numbers.

:class:`InMemory` times :func:`medseg_eval.metrics.compute` on batches of equal-shape cases against
the reference called one mask pair at a time (``tests/support/references.py``, as its users call it);
:class:`ThroughFiles` times :func:`medseg_eval.evaluate` on a folder of PNG predictions and a folder
of PNG ground truths against a loop that reads the same files with PIL and calls the reference.
Both return the values of :data:`NAMES` per case, in case order, so that :func:`max_relative_difference`
can check them; :func:`timed` takes the wall time of one call.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from benchmarks.kinds import Case
from medseg_eval import metrics
from medseg_eval.batching import bucket, stack

if TYPE_CHECKING:
    from typing_extensions import Self

NAMES = ("dice", "hausdorff", "hd95", "assd", "nsd")
PERCENTILE, TOLERANCE = 95.0, 2.0
Values = dict[str, np.ndarray]
T = TypeVar("T")


def timed(run: Callable[[], T], cuda: bool = False) -> tuple[float, T]:
    """Seconds one call of ``run`` takes (CUDA work finished), and its result."""
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = run()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def reference_values(convention: str, pairs: Iterable[tuple[np.ndarray, np.ndarray, Any]]) -> Values:
    """The reference library of ``convention`` on each bool mask pair ``(pred, target, spacing)``, one at a time;
    NaN where it has no such metric (MedPy: NSD)."""
    from tests.support.references import REFERENCES  # the reference libraries are test dependencies

    reference = REFERENCES[convention]
    outputs = [reference(pred, target, spacing, PERCENTILE, TOLERANCE, names=NAMES) for pred, target, spacing in pairs]
    return {m: np.array([out.get(m, np.nan) for out in outputs]) for m in NAMES}


def max_relative_difference(ours: Values, reference: Values) -> float:
    """Largest ``|ours - ref| / |ref|`` over the metrics the reference computes; NaN against a number is infinite."""
    worst = 0.0
    for name, ref in reference.items():
        if np.isnan(ref).all():
            continue
        mine = ours[name]
        same = (mine == ref) | (np.isnan(mine) & np.isnan(ref))
        with np.errstate(invalid="ignore", divide="ignore"):
            diff = np.where(same, 0.0, np.abs(mine - ref) / np.maximum(np.abs(ref), 1e-12))
        worst = max(worst, float(np.nan_to_num(diff, nan=np.inf).max(initial=0.0)))
    return worst


class Runner:
    """Both sides on one list of cases, values in case order; a context manager that frees what it made."""

    cases: list[Case]
    cuda: bool

    def ours(self, convention: str) -> Values:
        raise NotImplementedError

    def reference(self, convention: str) -> Values:
        raise NotImplementedError

    def close(self) -> None:
        """Free what the runner made (tensors, files)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InMemory(Runner):
    """Label maps stacked as stored (uint8) into batches of up to ``batch`` cases on ``device``, as
    :func:`medseg_eval.evaluate` batches them: cases of similar sizes (one :func:`~medseg_eval.batching.bucket`)
    padded into one batch and scored at their own sizes; conversions stay outside the timed calls for both sides."""

    def __init__(self, cases: list[Case], *, batch: int, device: str) -> None:
        self.cases = cases
        key = [bucket(c[1].shape) for c in cases]
        self.order = sorted(range(len(cases)), key=lambda i: (key[i], cases[i][1].shape))  # stable
        self.batches = []
        start = 0
        while start < len(self.order):
            chunk = [i for i in self.order[start:start + batch] if key[i] == key[self.order[start]]]
            (pred, sizes), (target, _) = (stack([cases[i][k].astype(np.uint8) for i in chunk]) for k in (0, 1))
            spacing = torch.tensor([cases[i][2] for i in chunk], dtype=torch.float64, device=device)
            self.batches.append((torch.from_numpy(pred).to(device), torch.from_numpy(target).to(device), spacing, sizes))
            start += len(chunk)
        self.cuda = self.batches[0][0].is_cuda

    def ours(self, convention: str) -> Values:
        parts = [metrics.compute(pred, target, NAMES, spacing=spacing, convention=convention, sizes=sizes,
                                 percentile=PERCENTILE, tolerance=TOLERANCE)
                 for pred, target, spacing, sizes in self.batches]
        inverse = np.argsort(self.order)
        return {m: torch.cat([p[m] for p in parts])[:, 0].cpu().numpy()[inverse] for m in NAMES}

    def reference(self, convention: str) -> Values:
        return reference_values(convention, self.cases)

    def close(self) -> None:
        self.batches = []


class ThroughFiles(Runner):
    """The cases saved as 8-bit PNG masks ({0, 255}) in a temporary folder: ``pred/<id>.png`` and
    ``truth/<id>.png``; each side reads them itself, every call."""

    def __init__(self, cases: list[Case], *, batch: int, device: str) -> None:
        from PIL import Image

        self.cases, self.batch, self.device = cases, batch, device
        self.cuda = torch.device(device).type == "cuda"
        self._folder = tempfile.TemporaryDirectory(prefix="medseg-speed-")
        self.root = Path(self._folder.name)
        self.ids = [f"case{i:04d}" for i in range(len(cases))]  # sorted as evaluate orders them
        for side in ("pred", "truth"):
            (self.root / side).mkdir()
        for case_id, (pred, target, _) in zip(self.ids, cases):
            Image.fromarray(pred.astype(np.uint8) * 255).save(self.root / "pred" / f"{case_id}.png")
            Image.fromarray(target.astype(np.uint8) * 255).save(self.root / "truth" / f"{case_id}.png")

    def ours(self, convention: str) -> Values:
        from medseg_eval import evaluate

        result = evaluate(self.root / "pred", targets=self.root / "truth", num_classes=2, metrics=list(NAMES),
                          convention=convention, percentile=PERCENTILE, tolerance=TOLERANCE, device=self.device,
                          batch_size=self.batch, progress=False)
        table = result.per_case.sort("case_id")
        return {m: table.filter(metric=m)["value"].to_numpy() for m in NAMES}

    def reference(self, convention: str) -> Values:
        from PIL import Image

        def read(side: str, case_id: str) -> np.ndarray:
            return np.asarray(Image.open(self.root / side / f"{case_id}.png")) > 0

        return reference_values(convention, ((read("pred", c), read("truth", c), (1.0, 1.0)) for c in self.ids))

    def close(self) -> None:
        self._folder.cleanup()


def runner(cases: list[Case], *, files: bool, batch: int, device: str) -> Runner:
    """The runner of a kind: :class:`ThroughFiles` when ``files``, else :class:`InMemory`; use it as a context manager."""
    return (ThroughFiles if files else InMemory)(cases, batch=batch, device=device)
