"""DRIVE (Staal et al., IEEE TMI 2004): 40 retinal fundus images with vessel annotations.

Release layout: ``DRIVE/{training,test}/images/NN_{training,test}.tif``,
``1st_manual/NN_manual1.gif`` (the reference), ``mask/NN_{training,test}_mask.gif`` (the field of
view, stored as the region of interest), and ``test/2nd_manual/NN_manual2.gif`` (a second observer,
not part of the ground truth).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

from ..canonical import CaseRecord, CaseSource
from ..registry import DatasetSpec, Selection, SourceFile, register
from ._common import binarize, find_folder, optional_image, read_mask, require


def _load(case_id: str, image: Path | None, manual: Path, fov: Path) -> CaseRecord:
    return CaseRecord(case_id=case_id, image=optional_image(image), mask=binarize(read_mask(manual)),
                      roi=binarize(read_mask(fov)).astype(bool))


def cases(roots: Sequence[Path], want: Selection) -> Iterator[CaseSource]:
    base = find_folder(roots, "DRIVE")
    for folder, split in (("training", "train"), ("test", "test")):
        for image in sorted(require(base / folder / "images").glob("*.tif")):
            number, kind = image.stem.split("_")
            manual = require(base / folder / "1st_manual" / f"{number}_manual1.gif")
            fov = require(base / folder / "mask" / f"{number}_{kind}_mask.gif")
            yield CaseSource(image.stem, partial(_load, image.stem, want.image(image), manual, fov), split=split)


SPEC = register(DatasetSpec(
    name="drive",
    title="DRIVE: Digital Retinal Images for Vessel Extraction",
    description="40 colour fundus photographs (565x584 pixels, Canon CR5, 45 degree field of view) from a "
                "diabetic retinopathy screening programme in the Netherlands, with manual vessel segmentations.",
    modality="fundus photography",
    classes=("background", "vessel"),
    splits={"train": 20, "test": 20},
    test_split="test",
    split_rule="The official split: images 21-40 for training, 01-20 for testing. The first observer "
               "(1st_manual) is the ground truth; each image comes from a different patient.",
    resolution="565x584 width x height (original)",
    license="DRIVE terms: research use, as registered with the organisers",
    homepage="https://drive.grand-challenge.org/",
    citation="""@article{staal2004ridge,
  title={Ridge-based vessel segmentation in color images of the retina},
  author={Staal, Joes and Abr{\\`a}moff, Michael D. and Niemeijer, Meindert and Viergever, Max A. and van Ginneken, Bram},
  journal={IEEE Transactions on Medical Imaging},
  volume={23},
  number={4},
  pages={501--509},
  year={2004},
  doi={10.1109/TMI.2004.825627}
}""",
    sources=(SourceFile("DRIVE.zip", "https://drive.grand-challenge.org/Download/",
                        note="behind a grand-challenge login; no checksum is published.",
                        masks=("train", "test"), images=("train", "test")),),
    source_folder="DRIVE",
    builder=cases,
    file_key=r"^(\d{2})_",
    roi="the camera's field of view (mask/NN_*_mask.gif).",
    manual_download="register at https://drive.grand-challenge.org/, download the data, unpack it so that a folder "
                    "DRIVE/ holds training/ and test/ (with test/1st_manual).",
    known_issues=("The archive now distributed by grand-challenge may lack test/1st_manual; the test split needs it.",
                  "Images 01-20 have a second observer's annotation (test/2nd_manual), often reported as human performance."),
    literature_metrics=("accuracy", "recall", "specificity", "dice", "cldice", "betti0_error", "betti1_error"),
    metric_references=(
        ("Staal et al. (2004), Ridge-based vessel segmentation in color images of the retina, IEEE TMI 23(4):501-509: "
        "accuracy, sensitivity (`recall`) and specificity over the pixels inside the field of view."),
        ("Dice (1945), Measures of the amount of ecologic association between species, Ecology 26(3):297-302: Dice "
        "(the F1 score of vessel papers)."),
        ("Shit et al. (2021), clDice - a novel topology-preserving loss function for tubular structure segmentation, "
        "CVPR 2021:16560-16569: clDice, Betti-0 and Betti-1 errors."),
        "Hu et al. (2019), Topology-preserving deep image segmentation, NeurIPS 32: Betti errors.",
    ),
))
