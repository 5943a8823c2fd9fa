"""Tampering with a built canonical copy, as a damaged or edited download would be."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image


def flip_mask_pixel(folder: Path, split: str, case_id: str, y: int, x: int) -> None:
    """Flip one pixel of one stored mask in place (and drop the Arrow cache built from the old shard)."""
    shard = next((folder / "data").glob(f"{split}-*"))
    table = pq.read_table(shard)
    rows = table.to_pylist()
    row = next(r for r in rows if r["case_id"] == case_id)
    mask = np.asarray(Image.open(io.BytesIO(row["mask"]["bytes"]))).copy()
    mask[y, x] ^= 1
    buffer = io.BytesIO()
    Image.fromarray(mask).save(buffer, format="PNG")
    row["mask"]["bytes"] = buffer.getvalue()
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    shutil.rmtree(folder / ".arrow", ignore_errors=True)
