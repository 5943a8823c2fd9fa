"""Tiny releases in each dataset's exact official folder layout and file naming, for the builder tests.

Each maker writes a few cases under ``root`` and returns a :class:`Layout`: which top-level folders
go into which archive (named as the official ones), and what the canonical form must hold (label
map per case, the release's split where it has one, the group that must stay together).
Only the archive *format* can differ from the original: CVC-ClinicDB's RAR is served as a zip,
since no RAR writer is available to the tests.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class Layout:
    archives: dict[str, list[str]]  # archive name -> top-level folders (relative to root) it holds
    masks: dict[str, np.ndarray]  # case id -> expected label map
    splits: dict[str, str] = field(default_factory=dict)  # case id -> split fixed by the release
    groups: dict[str, str] = field(default_factory=dict)  # case id -> group that must stay whole
    spacing: dict[str, tuple[float, float]] = field(default_factory=dict)
    instances: dict[str, np.ndarray] = field(default_factory=dict)  # case id -> expected instance map
    roi: dict[str, np.ndarray] = field(default_factory=dict)  # case id -> expected region of interest

    def zip_into(self, root: Path, served: Path) -> list[str]:
        """Write the archives into ``served``; return their names."""
        served.mkdir(parents=True, exist_ok=True)
        for name, tops in self.archives.items():
            with zipfile.ZipFile(served / name, "w") as z:
                for top in tops:
                    for path in sorted((root / top).rglob("*")):
                        z.write(path, path.relative_to(root).as_posix())
        return list(self.archives)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def blob(rng: np.random.Generator, h: int, w: int, classes: int = 1) -> np.ndarray:
    """A label map with one rectangle per class at a random place."""
    mask = np.zeros((h, w), np.uint8)
    for c in range(1, classes + 1):
        y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
        mask[y:y + rng.integers(2, h - y), x:x + rng.integers(2, w - x)] = c
    return mask


def photo(rng: np.random.Generator, h: int, w: int, channels: int = 3) -> np.ndarray:
    shape = (h, w, channels) if channels > 1 else (h, w)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def save(path: Path, array: np.ndarray, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def isic2018(root: Path) -> Layout:
    rng, layout = _rng(1), Layout({}, {})
    ids = {"Training": [0, 1, 2], "Validation": [12255, 12256], "Test": [12169, 12170]}
    splits = {"Training": "train", "Validation": "validation", "Test": "test"}
    for part, numbers in ids.items():
        images, masks = f"ISIC2018_Task1-2_{part}_Input", f"ISIC2018_Task1_{part}_GroundTruth"
        for n in numbers:
            case = f"ISIC_{n:07d}"
            mask = blob(rng, 30, 40)
            save(root / images / f"{case}.jpg", photo(rng, 30, 40), quality=90)
            save(root / masks / f"{case}_segmentation.png", mask * 255)
            layout.masks[case], layout.splits[case] = mask, splits[part]
        for folder in (images, masks):
            (root / folder / "LICENSE.txt").write_text("licence text")
            (root / folder / "ATTRIBUTION.txt").write_text("attribution")
            layout.archives[f"{folder}.zip"] = [folder]
    return layout


def neopolyp(root: Path) -> Layout:
    rng, layout = _rng(2), Layout({"bkai-igh-neopolyp.zip": ["train", "train_gt", "test"]}, {})
    colours = np.array([[0, 0, 0], [0, 255, 0], [255, 0, 0]], np.uint8)  # background, non-neoplastic, neoplastic
    for i in range(10):
        case = f"{i:032x}"
        mask = blob(rng, 32, 48, classes=2)
        save(root / "train" / "train" / f"{case}.jpeg", photo(rng, 32, 48), format="JPEG")
        save(root / "train_gt" / "train_gt" / f"{case}.jpeg", colours[mask], format="JPEG", quality=100, subsampling=0)
        layout.masks[case] = mask
    save(root / "test" / "test" / f"{99:032x}.jpeg", photo(rng, 32, 48), format="JPEG")
    return layout


def camus(root: Path) -> Layout:
    import nibabel as nib

    rng, layout = _rng(3), Layout({"CAMUS_public.zip": ["CAMUS_public"]}, {})
    base = root / "CAMUS_public"
    split_files = {"subgroup_training.txt": ["patient0001", "patient0002"], "subgroup_validation.txt": ["patient0003"],
                   "subgroup_testing.txt": ["patient0004"]}
    split_names = {"subgroup_training.txt": "train", "subgroup_validation.txt": "validation", "subgroup_testing.txt": "test"}
    (base / "database_split").mkdir(parents=True)
    for file, patients in split_files.items():
        (base / "database_split" / file).write_text("".join(f"{p}\n" for p in patients))
        for p in patients:
            folder = base / "database_nifti" / p
            folder.mkdir(parents=True)
            (folder / "Info_2CH.cfg").write_text("ED: 1\nES: 12\nNbFrame: 12\nSex: F\nAge: 60\nImageQuality: Good\n")
            sy, sx = 0.154 + 0.01 * int(p[-1]), 0.308
            for view in ("2CH", "4CH"):
                for instant in ("ED", "ES"):
                    case = f"{p}_{view}_{instant}"
                    h, w = 20 + int(p[-1]), 16
                    labels = blob(rng, h, w, classes=3)
                    affine = np.diag([sx, sy, 1.0, 1.0])  # first voxel axis = columns (x), second = rows (y)
                    nib.save(nib.Nifti1Image(photo(rng, h, w, 1).T[..., None], affine), folder / f"{case}.nii.gz")
                    nib.save(nib.Nifti1Image(labels.T[..., None], affine), folder / f"{case}_gt.nii.gz")
                    layout.masks[case], layout.splits[case] = labels, split_names[file]
                    layout.groups[case], layout.spacing[case] = p, (sy, sx)
            nib.save(nib.Nifti1Image(np.zeros((16, 21, 3), np.uint8), np.eye(4)), folder / f"{p}_2CH_half_sequence.nii.gz")
    return layout


def cvc_clinicdb(root: Path) -> Layout:
    rng, layout = _rng(4), Layout({"CVC-ClinicDB.zip": ["CVC-ClinicDB"]}, {})
    # frames from several of the 29 sequences; 1-25 form sequence 1, 26-50 sequence 2, ...
    frames = {1: 1, 2: 1, 25: 1, 26: 2, 51: 3, 68: 4, 79: 5, 104: 6, 200: 10, 206: 11, 448: 22, 611: 29, 612: 29}
    for frame, sequence in frames.items():
        mask = blob(rng, 18, 24)
        save(root / "CVC-ClinicDB" / "Original" / f"{frame}.tif", photo(rng, 18, 24))
        save(root / "CVC-ClinicDB" / "Ground Truth" / f"{frame}.tif", mask * 255)
        layout.masks[str(frame)], layout.groups[str(frame)] = mask, f"sequence-{sequence:02d}"
    return layout


def busi(root: Path) -> Layout:
    rng, layout = _rng(5), Layout({"Dataset_BUSI.zip": ["Dataset_BUSI_with_GT"]}, {})
    base = root / "Dataset_BUSI_with_GT"
    for category, count in (("benign", 4), ("malignant", 3), ("normal", 2)):
        for n in range(1, count + 1):
            case = f"{category} ({n})"
            save(base / category / f"{case}.png", photo(rng, 26, 30))
            mask = np.zeros((26, 30), np.uint8) if category == "normal" else blob(rng, 26, 30)
            save(base / category / f"{case}_mask.png", mask * 255)
            if category == "benign" and n == 2:  # a multi-lesion image: extra masks, merged by the builder
                extra = [blob(rng, 26, 30), blob(rng, 26, 30)]
                save(base / category / f"{case}_mask_1.png", np.repeat(extra[0][..., None] * 255, 3, axis=2))
                save(base / category / f"{case}_mask_2.png", extra[1] * 255)
                mask = np.maximum(mask, np.maximum(*extra))
            layout.masks[case] = mask
    return layout


def glas(root: Path) -> Layout:
    folder = "Warwick QU Dataset (Released 2016_07_08)"
    rng, layout = _rng(6), Layout({"warwick_qu_dataset_released_2016_07_08.zip": [folder]}, {})
    rows = ["name, patient ID, grade (GlaS), grade (Sirinukunwattana et al. 2015)"]
    patients = {"train_1": 2, "train_2": 2, "train_3": 5, "train_4": 7, "train_5": 9, "train_6": 11,
                "testA_1": 4, "testA_2": 2, "testB_1": 1}
    for case, patient in patients.items():
        instances = np.zeros((22, 28), np.uint8)
        for label in range(1, 4):  # glands as instance ids
            instances[np.nonzero(blob(rng, 22, 28))] = label
        save(root / folder / f"{case}.bmp", photo(rng, 22, 28))
        save(root / folder / f"{case}_anno.bmp", instances)
        rows.append(f"{case}, {patient}, benign, healthy")
        layout.masks[case], layout.instances[case] = (instances > 0).astype(np.uint8), instances
        layout.splits[case] = "train" if case.startswith("train") else "test"
        layout.groups[case] = f"patient-{patient}"
    (root / folder / "Grade.csv").write_text("\n".join(rows) + "\n")
    return layout


def _aperio_xml(rectangles: list[tuple[float, float, float, float]]) -> str:
    regions = "".join(
        f'<Region Id="{i}" Type="0"><Attributes/><Vertices>'
        f'<Vertex X="{x0}" Y="{y0}" Z="0"/><Vertex X="{x1}" Y="{y0}" Z="0"/>'
        f'<Vertex X="{x1}" Y="{y1}" Z="0"/><Vertex X="{x0}" Y="{y1}" Z="0"/></Vertices></Region>'
        for i, (x0, y0, x1, y1) in enumerate(rectangles, 1)
    )
    return (f'<Annotations MicronsPerPixel="0.25"><Annotation Id="1"><Attributes/><Regions>'
            f"<RegionAttributeHeaders/>{regions}</Regions><Plots/></Annotation></Annotations>")


def monuseg(root: Path) -> Layout:
    rng, layout = _rng(7), Layout({"MoNuSeg 2018 Training Data.zip": ["MoNuSeg 2018 Training Data", "__MACOSX"],
                                   "MoNuSegTestData.zip": ["MoNuSegTestData"]}, {})
    train = root / "MoNuSeg 2018 Training Data"
    cases = {"TCGA-18-5592-01Z-00-DX1": ("train", train / "Tissue Images", train / "Annotations"),
             "TCGA-21-5784-01Z-00-DX1": ("train", train / "Tissue Images", train / "Annotations"),
             "TCGA-2Z-A9J9-01A-01-TS1": ("test", root / "MoNuSegTestData", root / "MoNuSegTestData")}
    for case, (split, images, xml_folder) in cases.items():
        mask = np.zeros((40, 50), np.uint8)
        ids = np.zeros((40, 50), np.int64)
        rectangles = []
        for number in range(1, 5):
            x0, y0 = int(rng.integers(0, 40)), int(rng.integers(0, 30))
            x1, y1 = x0 + int(rng.integers(2, 9)), y0 + int(rng.integers(2, 9))
            rectangles.append((x0, y0, x1, y1))
            mask[y0:y1 + 1, x0:x1 + 1] = 1  # filled polygon, boundary included (X = column, Y = row)
            ids[y0:y1 + 1, x0:x1 + 1] = number  # the k-th region is nucleus k; a later one overwrites
        save(images / f"{case}.tif", photo(rng, 40, 50, 3))
        xml_folder.mkdir(parents=True, exist_ok=True)
        (xml_folder / f"{case}.xml").write_text(_aperio_xml(rectangles))
        layout.masks[case], layout.splits[case], layout.instances[case] = mask[:40, :50], split, ids
    (root / "__MACOSX").mkdir()
    (root / "__MACOSX" / "._junk").write_bytes(b"\x00\x05")
    return layout


def kvasir_seg(root: Path) -> Layout:
    """Kvasir-SEG's layout; its split is not in the release but in the shipped manifest (see PINNED)."""
    rng, layout = _rng(8), Layout({"kvasir-seg.zip": ["Kvasir-SEG"]}, {})
    for i in range(6):
        case = f"cju{i:04d}kvasir{i:03d}"
        mask = blob(rng, 28, 36)
        save(root / "Kvasir-SEG" / "images" / f"{case}.jpg", photo(rng, 28, 36), quality=90)
        save(root / "Kvasir-SEG" / "masks" / f"{case}.jpg", mask * 255, quality=100)  # JPEG masks, as released
        layout.masks[case] = mask
        layout.splits[case] = "validation" if i < 2 else "train"
    (root / "Kvasir-SEG" / "kavsir_bboxes.json").write_text("{}")
    return layout


