"""The manifest a dataset's numbers are checked against: the shipped one, else the local build's.

Boards check a bundle's cases and manifest hash against it, cross-validations check that each fold
holds the cases it assigns that fold, and the reference trainers take their folds from it.
"""

from __future__ import annotations

import polars as pl

from .build import canonical_dir, shipped_manifest
from .canonical import read_manifest
from .errors import DatasetNotBuiltError
from .registry import get_spec


def expected_manifest(name: str) -> pl.DataFrame:
    """The split manifest of ``name``: the one shipped with the package, else the one of the local build.

    Raises
    ------
    DatasetNotBuiltError
        When the package ships no manifest for ``name`` and no canonical copy is built here.

    Examples
    --------
    >>> expected_manifest("synthetic-lesions").columns[:3]
    ['case_id', 'split', 'fold']
    """
    spec = get_spec(name)
    shipped = shipped_manifest(spec.name)
    if shipped is not None:
        return shipped
    local = canonical_dir(spec.name) / "manifest.csv"
    if not local.is_file():
        raise DatasetNotBuiltError(f"{spec.name} has no shipped manifest and is not built here; build it "
                                   f"(medseg-eval datasets build {spec.name}) to check numbers against it.")
    return read_manifest(local)
