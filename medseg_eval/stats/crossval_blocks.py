"""Cross-validations in a comparison: their folds and seeds as blocks, paired across models.

:func:`~medseg_eval.compare` pairs values by ``dataset`` and ``case_id``; here each held-out case's
block (its fold, and its seed's position when there are several seeds) is written into the
``dataset`` column, so that the pairing, the tests and the rankings need nothing else.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from .crossval import CrossValidation
from .pairing import Blocks, PairingError, per_case_table


def cv_layout(folds: dict[str, list[CrossValidation]]) -> dict[str, Any]:
    """The folds and seeds every model shares; seeds pair by position, so each model needs as many."""
    layouts = {name: (runs[0].folds, len(runs[0].seeds)) for name, runs in folds.items()}
    if len(set(map(str, layouts.values()))) > 1:
        detail = ", ".join(f"{n}: folds {f}, {k} seed(s)" for n, (f, k) in layouts.items())
        raise PairingError(f"the cross-validations differ in folds or number of seeds ({detail}); compare models "
                           "run on the same folds with as many seeds.")
    first = next(iter(folds.values()))[0]
    return {"folds": first.folds, "n_seeds": len(first.seeds),
            "seeds": {name: runs[0].seeds for name, runs in folds.items()}}


def cv_table(models: dict[str, CrossValidation]) -> pl.DataFrame:
    """The long table with each case's ``fold`` and seed position ``replicate`` (0, 1, ...)."""
    parts = []
    for name, cv in models.items():
        replicate = {s: i for i, s in enumerate(cv.seeds)}
        parts.append(per_case_table({name: cv.per_case.select("case_id", "class", "class_id", "metric", "value")})
                     .with_columns(dataset=pl.lit(cv.provenance.get("dataset"), pl.String))
                     .with_columns(fold=cv.per_case["fold"], replicate=cv.per_case["seed"].replace_strict(
                         replicate, return_dtype=pl.Int64, default=0)))
    return pl.concat(parts)


def cv_blocks(table: pl.DataFrame, cv: dict[str, Any] | None, blocks: str) -> tuple[pl.DataFrame, Blocks]:
    """The table whose ``dataset`` column names each block, and how :func:`paired_values` pairs it."""
    if cv is None:
        if blocks not in ("case", "dataset"):
            raise ValueError(f"blocks={blocks!r} is for cross-validations; these are plain results: 'case' or "
                             "'dataset'.")
        return table, blocks  # type: ignore[return-value]
    if blocks not in ("case", "fold", "seed"):
        raise ValueError(f"cross-validations are compared with blocks 'fold' (default), 'seed' or 'case', got {blocks!r}.")
    if blocks == "seed" and cv["n_seeds"] < 2:
        raise ValueError("blocks='seed' needs several seeds; these cross-validations have one: use 'fold'.")
    seed = pl.format(" seed#{}", pl.col("replicate") + 1) if cv["n_seeds"] > 1 else pl.lit("")
    label = {"case": seed, "fold": pl.format(" fold {}", "fold") + seed, "seed": seed}[blocks]
    table = table.with_columns(dataset=pl.coalesce("dataset", pl.lit("folds")) + label).drop("fold", "replicate")
    return table, "case" if blocks == "case" else "dataset"
