"""Dataset cards: the Hugging Face README (YAML front matter + prose) of each dataset, from its spec.

One renderer serves both ``dataset_cards/<name>.md`` in the repository (split counts from the spec)
and the README.md of a built canonical folder (counts as built), so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from .registry import DatasetSpec, SourceFile

# Hugging Face licence ids for the licences the catalog uses; anything else is "other" with a name.
_HF_LICENSES = {"CC0-1.0": "cc0-1.0", "CC-BY-4.0": "cc-by-4.0", "CC-BY-NC-SA-4.0": "cc-by-nc-sa-4.0"}


def _size_category(n: int) -> str:
    return "n<1K" if n < 1000 else "1K<n<10K" if n < 10_000 else "10K<n<100K"


def front_matter(spec: DatasetSpec, counts: Mapping[str, int]) -> dict:
    """The card's YAML metadata: licence, task, configs (one per split's shards), features, split sizes."""
    from .canonical import features

    license_id = _HF_LICENSES.get(spec.license)
    meta: dict = {"pretty_name": spec.title, "license": license_id or "other"}
    if license_id is None:
        meta["license_name"] = f"{spec.name}-terms"  # the Hub wants an id here; the terms are in the prose
        meta["license_link"] = spec.homepage
    meta.update({
        "task_categories": ["image-segmentation"],
        "tags": ["medical", spec.modality, "medseg-eval"],
        "size_categories": [_size_category(sum(counts.values()))],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": s, "path": f"data/{s}-*"} for s in spec.splits]}],
        "dataset_info": {
            "features": features(spec.roi is not None, spec.instances is not None)._to_yaml_list(),
            "splits": [{"name": s, "num_examples": int(counts.get(s, 0))} for s in spec.splits],
        },
    })
    return meta


def render_card(spec: DatasetSpec, counts: Mapping[str, int] | None = None, masks_only: Sequence[str] = ()) -> str:
    """The dataset card of ``spec`` as Markdown with YAML front matter.

    ``masks_only`` names the splits of a built copy stored without their images.

    Examples
    --------
    >>> from medseg_eval.datasets import get_spec
    >>> card = render_card(get_spec("drive"))
    >>> card.splitlines()[0], "## Splits" in card
    ('---', True)
    """
    import yaml

    counts = dict(spec.splits if counts is None else counts)
    lines = ["---", yaml.safe_dump(front_matter(spec, counts), sort_keys=False, allow_unicode=True).rstrip(), "---", ""]
    lines += [f"# {spec.title}", "", spec.description.strip(), ""]
    lines += [("Canonical copy built by medseg_eval from the official "
              f"release, builder version {spec.builder_version}. Load it with "
              f"`medseg_eval.load_dataset(\"{spec.name}\", split=\"{spec.test_split}\")` or "
              "`datasets.load_dataset(<this folder or repo>)`."), ""]
    lines += ["## Classes", "", "| label | class |", "|---|---|"]
    lines += [f"| {i} | {c} |" for i, c in enumerate(spec.classes)]
    lines += ["", f"Resolution: {spec.resolution}. Spacing: "
              + ("physical pixel size in mm per case, column `spacing` = (sy, sx)." if spec.spacing_unit == "mm"
                 else "none defined by the release; distances are in pixels (`spacing` = (1, 1)).")]
    if spec.roi:
        lines += ["", f"Region of interest (column `roi`, 1 inside): {spec.roi} Every metric is restricted to it."]
    if spec.instances:
        lines += ["", (f"Instances (column `instances`, PNG, 16-bit where an id exceeds 255): {spec.instances} "
                       "0 is background; the foreground is exactly the mask's. Instance metrics are scored from it.")]
    lines += ["", "## Metrics", "", ("What the dataset's literature reports, and what `medseg_eval.evaluate` scores "
                                    f"on it by default: {', '.join(f'`{m}`' for m in spec.literature_metrics)}."), ""]
    lines += [f"- {reference}" for reference in spec.metric_references]
    lines += ["", "## Splits", "", "| split | cases |", "|---|---|"]
    lines += [f"| {s}{' (scored by default)' if s == spec.test_split else ''} | {counts.get(s, 0)} |" for s in spec.splits]
    if masks_only:
        lines += ["", (f"Masks only: the split(s) {', '.join(masks_only)} of this copy hold no images (column `image` is "
                       f"null): enough to score predictions. `medseg-eval datasets build {spec.name}` adds them.")]
    lines += ["", spec.split_rule.strip(), "",
              (f"The manifest (`manifest.csv`: case_id, split, fold, mask_sha256{', instances_sha256' if spec.instances else ''}) fixes every case's split and "
              f"{spec.folds}-fold cross-validation fold (seed {spec.seed}; held-out cases have no fold). "
              "`mask_sha256` is the sha256 of `b\"<H> <W>\\n\"` followed by the decoded label map as uint8, row-major; "
              + ("`instances_sha256` that of `b\"<H> <W> uint16\\n\"` followed by the instance ids as little-endian "
                 "uint16, row-major; " if spec.instances else "")
              + f"`medseg-eval datasets verify {spec.name}` checks a copy against it."), ""]
    lines += ["## Source", "", f"Homepage: {spec.homepage}", "", "| file | holds | sha256 |", "|---|---|---|"]
    lines += [f"| [{s.filename}]({s.url}) | {_holds(s)} | {s.sha256 or 'unknown (not pinned)'} |" for s in spec.sources]
    notes = [s for s in spec.sources if s.note]
    if notes:
        lines += [""] + [f"- {s.filename}: {s.note}" for s in notes]
    if spec.manual_download:
        lines += ["", f"Manual download: {spec.manual_download}"]
    if spec.known_issues:
        lines += ["", "## Known issues", ""] + [f"- {issue}" for issue in spec.known_issues]
    lines += ["", "## License", "", f"{spec.license}. See {spec.homepage}. The canonical copy carries the release's terms.", "",
              "## Citation", "", "```bibtex", spec.citation.strip(), "```", ""]
    return "\n".join(lines)


def _holds(source: SourceFile) -> str:
    """``masks: test; images: test`` — what a file of the release holds (a masks-only build fetches the first)."""
    return "; ".join(f"{kind}: {', '.join(splits)}" for kind, splits in (("masks", source.masks), ("images", source.images))
                     if splits)


def write_cards(folder: Path) -> list[Path]:
    """Write ``<name>.md`` for every registered dataset into ``folder`` (atomically, one file each)."""
    from .._atomic import atomic_write_text
    from .registry import get_spec, list_datasets

    return [atomic_write_text(folder / f"{name}.md", render_card(get_spec(name))) for name in list_datasets()]