def drive(root: Path) -> Layout:
    """DRIVE's layout, with a round field of view; its split lives in a shipped manifest, so a test builds it
    with the package's manifests out of the way (not in MAKERS)."""
    rng, layout = _rng(9), Layout({"DRIVE.zip": ["DRIVE"]}, {})
    h, w = 30, 32
    rows, cols = np.mgrid[:h, :w]
    fov = (rows - h / 2) ** 2 + (cols - w / 2) ** 2 < (0.45 * h) ** 2
    for folder, kind, numbers in (("training", "training", (21, 22)), ("test", "test", (1, 2, 3))):
        for n in numbers:
            vessels = np.zeros((h, w), np.uint8)
            for _ in range(3):  # thin lines, some crossing: components and holes for the topology metrics
                r, c = int(rng.integers(2, h - 2)), int(rng.integers(2, w - 2))
                vessels[r, 2:w - 2] = 1 if rng.random() < 0.5 else vessels[r, 2:w - 2]
                vessels[2:h - 2, c] = 1
            base = root / "DRIVE" / folder
            save(base / "images" / f"{n:02d}_{kind}.tif", photo(rng, h, w))
            save(base / "1st_manual" / f"{n:02d}_manual1.gif", vessels * 255)
            save(base / "mask" / f"{n:02d}_{kind}_mask.gif", fov.astype(np.uint8) * 255)
            case = f"{n:02d}_{kind}"
            layout.masks[case], layout.roi[case] = vessels, fov
            layout.splits[case] = "train" if folder == "training" else "test"
    return layout


MAKERS: dict[str, Callable[[Path], Layout]] = {
    "isic2018": isic2018, "neopolyp": neopolyp, "camus": camus, "cvc-clinicdb": cvc_clinicdb,
    "busi": busi, "glas": glas, "monuseg": monuseg,
}

#: Releases whose split comes from a manifest shipped with the package: tests give them a manifest
#: of their own (``layout.splits`` is what it must say), since the tiny release is not the real one.
PINNED: dict[str, Callable[[Path], Layout]] = {"kvasir-seg": kvasir_seg}
