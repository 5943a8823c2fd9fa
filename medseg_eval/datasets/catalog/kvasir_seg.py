"""Kvasir-SEG (Jha et al., MMM 2020): 1,000 colonoscopy images with polyp masks.

Release layout: ``Kvasir-SEG/images/<id>.jpg``, ``Kvasir-SEG/masks/<id>.jpg`` (JPEG masks, so values
are not exactly 0/255: binarized at grey level 128), ``kavsir_bboxes.json``. The official 880/120
split (MediaEval 2020 Medico task) is not part of the release; it ships in the manifest, and a
folder ``official-split/{train,val}.txt`` beside the release is honoured when present.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

from ..canonical import CaseSource
from ..errors import SourceFileMissingError
from ..registry import DatasetSpec, Selection, SourceFile, register
from ._common import binary_case, find_folder, require, split_list


def cases(roots: Sequence[Path], want: Selection) -> Iterator[CaseSource]:
    base = find_folder(roots, "Kvasir-SEG")
    images, masks = require(base / "images"), require(base / "masks")
    official = find_folder(roots, "official-split", required=False)
    split_of = {}
    if official is not None:
        split_of = {i: "train" for i in split_list(official / "train.txt")}
        split_of.update({i: "validation" for i in split_list(official / "val.txt")})
    orphans = sorted({p.stem for p in masks.glob("*.jpg")} - {p.stem for p in images.glob("*.jpg")})
    if orphans:
        raise SourceFileMissingError(f"Kvasir-SEG: masks without an image in {images}: {', '.join(orphans[:5])}.")
    for image in sorted(images.glob("*.jpg")):
        yield CaseSource(image.stem, partial(binary_case, image.stem, want.image(image), require(masks / image.name)),
                         split=split_of.get(image.stem))


SPEC = register(DatasetSpec(
    name="kvasir-seg",
    title="Kvasir-SEG",
    description="1,000 colonoscopy images (332x487 to 1920x1072 pixels, width x height) with one polyp mask each, "
                "annotated by a medical doctor and verified by an experienced gastroenterologist "
                "(Vestre Viken Health Trust, Norway).",
    modality="endoscopy",
    classes=("background", "polyp"),
    splits={"train": 880, "validation": 120},
    test_split="validation",
    split_rule="The official split of the MediaEval 2020 Medico task: 880 training and 120 validation images, "
               "as listed in its train.txt and val.txt. The release says nothing about which images come "
               "from the same patient or video, so folds are drawn per image.",
    resolution="original size of each image (332 to 1920 wide, 352 to 1072 high); masks binarized at grey level 128",
    license="Kvasir-SEG terms: research and educational use; commercial use needs Simula's permission",
    homepage="https://datasets.simula.no/kvasir-seg/",
    citation="""@inproceedings{jha2020kvasir,
  title={Kvasir-SEG: A Segmented Polyp Dataset},
  author={Jha, Debesh and Smedsrud, Pia H. and Riegler, Michael A. and Halvorsen, P{\\aa}l and de Lange, Thomas and Johansen, Dag and Johansen, H{\\aa}vard D.},
  booktitle={MultiMedia Modeling (MMM 2020)},
  pages={451--462},
  year={2020},
  doi={10.1007/978-3-030-37734-2_37}
}""",
    sources=(SourceFile("kvasir-seg.zip", "https://datasets.simula.no/downloads/kvasir-seg.zip",
                        "03b30e21d584e04facf49397a2576738fd626815771afbbf788f74a7153478f7",
                        note="sha256 as pinned by torch-em and one other public loader, not by Simula.",
                        masks=("train", "validation"), images=("train", "validation")),),
    source_folder="Kvasir-SEG",
    builder=cases,
    known_issues=("Masks are JPEG: edges hold intermediate grey levels, binarized at 128 here.",
                  ("Several images come from the same colonoscopy; with no grouping published, image-level "
                  "splits may put near-duplicates on both sides.")),
))
