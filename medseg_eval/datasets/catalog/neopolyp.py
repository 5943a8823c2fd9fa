"""BKAI-IGH NeoPolyp-Small (Lan et al., ISVC 2021): polyps classified as neoplastic or not.

Release layout (Kaggle competition ``bkai-igh-neopolyp``): ``train/train/<id>.jpeg`` and
``train_gt/train_gt/<id>.jpeg`` with the same file names; ``test/`` has no masks and is not used.
The masks are colour-coded JPEGs: red = neoplastic, green = non-neoplastic, black = background.
Compression blurs the colours at the edges, so each pixel takes the nearest of the three colours.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from ..canonical import CaseRecord, CaseSource
from ..errors import SourceFileMissingError
from ..registry import DatasetSpec, Selection, SourceFile, register
from ._common import find_folder, optional_image, read_mask, require

# Reference colours by class id: background, non-neoplastic (green), neoplastic (red).
COLOURS = np.array([[0, 0, 0], [0, 255, 0], [255, 0, 0]], dtype=np.int32)


def colours_to_labels(rgb: np.ndarray) -> np.ndarray:
    """Class id of the nearest reference colour for every pixel of an RGB mask.

    Examples
    --------
    >>> colours_to_labels(np.array([[[250, 10, 5], [3, 200, 40], [30, 20, 25]]], dtype=np.uint8)).tolist()
    [[2, 1, 0]]
    """
    distance = ((rgb[..., None, :].astype(np.int32) - COLOURS) ** 2).sum(-1)
    return distance.argmin(-1).astype(np.uint8)


def _load(case_id: str, image: Path | None, mask: Path) -> CaseRecord:
    return CaseRecord(case_id=case_id, image=optional_image(image), mask=colours_to_labels(read_mask(mask, "RGB")))


def cases(roots: Sequence[Path], want: Selection) -> Iterator[CaseSource]:
    images = find_folder(roots, "train")
    masks = find_folder(roots, "train_gt")
    images = images / "train" if (images / "train").is_dir() else images
    masks = masks / "train_gt" if (masks / "train_gt").is_dir() else masks
    files = sorted(images.glob("*.jpeg"))
    if not files:
        raise SourceFileMissingError(f"no training images (*.jpeg) in {images}; unpack train.zip and train_gt.zip of the "
                                     "competition bundle there.")
    for image in files:
        yield CaseSource(image.stem, partial(_load, image.stem, want.image(image), require(masks / image.name)))


SPEC = register(DatasetSpec(
    name="neopolyp",
    title="BKAI-IGH NeoPolyp-Small",
    description="1,000 white-light colonoscopy images (mostly 1280x959 width x height) with polyp masks in which each polyp is "
                "labelled neoplastic or non-neoplastic by two endoscopists of the Institute of Gastroenterology "
                "and Hepatology, Hanoi. The 200 competition test images have no public masks and are not included.",
    modality="endoscopy",
    classes=("background", "non-neoplastic polyp", "neoplastic polyp"),
    splits={"train": 800, "test": 200},
    test_split="test",
    split_rule="The release's masks exist for its 1000 training images only. A seeded permutation (seed 42) "
               "holds out 20% of the images as the test split; patient or video identities are not published, "
               "so images are drawn one by one.",
    resolution="original size of each image (mostly 1280x959 width x height); colour-coded JPEG masks mapped to the nearest "
               "of black, green, red",
    license="Kaggle competition rules of bkai-igh-neopolyp (licence not stated; unknown)",
    homepage="https://www.kaggle.com/c/bkai-igh-neopolyp",
    citation="""@inproceedings{lan2021neounet,
  title={NeoUNet: Towards Accurate Colon Polyp Segmentation and Neoplasm Detection},
  author={Lan, Phan Ngoc and An, Nguyen Sy and Hang, Dao Viet and Long, Dao Van and Trung, Tran Quang and Thuy, Nguyen Thi and Sang, Dinh Viet},
  booktitle={Advances in Visual Computing (ISVC 2021)},
  series={LNCS},
  volume={13018},
  pages={15--28},
  year={2021},
  doi={10.1007/978-3-030-90436-4_2}
}""",
    sources=(SourceFile("bkai-igh-neopolyp.zip", "https://www.kaggle.com/c/bkai-igh-neopolyp/data",
                        note="Kaggle login and rules acceptance required; no checksum is published.",
                        masks=("train", "test"), images=("train", "test"), unpack_first=True),),
    source_folder="train_gt",
    builder=cases,
    holdout={"test": 0.2},
    manual_download="accept the rules at https://www.kaggle.com/c/bkai-igh-neopolyp/rules, run "
                    "`kaggle competitions download -c bkai-igh-neopolyp`, unzip it (and the train.zip and "
                    "train_gt.zip inside, if any) into one folder.",
    known_issues=("Masks are JPEG: colours at polyp edges are blends, mapped to the nearest reference colour.",
                  "No public masks for the competition test set; the test split here is held out from the training images."),
))
