"""CVC-ClinicDB (Bernal et al., CMIG 2015): 612 colonoscopy frames from 29 video sequences.

Release layout: ``CVC-ClinicDB/Original/<n>.tif`` and ``CVC-ClinicDB/Ground Truth/<n>.tif`` (0/255),
``n`` = 1..612. The publisher's table maps frame numbers to the 29 sequences; splits and folds keep
each sequence whole, since frames of one sequence are near-duplicates.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

from ..canonical import CaseSource
from ..errors import SourceFormatError
from ..registry import DatasetSpec, Selection, SourceFile, register
from ._common import binary_case, find_folder, require

# Last frame of each sequence 1..29, from the table on the dataset's page.
_SEQUENCE_ENDS = (25, 50, 67, 78, 103, 126, 151, 177, 199, 205, 227, 252, 277, 297, 317, 342, 363, 383, 408,
                  428, 447, 466, 478, 503, 528, 546, 571, 591, 612)


def sequence_of(frame: int) -> int:
    """The video sequence (1..29) of a frame number (1..612).

    Examples
    --------
    >>> sequence_of(1), sequence_of(25), sequence_of(26), sequence_of(612)
    (1, 1, 2, 29)
    """
    if not 1 <= frame <= _SEQUENCE_ENDS[-1]:
        raise ValueError(f"CVC-ClinicDB frames are numbered 1..612, got {frame}")
    return bisect.bisect_left(_SEQUENCE_ENDS, frame) + 1


def cases(roots: Sequence[Path], want: Selection) -> Iterator[CaseSource]:
    base = find_folder(roots, "CVC-ClinicDB")
    originals, truths = require(base / "Original"), require(base / "Ground Truth")
    for image in sorted(originals.glob("*.tif"), key=lambda p: p.stem.zfill(4)):
        if not image.stem.isdigit():
            raise SourceFormatError(f"{image}: CVC-ClinicDB frames are named <number>.tif.")
        group = f"sequence-{sequence_of(int(image.stem)):02d}"
        yield CaseSource(image.stem, partial(binary_case, image.stem, want.image(image), require(truths / image.name)),
                         group=group)


SPEC = register(DatasetSpec(
    name="cvc-clinicdb",
    title="CVC-ClinicDB",
    description="612 frames (384x288 pixels) from 29 colonoscopy video sequences of Hospital Clinic, Barcelona, each "
                "with one polyp mask by the Computer Vision Center, Barcelona.",
    modality="endoscopy",
    classes=("background", "polyp"),
    splits={"train": 467, "test": 145},
    test_split="test",
    split_rule="No official split. A seeded permutation (seed 42) of the 29 video sequences holds out 20% of "
               "the sequences (6) as the test split; folds deal the remaining sequences, so no sequence is "
               "split between training and testing.",
    resolution="384x288 width x height (original); masks 0/255, binarized at 128",
    license="CVC-ClinicDB terms: research and educational use only; commercial use forbidden",
    homepage="https://polyp.grand-challenge.org/CVCClinicDB/",
    citation="""@article{bernal2015wm,
  title={WM-DOVA maps for accurate polyp highlighting in colonoscopy: Validation vs. saliency maps from physicians},
  author={Bernal, Jorge and S{\\'a}nchez, F. Javier and Fern{\\'a}ndez-Esparrach, Gloria and Gil, Debora and Rodr{\\'\\i}guez, Cristina and Vilari{\\~n}o, Fernando},
  journal={Computerized Medical Imaging and Graphics},
  volume={43},
  pages={99--111},
  year={2015},
  doi={10.1016/j.compmedimag.2015.02.007}
}""",
    sources=(SourceFile("CVC-ClinicDB.rar", "https://polyp.grand-challenge.org/CVCClinicDB/",
                        note="distributed as a RAR archive from the dataset page; no checksum is published.",
                        masks=("train", "test"), images=("train", "test"), unpack_first=True),),
    source_folder="CVC-ClinicDB",
    builder=cases,
    holdout={"test": 0.2},
    manual_download="download CVC-ClinicDB from https://polyp.grand-challenge.org/CVCClinicDB/ and unpack the RAR "
                    "(e.g. `unrar x CVC-ClinicDB.rar`) so that a folder CVC-ClinicDB/ holds Original/ and Ground Truth/.",
    known_issues=(("Sequences come from 23-25 video studies whose mapping is not published; two sequences may "
                  "share a patient, so the sequence-grouped split reduces leakage but cannot guarantee patient disjointness."),),
))
