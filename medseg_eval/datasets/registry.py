"""The dataset registry: one typed :class:`DatasetSpec` per dataset, defined in ``catalog/``."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .errors import UnknownDatasetError, UnknownSplitError

if TYPE_CHECKING:
    from .canonical import CaseSource


@dataclass(frozen=True)
class Selection:
    """What a build reads of the release: these splits, with their images or masks only.

    Builders receive it so that they neither look for nor read files that were not fetched
    (ISIC 2018's test masks come without any image archive).

    Examples
    --------
    >>> want = Selection(frozenset({"test"}), images=False)
    >>> want.image(Path("a.jpg")) is None, "test" in want.splits
    (True, True)
    """

    splits: frozenset[str]
    images: bool = True

    def image(self, path: Path) -> Path | None:
        """``path`` when images are read, else ``None`` (the loaders then store no image)."""
        return path if self.images else None


Builder = Callable[[Sequence[Path], Selection], Iterator["CaseSource"]]

#: The metric set of a dataset whose literature has no set of its own (also ``evaluate``'s default
#: for the caller's own ground truth): overlap, robust boundary distances and lesion-wise recall.
STANDARD_METRICS: tuple[str, ...] = ("dice", "iou", "hd95", "assd", "nsd", "lesion_recall")
#: Where the standard set's metrics are defined.
STANDARD_REFERENCES: tuple[str, ...] = (
    "Dice (1945), Measures of the amount of ecologic association between species, Ecology 26(3):297-302: Dice.",
    "Jaccard (1912), The distribution of the flora in the alpine zone, New Phytologist 11(2):37-50: IoU.",
    ("Huttenlocher, Klanderman & Rucklidge (1993), Comparing images using the Hausdorff distance, IEEE TPAMI "
    "15(9):850-863: HD95 (its 95th-percentile form), ASSD."),
    ("Nikolov et al. (2021), Clinically applicable segmentation of head and neck anatomy for radiotherapy, J Med "
    "Internet Res 23(7):e26151: NSD."),
    ("Maier-Hein, Reinke et al. (2024), Metrics reloaded: recommendations for image analysis validation, Nature "
    "Methods 21:195-212: lesion-wise (object) recall."),
)


@dataclass(frozen=True)
class SourceFile:
    """One file of the official release, and what it holds.

    ``sha256=None`` means *unknown*: nobody has pinned it yet. A download of such a file is kept,
    its hash is reported, and the build says that the archive is unpinned; nothing is invented.
    ``masks`` and ``images`` name the splits whose masks, and whose images, the file holds: a
    build of some splits, or of masks only, fetches just the files that hold them.
    """

    filename: str
    url: str
    sha256: str | None = None
    note: str = ""
    masks: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    #: The build reads the file only once unpacked by hand (a RAR, zips nested in a zip).
    unpack_first: bool = False


@dataclass(frozen=True)
class DatasetSpec:
    """Everything a user or a builder needs to know about one dataset.

    Attributes
    ----------
    name
        Registry key, lower case with dashes (``"kvasir-seg"``).
    classes
        Class names by label id; ``classes[0]`` is the background.
    splits
        Expected number of cases per split (the shipped manifest is the authority on which case goes where).
    test_split
        The split that results and leaderboards score by default.
    split_rule
        How the splits and the cross-validation folds were made, in words (also in the dataset card).
    spacing_unit
        ``"mm"`` when the release defines a physical pixel size (per case, in the ``spacing`` column),
        else ``"pixel"`` (spacing 1).
    roi
        What the ``roi`` column holds (e.g. DRIVE's field of view), or ``None`` when there is none.
    manual_download
        Instructions when the release needs a registration or licence click-through; ``None`` when
        ``sources`` can be downloaded as they are.
    hub_repo, hub_revision
        The Hugging Face dataset repo mirroring the canonical form and its pinned commit; ``None``
        while unpublished.
    source_folder
        The folder the release unpacks to (what ``--source`` must hold).
    holdout
        For releases without an official split: the fraction of groups (patients, sequences,
        else images) drawn into each held-out split; the rest is ``"train"``.
    file_key
        A regular expression whose first group is the part of a case id that prediction files
        keep when named after the release's own masks (DRIVE's ``01_manual2.gif`` for case
        ``01_test``); ``None`` when file names are the case ids, possibly with a ``_mask``-like suffix.
    folds, seed
        Cross-validation folds over the ``"train"`` split's groups, drawn with this seed (the
        founding study used 5 folds and seed 42).
    builder
        Lists the cases (:class:`~medseg_eval.datasets.canonical.CaseSource` s) found in the release's
        folders, reading only what the :class:`Selection` asks for.
    instances
        What the ``instances`` column holds (one id per object, e.g. GlaS's glands), or ``None`` when
        the canonical copy keeps no instance ids. Instance metrics are scored from it.
    literature_metrics
        The metrics the dataset's literature reports, names as :func:`medseg_eval.evaluate` takes them
        (its default for the dataset); :data:`STANDARD_METRICS` where the literature has no set of its own.
    metric_references
        Where those metrics, as the dataset's papers compute them, are defined (one reference each).
    """

    name: str
    title: str
    description: str
    modality: str
    classes: tuple[str, ...]
    splits: Mapping[str, int]
    test_split: str
    split_rule: str
    resolution: str
    license: str
    homepage: str
    citation: str
    sources: tuple[SourceFile, ...]
    source_folder: str
    builder: Builder = field(repr=False)
    spacing_unit: Literal["pixel", "mm"] = "pixel"
    roi: str | None = None
    instances: str | None = None
    literature_metrics: tuple[str, ...] = STANDARD_METRICS
    metric_references: tuple[str, ...] = STANDARD_REFERENCES
    manual_download: str | None = None
    known_issues: tuple[str, ...] = ()
    hub_repo: str | None = None
    hub_revision: str | None = None
    holdout: Mapping[str, float] = field(default_factory=dict)
    file_key: str | None = None
    folds: int = 5
    seed: int = 42
    # Bumped whenever the builder's output changes, so that caches and results name what made them.
    builder_version: int = 1

    @property
    def generated(self) -> bool:
        """Made by its builder, from nothing downloaded (``synthetic-lesions``)."""
        return not self.sources

    def sources_for(self, splits: Sequence[str], *, images: bool = True) -> tuple[SourceFile, ...]:
        """The release's files that hold the masks of ``splits`` (and their images when ``images``).

        Examples
        --------
        >>> [s.filename for s in get_spec("isic2018").sources_for(["test"], images=False)]
        ['ISIC2018_Task1_Test_GroundTruth.zip']
        """
        wanted = set(splits)
        return tuple(s for s in self.sources if wanted & set(s.masks) or images and wanted & set(s.images))

    @property
    def num_classes(self) -> int:
        """Number of label values, background included."""
        return len(self.classes)

    def match_file(self, case_ids: Sequence[str]) -> Callable[[str], str | None]:
        """A function from a prediction file's stem to one of ``case_ids`` by :attr:`file_key` (else ``None``)."""
        if self.file_key is None:
            return lambda stem: None
        pattern = re.compile(self.file_key)
        keys: dict[str, str] = {}
        for case_id in case_ids:
            found = pattern.match(case_id)
            if found:
                keys[found[1]] = case_id

        def match(stem: str) -> str | None:
            found = pattern.match(stem)
            return keys.get(found[1]) if found else None

        return match

    def check_split(self, split: str) -> str:
        """Return ``split`` if the dataset has it, else raise :class:`UnknownSplitError`."""
        if split not in self.splits:
            raise UnknownSplitError(
                f"{self.name} has no split {split!r}; its splits are {', '.join(self.splits)} "
                f"(results are scored on {self.test_split!r} by default)."
            )
        return split


_REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to the registry (each catalog module calls this once)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"dataset {spec.name!r} is registered twice")
    if not spec.literature_metrics or not spec.metric_references:
        raise ValueError(f"{spec.name}: literature_metrics and metric_references must name at least one metric and source")
    if spec.test_split not in spec.splits:
        raise ValueError(f"{spec.name}: test split {spec.test_split!r} is not one of {list(spec.splits)}")
    for source in spec.sources:
        unknown = set(source.masks + source.images) - set(spec.splits)
        if unknown:
            raise ValueError(f"{spec.name}: {source.filename} holds unknown splits {sorted(unknown)}")
    for kind in ("masks", "images"):
        uncovered = [s for s in spec.splits if spec.sources and not any(s in getattr(f, kind) for f in spec.sources)]
        if uncovered:
            raise ValueError(f"{spec.name}: no source file declares the {kind} of split(s) {uncovered}")
    _REGISTRY[spec.name] = spec
    return spec


def _load_catalog() -> None:
    from . import catalog  # noqa: F401  (importing it registers every dataset)


def list_datasets() -> list[str]:
    """Names of every registered dataset, sorted.

    Examples
    --------
    >>> from medseg_eval import list_datasets
    >>> "kvasir-seg" in list_datasets() and "drive" in list_datasets()
    True
    """
    _load_catalog()
    return sorted(_REGISTRY)


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` registered as ``name`` (case-insensitive, ``_`` or ``-``).

    Raises
    ------
    UnknownDatasetError
        With the closest registered names as suggestions.

    Examples
    --------
    >>> get_spec("Kvasir_SEG").classes
    ('background', 'polyp')
    """
    _load_catalog()
    key = name.strip().lower().replace("_", "-")
    if key in _REGISTRY:
        return _REGISTRY[key]
    close = difflib.get_close_matches(key, _REGISTRY, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownDatasetError(
        f"unknown dataset {name!r}.{hint} Registered: {', '.join(sorted(_REGISTRY))} "
        "(`medseg-eval datasets list`)."
    )
