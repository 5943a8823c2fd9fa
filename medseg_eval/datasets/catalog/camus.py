"""CAMUS (Leclerc et al., IEEE TMI 2019): 2D echocardiography, 500 patients, two views, two instants.

Release layout (public NIfTI release): ``database_nifti/patientNNNN/patientNNNN_{2CH,4CH}_{ED,ES}.nii.gz``
with ``..._gt.nii.gz`` label maps (1 left-ventricle cavity, 2 myocardium, 3 left atrium), and
``database_split/subgroup_{training,validation,testing}.txt`` (one patient per line). The pixel
size comes from the NIfTI header; rows follow the header's second voxel axis, columns its first
(as SimpleITK's array view, which the CAMUS evaluation scripts use).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import numpy as np

from ..canonical import CaseRecord, CaseSource, encode_png
from ..errors import SourceFormatError
from ..registry import DatasetSpec, Selection, SourceFile, register
from ._common import find_folder, require, split_list

_SPLIT_FILES = {"train": "subgroup_training.txt", "validation": "subgroup_validation.txt", "test": "subgroup_testing.txt"}


def _read_nifti(path: Path) -> tuple[np.ndarray, tuple[float, float]]:
    import nibabel as nib

    try:
        image = nib.load(require(path))
        data = np.asarray(image.dataobj)
        zooms = image.header.get_zooms()
    except (OSError, EOFError, ValueError, nib.filebasedimages.ImageFileError) as err:
        raise SourceFormatError(f"cannot read {path}: {err}. Re-download the release; the file is corrupt.") from err
    data = data.reshape(data.shape[:2]) if data.ndim == 3 and data.shape[2] == 1 else data
    if data.ndim != 2:
        raise SourceFormatError(f"{path}: expected one 2D frame, got shape {data.shape}.")
    if not np.array_equal(data, np.round(data)) or data.min() < 0 or data.max() > 255:
        raise SourceFormatError(f"{path}: values must be whole numbers in 0..255, got {data.min()}..{data.max()}.")
    return data.T.astype(np.uint8), (float(zooms[1]), float(zooms[0]))


def _load(case_id: str, image: Path | None, mask: Path) -> CaseRecord:
    labels, label_spacing = _read_nifti(mask)
    if image is None:  # masks only: the label map's header gives the pixel size
        return CaseRecord(case_id=case_id, image=None, mask=labels, spacing=label_spacing)
    pixels, spacing = _read_nifti(image)
    if not np.allclose(spacing, label_spacing):
        raise SourceFormatError(f"{case_id}: {image.name} and {mask.name} have different pixel sizes {spacing} vs {label_spacing}.")
    return CaseRecord(case_id=case_id, image=encode_png(pixels), mask=labels, spacing=spacing)


def cases(roots: Sequence[Path], want: Selection) -> Iterator[CaseSource]:
    base = find_folder(roots, "database_nifti")
    lists = find_folder(roots, "database_split")
    for split, name in _SPLIT_FILES.items():
        for patient in split_list(lists / name):
            folder = require(base / patient)
            for view in ("2CH", "4CH"):
                for instant in ("ED", "ES"):
                    case_id = f"{patient}_{view}_{instant}"
                    image, mask = folder / f"{case_id}.nii.gz", folder / f"{case_id}_gt.nii.gz"
                    require(mask)
                    image = require(image) if want.images else None
                    yield CaseSource(case_id, partial(_load, case_id, image, mask), group=patient, split=split)


SPEC = register(DatasetSpec(
    name="camus",
    title="CAMUS: Cardiac Acquisitions for Multi-structure Ultrasound Segmentation",
    description="Apical two- and four-chamber echocardiograms of 500 patients (University Hospital of "
                "Saint-Etienne), each at end-diastole and end-systole, with expert contours of the left "
                "ventricle cavity, the myocardium and the left atrium.",
    modality="ultrasound",
    classes=("background", "left ventricle cavity", "myocardium", "left atrium"),
    splits={"train": 1600, "validation": 200, "test": 200},
    test_split="test",
    split_rule="The release's own patient split (database_split: 400 training, 50 validation, 50 testing "
               "patients), four images per patient (2CH/4CH x ED/ES). Folds group images by patient.",
    resolution="original size of each image; pixel size in mm from the NIfTI header (anisotropic)",
    license="CAMUS terms: research use, citation of Leclerc et al. 2019 mandatory (licence text not pinned here)",
    homepage="https://humanheart-project.creatis.insa-lyon.fr/database/#collection/6373703d73e9f0047faa1bc8",
    citation="""@article{leclerc2019deep,
  title={Deep Learning for Segmentation Using an Open Large-Scale Dataset in 2D Echocardiography},
  author={Leclerc, Sarah and Smistad, Erik and Pedrosa, Jo{\\~a}o and {\\O}stvik, Andreas and Cervenansky, Frederic and Espinosa, Florian and Espeland, Torvald and Berg, Erik Andreas Rye and Jodoin, Pierre-Marc and Grenier, Thomas and Lartizien, Carole and D'hooge, Jan and Lovstakken, Lasse and Bernard, Olivier},
  journal={IEEE Transactions on Medical Imaging},
  volume={38},
  number={9},
  pages={2198--2210},
  year={2019},
  doi={10.1109/TMI.2019.2900516}
}""",
    sources=(SourceFile("CAMUS_public.zip", "https://humanheart-project.creatis.insa-lyon.fr/database/api/v1/folder/"
                        "63fde55f73e9f004868fb7ac/download",
                        note="the server zips the folder CAMUS_public on each request, so the archive has no stable "
                             "checksum; the manifest's mask hashes are the check.",
                        masks=("train", "validation", "test"), images=("train", "validation", "test")),),
    source_folder="database_nifti",
    builder=cases,
    spacing_unit="mm",
    manual_download="create an account and log in at https://humanheart-project.creatis.insa-lyon.fr/database/, "
                    "open the collection CAMUS and download the folder CAMUS_public (served as CAMUS_public.zip, "
                    "holding database_nifti/ and database_split/).",
    known_issues=("The older 2019 challenge release (.mhd/.raw, 450 + 50 patients) has another layout and is not read.",
                  "Image quality varies (good/medium/poor in Info_*.cfg); all images are kept."),
))
