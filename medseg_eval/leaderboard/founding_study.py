"""The founding study's reported mDice, seeded on the boards as *reported* entries.

arXiv 2603.13044 compares specialized medical architectures with general-purpose vision models
under one protocol: mDice in %, foreground classes, pixels pooled over each test fold, 5-fold
cross-validation at 512x512; mean ± sd over the folds. The numbers come from summaries of the
paper, not from its per-case data, and are marked as such: they show where reproduced results
should land and are never ranked or tested.
"""

from __future__ import annotations

from pathlib import Path

from .bundle import reported_submission

CITATION = "arXiv 2603.13044 (the founding study)"
NOTE = "from summaries of the paper; 5-fold CV mean ± sd, mDice in %, pixels pooled over each test fold"
PROTOCOL = "5-fold cross-validation at 512x512, AdamW, REX schedule, batch 8, early stopping on validation IoU"
DATASETS = ("isic2018", "neopolyp", "camus")
#: model: (parameters in millions, {dataset: (mean, sd)})
REPORTED: dict[str, tuple[float, dict[str, tuple[float, float]]]] = {
    "VWFormer (MiT-B3)": (51, {"isic2018": (91.7, 0.5), "neopolyp": (89.7, 0.8), "camus": (91.6, 0.1)}),
    "VWFormer (ConvNeXt-S)": (57, {"isic2018": (91.5, 0.4), "neopolyp": (89.6, 1.3), "camus": (91.4, 0.1)}),
    "TransNeXt-Tiny + UPerHead": (58, {"isic2018": (91.9, 0.7), "neopolyp": (89.4, 0.7), "camus": (91.5, 0.1)}),
    "InternImage-T + UPerHead": (58, {"isic2018": (91.3, 0.4), "neopolyp": (89.6, 1.1), "camus": (91.4, 0.2)}),
    "SegNeXt-L": (49, {"isic2018": (91.4, 0.6), "neopolyp": (89.2, 0.7), "camus": (91.6, 0.1)}),
    "SegFormer-B3": (47, {"isic2018": (91.3, 0.8), "neopolyp": (89.1, 1.3), "camus": (91.5, 0.1)}),
    "Swin-UMamba": (60, {"isic2018": (91.3, 0.5), "neopolyp": (88.9, 0.6), "camus": (91.3, 0.3)}),
    "HiFormer-B": (26, {"isic2018": (91.0, 0.6), "neopolyp": (84.6, 0.9), "camus": (90.8, 0.2)}),
    "U-KAN-L": (25, {"isic2018": (89.2, 1.1), "neopolyp": (82.5, 1.7), "camus": (90.5, 0.2)}),
    "MISSFormer": (42, {"isic2018": (90.3, 0.8), "neopolyp": (82.9, 1.6), "camus": (90.4, 0.1)}),
    "U-Net": (31, {"isic2018": (89.0, 0.9), "neopolyp": (83.3, 1.1), "camus": (89.1, 0.3)}),
}


def seed_reported(board_dir: str | Path) -> list[Path]:
    """Write the founding study's reported bundles (11 models x ISIC 2018, NeoPolyp, CAMUS) under ``board_dir``.

    Examples
    --------
    >>> import tempfile
    >>> len(seed_reported(tempfile.mkdtemp()))
    33
    """
    return [reported_submission(model, dataset, metric="mDice (%)", mean=scores[dataset][0], sd=scores[dataset][1],
                                citation=CITATION, aggregate="pooled over each test fold; mean ± sd over 5 folds",
                                protocol=PROTOCOL, note=NOTE, parameters=float(params)).write(board_dir)
            for model, (params, scores) in REPORTED.items() for dataset in DATASETS]
