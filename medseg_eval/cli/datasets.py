"""``medseg-eval datasets list|info|build|verify|push|cards``: the canonical datasets."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ._common import print_table


def add_parsers(commands: argparse._SubParsersAction) -> None:
    datasets = commands.add_parser("datasets", help="list, build, verify and publish the canonical datasets")
    sub = datasets.add_subparsers(dest="datasets_command", required=True)
    sub.add_parser("list", help="one registered dataset per line").set_defaults(run=run_list)
    info = sub.add_parser("info", help="classes, splits, sources, licence and the literature's metrics of one dataset")
    info.add_argument("name")
    info.set_defaults(run=run_info)
    build = sub.add_parser("build", help="build the canonical copy from the official release into $MEDSEG_EVAL_HOME")
    build.add_argument("name")
    build.add_argument("--source", action="append", metavar="PATH_OR_URL",
                       help="folder holding the release, its archive, or a URL (repeatable); default: the official files "
                            "holding the splits asked for ($MEDSEG_EVAL_MIRROR/<file> when set)")
    build.add_argument("--split", action="append", metavar="S",
                       help="build this split only (repeatable; default: all); splits built before are kept")
    build.add_argument("--masks-only", action="store_true",
                       help="fetch and store the masks only (enough to score predictions; images stay null)")
    build.add_argument("--sha256", action="append", metavar="[ARCHIVE=]HASH",
                       help="expected sha256 of the given archive (or ARCHIVE=HASH per archive, repeatable)")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.set_defaults(run=run_build)
    verify = sub.add_parser("verify", help="re-hash every mask against the manifest (exit 0 only when all match)")
    verify.add_argument("name")
    verify.add_argument("--quiet", action="store_true", help="no progress bars")
    verify.set_defaults(run=run_verify)
    push = sub.add_parser("push", help="upload the verified canonical copy to a Hugging Face dataset repo")
    push.add_argument("name")
    push.add_argument("--repo-id", required=True, help="e.g. medseg-eval/kvasir-seg")
    push.add_argument("--private", action="store_true")
    push.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to main")
    push.add_argument("--dry-run", action="store_true", help="list the files without uploading")
    push.set_defaults(run=run_push)
    cards = sub.add_parser("cards", help="(maintainers) write every dataset card from the registry")
    cards.add_argument("--out", default="dataset_cards", help="folder to write <name>.md into (default: dataset_cards)")
    cards.set_defaults(run=run_cards)


def run_list(_: argparse.Namespace) -> int:
    from ..datasets import get_spec, list_datasets
    from ..datasets.layout import built_splits, canonical_dir, shipped_manifest_file

    rows = [("name", "fg-classes", "splits", "manifest", "local copy")]
    for name in list_datasets():
        spec = get_spec(name)
        splits = " ".join(f"{s}={n}" for s, n in spec.splits.items())
        pinned = "pinned" if shipped_manifest_file(name) is not None else "unpinned"
        held = built_splits(canonical_dir(name))
        masks_only = [s for s, images in held.items() if not images]
        built = ("built" + (f" (masks only: {', '.join(masks_only)})" if masks_only else "")
                 + (f" ({', '.join(held)} of {len(spec.splits)} splits)" if 0 < len(held) < len(spec.splits) else "")
                 if held else "-")
        rows.append((name, str(spec.num_classes - 1), splits, pinned, built))
    print_table(rows)
    return 0


def run_info(args: argparse.Namespace) -> int:
    from ..datasets import canonical_dir, get_spec, shipped_manifest

    spec = get_spec(args.name)
    print(f"{spec.name}: {spec.title}")
    print(f"  classes:   {', '.join(f'{i}={c}' for i, c in enumerate(spec.classes))}")
    print(f"  splits:    {', '.join(f'{s}={n}' for s, n in spec.splits.items())} (scored: {spec.test_split})")
    print(f"  rule:      {spec.split_rule}")
    print(f"  spacing:   {spec.spacing_unit}; resolution: {spec.resolution}")
    if spec.roi:
        print(f"  roi:       {spec.roi}")
    print(f"  license:   {spec.license}")
    print(f"  homepage:  {spec.homepage}")
    for source in spec.sources:
        print(f"  source:    {source.url} sha256={source.sha256 or 'unknown (not pinned)'}")
    if spec.manual_download:
        print(f"  download:  by hand: {spec.manual_download}")
    print(f"  manifest:  {'shipped (pinned)' if shipped_manifest(spec.name) is not None else 'none shipped yet (unpinned)'}")
    print(f"  hub:       {spec.hub_repo or 'not published'}{'@' + spec.hub_revision if spec.hub_revision else ''}")
    print(f"  local:     {canonical_dir(spec.name)}{'' if (canonical_dir(spec.name) / 'data').is_dir() else ' (not built)'}")
    # The literature's metric set, where the spec names it (specs written before it existed have none).
    literature = getattr(spec, "literature_metrics", ()) or ()
    if literature:
        print(f"  metrics:   {', '.join(literature)} (as the literature reports them)")
    for reference in getattr(spec, "metric_references", ()) or ():
        print(f"  reference: {reference}")
    return 0


def run_build(args: argparse.Namespace) -> int:
    from ..datasets import build

    hashes = dict(h.split("=", 1) if "=" in h else (None, h) for h in args.sha256 or [])
    sha256 = hashes.pop(None) if list(hashes) == [None] else hashes or None
    report = build(args.name, args.source or None, splits=args.split, images=not args.masks_only, sha256=sha256,
                   progress=not args.quiet)
    counts = ", ".join(f"{s}={n}" for s, n in report.counts.items())
    state = "checked against the shipped manifest" if report.pinned else "UNPINNED: no shipped manifest to check against"
    print(f"{report.dataset}: {counts} -> {report.folder} ({state}; manifest sha256 {report.manifest_sha256})")
    if report.masks_only:
        print(f"  masks only (no images) for {', '.join(report.masks_only)}: enough to score; "
              f"`medseg-eval datasets build {report.dataset}` adds the images")
    for source in report.sources:
        if source.get("sha256_pinned") is False:
            print(f"  archive {source['archive']} is not pinned by the registry; its sha256 is {source['sha256']}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from ..datasets import verify

    report = verify(args.name, progress=not args.quiet)
    for label, ids in (("missing", report.missing), ("extra", report.extra),
                       ("mask differs", report.mismatched), ("in the wrong split", report.misplaced)):
        for case_id in ids:
            print(f"{label}: {case_id}")
    if not report.ok:
        print(f"{report.dataset}: FAILED, {report.checked} masks checked", file=sys.stderr)
        return 1
    if not report.pinned:
        print(f"{report.dataset}: {report.checked} masks match the build's own manifest, but no manifest ships for "
              "this dataset: nothing pinned to compare with.", file=sys.stderr)
        return 3
    print(f"{report.dataset}: OK, {report.checked} masks match the shipped manifest")
    return 0


def run_push(args: argparse.Namespace) -> int:
    from ..datasets import push

    files = push(args.name, args.repo_id, private=args.private, create_pr=args.create_pr, dry_run=args.dry_run)
    print(("would upload" if args.dry_run else "uploaded") + f" {len(files)} files to {args.repo_id}:")
    for f in files:
        print(f"  {f}")
    return 0


def run_cards(args: argparse.Namespace) -> int:
    from ..datasets.cards import write_cards

    for path in write_cards(Path(args.out)):
        print(path)
    return 0
