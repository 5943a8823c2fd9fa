"""The ``medseg-eval`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .datasets.errors import DatasetError
from .leaderboard.bundle import SubmissionError
from .metrics import CONVENTION_SPECS, DEFAULT_CONVENTION, EmptyPolicy
from .predictions import PredictionError
from .stats.pairing import PairingError


def _conventions(_: argparse.Namespace) -> int:
    rows = [("convention", "reproduces", "boundary", "HD95 percentile", "distances")]
    for spec in CONVENTION_SPECS.values():
        name = spec.name + (" (default)" if spec.name == DEFAULT_CONVENTION else "")
        rows.append((name, spec.reference, spec.boundary, spec.percentile, spec.distance_dtype))
    _print_table(rows)
    print(f"\nempty masks (default policy): {EmptyPolicy().as_dict()}")
    return 0


def _datasets_list(_: argparse.Namespace) -> int:
    from .datasets import canonical_dir, get_spec, list_datasets, shipped_manifest
    from .datasets.build import built_splits

    rows = [("name", "fg-classes", "splits", "manifest", "local copy")]
    for name in list_datasets():
        spec = get_spec(name)
        splits = " ".join(f"{s}={n}" for s, n in spec.splits.items())
        pinned = "pinned" if shipped_manifest(name) is not None else "unpinned"
        held = built_splits(canonical_dir(name))
        masks_only = [s for s, images in held.items() if not images]
        built = ("built" + (f" (masks only: {', '.join(masks_only)})" if masks_only else "")
                 + (f" ({', '.join(held)} of {len(spec.splits)} splits)" if 0 < len(held) < len(spec.splits) else "")
                 if held else "-")
        rows.append((name, str(spec.num_classes - 1), splits, pinned, built))
    _print_table(rows)
    return 0


def _datasets_info(args: argparse.Namespace) -> int:
    from .datasets import canonical_dir, get_spec, shipped_manifest

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
    return 0


def _datasets_build(args: argparse.Namespace) -> int:
    from .datasets import build

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


def _datasets_verify(args: argparse.Namespace) -> int:
    from .datasets import verify

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


def _datasets_push(args: argparse.Namespace) -> int:
    from .datasets import push

    files = push(args.name, args.repo_id, private=args.private, create_pr=args.create_pr, dry_run=args.dry_run)
    print(("would upload" if args.dry_run else "uploaded") + f" {len(files)} files to {args.repo_id}:")
    for f in files:
        print(f"  {f}")
    return 0


def _datasets_cards(args: argparse.Namespace) -> int:
    from .datasets.cards import write_cards

    for path in write_cards(Path(args.out)):
        print(path)
    return 0


def _summary_table(title: str, results: dict) -> None:
    """Print mean [95% CI] per metric (rows) and model (columns), pooled Dice/IoU on rows of their own."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("class")
    summaries = {name: res.summary() for name, res in results.items()}
    for name in summaries:
        table.add_column(name, justify="right")
    first = next(iter(summaries.values()))
    for metric, cls, aggregate in first.select("metric", "class", "aggregate").rows():
        label = metric if aggregate == "mean" else f"{metric} (pooled)"
        cells = []
        for summary in summaries.values():
            row = summary.filter((summary["metric"] == metric) & (summary["class"] == cls)
                                 & (summary["aggregate"] == aggregate)).row(0, named=True)
            cells.append("n/a" if row["mean"] is None else f"{row['mean']:.4g} [{row['ci_low']:.4g}, {row['ci_high']:.4g}]")
        table.add_row(label, cls, *cells)
    Console().print(table)


def _evaluate(args: argparse.Namespace) -> int:
    from ._atomic import check_replaceable
    from .evaluate import DEFAULT_METRICS, evaluate
    from .results import RESULT_FILES

    metrics = args.metrics.split(",") if args.metrics else list(DEFAULT_METRICS)
    if args.out:
        check_replaceable(args.out, RESULT_FILES)  # before scoring, not after
    res = evaluate(args.predictions, args.dataset, split=args.split, metrics=metrics, convention=args.convention,
                   device=args.device, resize=args.resize, progress=not args.quiet, download=not args.no_download)
    p = res.provenance
    _summary_table(f"{p['dataset']} / {p['split']}: {p['num_cases']} cases, convention {p['convention']} "
                   "(mean [95% bootstrap CI])", {Path(args.predictions).name or "predictions": res})
    if args.out:
        print(f"results written to {res.save(args.out)}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    results = run_demo(progress=not args.quiet)
    p = next(iter(results.values())).provenance
    _summary_table(f"medseg-eval demo: two classical segmenters on {p['dataset']} / {p['split']} ({p['num_cases']} "
                   "cases; mean [95% bootstrap CI])", results)
    from rich.console import Console
    from rich.table import Table

    bins = [0, 16, 64, 256, float("inf")]
    table = Table(title="lesion recall by lesion area (pixels), pooled over cases")
    table.add_column("area")
    table.add_column("lesions", justify="right")
    for name in results:
        table.add_column(name, justify="right")
    by_size = {name: res.small_lesion_recall(bins) for name, res in results.items()}
    first = next(iter(by_size.values()))
    for i, row in enumerate(first.iter_rows(named=True)):
        cells = [f"{by_size[name]['recall'][i]:.2f}" for name in results]
        table.add_row(f"[{row['bin_low']:g}, {row['bin_high']:g})", str(row["n_lesions"]), *cells)
    Console().print(table)
    print("Otsu alone keeps noise specks (low pooled Dice) but finds every lesion; the opening removes the specks "
          "and with them the smallest lesions.")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .stats import compare

    models = {}
    for item in args.results:
        name, _, path = item.rpartition("=") if "=" in item else ("", "", item)
        name = name or Path(path).name
        if name in models:
            raise PairingError(f"two results are named {name!r}; name them with NAME=PATH.")
        models[name] = path
    cmp = compare(models, args.metric or ["dice"], class_=args.class_, test=args.test or ["wilcoxon"],
                  correction=args.correction, zero_method=args.zero_method, alpha=args.alpha, missing=args.missing,
                  blocks=args.blocks, n_boot=args.n_boot, n_rank_boot=args.n_rank_boot, seed=args.seed)
    render = cmp.to_latex if args.format == "latex" else cmp.to_markdown
    print(render(statistic=args.statistic))
    for row in cmp.omnibus.iter_rows(named=True):
        print(f"\nFriedman ({row['metric']}, class {row['class']}): chi2 = {row['statistic']:.3f}, "
              f"p = {row['p_value']:.3g}; Iman-Davenport F = {row['iman_davenport']:.3f}, "
              f"p = {row['iman_davenport_p']:.3g}; Nemenyi critical difference {row['critical_difference']:.3f} "
              f"at alpha = {row['alpha']}.")
    if args.out:
        print(f"comparison written to {cmp.save(args.out)}")
    if args.plots:
        folder = Path(args.plots)
        folder.mkdir(parents=True, exist_ok=True)
        for metric, class_ in cmp.summary.select("metric", "class").unique(maintain_order=True).rows():
            for kind in ("cd", "blobs", "significance", "cases"):
                getattr(cmp, f"plot_{kind}")(metric, class_=class_, path=folder / f"{kind}-{metric}-{class_}.png")
        print(f"figures written to {folder}")
    return 0


def _add_compare(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser("compare", help="paired tests, rankings and a paper table for saved results")
    compare.add_argument("results", nargs="+", metavar="[NAME=]RESULTS",
                         help="folders written by evaluate --out (or Results.save); NAME defaults to the folder name")
    compare.add_argument("--metric", action="append", help="metric to compare (repeatable; default dice)")
    compare.add_argument("--class", dest="class_", help="one foreground class, or 'mean'; default: each class")
    compare.add_argument("--test", action="append", choices=["wilcoxon", "t", "permutation"],
                         help="paired test (repeatable; the first marks significance; default wilcoxon)")
    compare.add_argument("--correction", default="holm", choices=["holm", "fdr_bh", "bh", "bonferroni", "none"])
    compare.add_argument("--zero-method", default="wilcox", choices=["wilcox", "pratt", "zsplit"],
                         help="zero differences in the Wilcoxon test (default: dropped)")
    compare.add_argument("--alpha", type=float, default=0.05)
    compare.add_argument("--missing", default="error", choices=["error", "worst", "drop"],
                         help="cases some model lacks: an error (default), the worst value, or dropped (recorded)")
    compare.add_argument("--blocks", default="case", choices=["case", "dataset"],
                         help="rank within cases (default) or within datasets")
    compare.add_argument("--statistic", default="mean", choices=["mean", "median"], help="what the table shows")
    compare.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples of the CIs")
    compare.add_argument("--n-rank-boot", type=int, default=1000, help="bootstrap samples of the rank stability")
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--format", default="markdown", choices=["markdown", "latex"])
    compare.add_argument("--out", help="folder to save every frame, the settings and both tables in")
    compare.add_argument("--plots", help="folder to write the figures in (needs the 'plots' extra)")
    compare.set_defaults(run=_compare)


def _leaderboard_submit(args: argparse.Namespace) -> int:
    from .leaderboard import submit

    config = json.loads(Path(args.config).read_text()) if args.config else None
    path = submit(args.results, args.model, args.board_dir, predictions=args.predictions, badge=args.badge,
                  parameters=args.parameters, code_url=args.code_url, paper_url=args.paper_url,
                  training_protocol=args.protocol, seed=args.seed, contact=args.contact,
                  weights_license=args.weights_license, config=config, citation=args.citation,
                  predictions_withheld=args.withheld)
    print(f"bundle written to {path}; run `medseg-eval leaderboard build --board-dir {args.board_dir}` to rank it")
    return 0


def _leaderboard_build(args: argparse.Namespace) -> int:
    from .leaderboard import build

    for path in build(args.board_dir, args.dataset):
        print(f"wrote {path}")
    return 0


def _leaderboard_validate(args: argparse.Namespace) -> int:
    from .leaderboard.board import load_bundles

    board_dir = Path(args.board_dir)
    names = [args.dataset] if args.dataset else sorted(p.name for p in board_dir.iterdir() if p.is_dir())
    for name in names:
        for slug, sub in load_bundles(board_dir, name):
            how = {"reported": "reported", "unverified": "unverified: checked against its counts, not scored again"}
            print(f"ok  {name}/{slug} ({how.get(sub.meta['badge'], 'scored again from its predictions')})")
    return 0


def _leaderboard_push(args: argparse.Namespace) -> int:
    from .leaderboard.hub import push

    where = push(args.board_dir, args.dataset, args.repo_id, bundles=args.bundle, dry_run=args.dry_run)
    print(f"{'files of the pull request written to' if args.dry_run else 'pull request opened:'} {where}")
    return 0


def _leaderboard_seed(args: argparse.Namespace) -> int:
    from .leaderboard.founding_study import seed_reported

    print(f"wrote {len(seed_reported(args.board_dir))} reported bundles under {args.board_dir}")
    return 0


def _add_leaderboard(commands: argparse._SubParsersAction) -> None:
    board = commands.add_parser("leaderboard", help="submit results, validate bundles and build the boards")
    sub = board.add_subparsers(dest="leaderboard_command", required=True)
    submit = sub.add_parser("submit", help="add a bundle of saved results to the board of their dataset")
    submit.add_argument("results", help="folder written by evaluate --out (or Results.save)")
    submit.add_argument("--model", required=True, help="name on the board")
    submit.add_argument("--predictions", help="the predictions the results came from; the bundle carries their label "
                        "maps and every build scores them again (required unless --badge unverified)")
    submit.add_argument("--badge", default="verified", choices=["verified", "reproduced", "unverified"])
    submit.add_argument("--withheld", metavar="REASON", help="why the predictions cannot be published (with --badge "
                        "unverified: listed apart, never ranked)")
    submit.add_argument("--parameters", type=float, help="parameters, in millions")
    submit.add_argument("--code-url")
    submit.add_argument("--paper-url")
    submit.add_argument("--citation")
    submit.add_argument("--protocol", help="training protocol, in words")
    submit.add_argument("--seed", type=int, help="training seed")
    submit.add_argument("--contact")
    submit.add_argument("--weights-license")
    submit.add_argument("--config", help="JSON file of the training config (required for --badge reproduced)")
    for name, parser, run in (("build", sub.add_parser("build", help="rebuild README.md per dataset and index.html"),
                               _leaderboard_build),
                              ("validate", sub.add_parser("validate", help="check every bundle (exit 1 on the "
                                                          "first invalid one, named)"), _leaderboard_validate)):
        parser.add_argument("dataset", nargs="?", help="one dataset (default: all with bundles)")
        parser.set_defaults(run=run)
    push = sub.add_parser("push", help="open a pull request with bundles on a Hugging Face leaderboard repo")
    push.add_argument("dataset")
    push.add_argument("--repo-id", required=True, help="the leaderboard dataset repo, e.g. medseg-eval/leaderboards")
    push.add_argument("--bundle", action="append", help="bundle folder name to send (repeatable; default: all)")
    push.add_argument("--dry-run", metavar="DIR", help="write the exact files of the pull request to DIR instead")
    push.set_defaults(run=_leaderboard_push)
    seed = sub.add_parser("seed-reported", help="(maintainers) write the founding study's reported bundles")
    seed.set_defaults(run=_leaderboard_seed)
    for parser in (submit, sub.choices["build"], sub.choices["validate"], push, seed):
        parser.add_argument("--board-dir", default="leaderboards", help="boards folder (default: leaderboards)")
    submit.set_defaults(run=_leaderboard_submit)


def _train(args: argparse.Namespace) -> int:
    import polars as pl

    from .train import TrainConfig, train_fold

    overrides = {"model": args.model, "dataset": args.dataset, "fold": args.fold, "max_epochs": args.epochs,
                 "image_size": args.image_size, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                 "max_steps_per_epoch": args.max_steps_per_epoch, "max_time_s": args.max_time, "pretrained": args.pretrained or None,
                 "checkpoint": args.checkpoint, "deterministic": False if args.fast_kernels else None}
    config = (TrainConfig.from_file(args.config, **overrides) if args.config else
              TrainConfig(**{k: v for k, v in overrides.items() if v is not None}))
    run = train_fold(config, args.out, device=args.device, board_dir=args.board_dir, progress=not args.quiet,
                     command=" ".join(["medseg-eval", *sys.argv[1:]]), sweep_lr=args.sweep_lr)
    if run is None:  # not the first process of a torchrun launch
        return 0
    r = run.report
    print(f"{config.model} fold {config.fold}: {r.epochs_run} epochs, best validation IoU {r.best_iou:.4f} at epoch "
          f"{r.best_epoch}{' (stopped early)' if r.stopped_early else ''}{' (out of time)' if r.out_of_time else ''}; {r.wall_s:.0f} s on {r.device}")
    for row in run.test.summary().filter(pl.col("metric") == "dice").iter_rows(named=True):
        print(f"  test {row['class']} dice ({row['aggregate']}): {row['mean']:.4f} [{row['ci_low']:.4f}, {row['ci_high']:.4f}]")
    print(f"outputs in {run.out_dir}; bundle {run.bundle}")
    return 0


def _zero_shot(args: argparse.Namespace) -> int:
    from .leaderboard import submit
    from .train.generalist import zero_shot
    from .train.zoo import PretrainedUnavailableError

    try:
        res = zero_shot(args.model, args.dataset, checkpoint=args.checkpoint, jitter=args.jitter, seed=args.seed,
                        device=args.device, progress=not args.quiet)
    except PretrainedUnavailableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"results written to {res.save(args.out)}")
    if args.board_dir:
        bundle = submit(res, f"{args.model} (zero-shot, ground-truth boxes)", args.board_dir, badge="reproduced",
                        config={"generalist": res.provenance["generalist"],
                                "command": " ".join(["medseg-eval", *sys.argv[1:]])})
        print(f"bundle written to {bundle}")
    return 0


def _add_train(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="train a model of the founding study under its protocol, "
                                              "score it and write a reproduced bundle")
    train.add_argument("model", help="a model of medseg_eval.train.list_models(), or sam, medsam, sam2 (fine-tuned "
                                     "with ground-truth box prompts)")
    train.add_argument("--dataset", required=True)
    train.add_argument("--fold", type=int, default=0, help="held-out fold of the shipped 5-fold split (0-4)")
    train.add_argument("--epochs", type=int, help="maximum epochs (default 150)")
    train.add_argument("--image-size", type=int, help="training size (default 512)")
    train.add_argument("--batch-size", type=int, help="default 8")
    train.add_argument("--lr", type=float, help="one of the study's grid 1e-4, 5e-5, 1e-5 (default 1e-4)")
    train.add_argument("--sweep-lr", action="store_true",
                       help="train once per rate of the grid and keep the best on the held-out fold")
    train.add_argument("--seed", type=int, help="default 42")
    train.add_argument("--max-steps-per-epoch", type=int, help="cap the iterations per epoch (reduced protocols)")
    train.add_argument("--max-time", type=float, metavar="SECONDS",
                       help="stop training after the epoch in which this wall-clock budget runs out (reduced protocols)")
    train.add_argument("--pretrained", action="store_true", help="ImageNet weights (needs network)")
    train.add_argument("--checkpoint", help="sam, medsam, sam2: the weights to fine-tune, a Hub id or folder "
                                            "(default: the model's reference checkpoint)")
    train.add_argument("--fast-kernels", action="store_true",
                       help="let cuDNN pick the fastest kernels (not bitwise repeatable; recorded)")
    train.add_argument("--config", help="JSON or YAML config; the options above override it")
    train.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1")
    train.add_argument("--board-dir", help="where the bundle goes (default OUT/board)")
    train.add_argument("--out", required=True, help="folder for checkpoints, predictions, results (a rerun resumes)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(run=_train)
    zero = commands.add_parser("zero-shot", help="SAM, MedSAM or SAM 2 with ground-truth boxes (oracle prompts)")
    zero.add_argument("model", choices=["sam", "medsam", "sam2"])
    zero.add_argument("--dataset", required=True)
    zero.add_argument("--checkpoint", help="a Hub id or folder (default: the model's reference checkpoint)")
    zero.add_argument("--jitter", type=int, default=0, help="move each box side by up to this many pixels")
    zero.add_argument("--seed", type=int, default=42)
    zero.add_argument("--device", default="auto")
    zero.add_argument("--out", required=True, help="folder for the results")
    zero.add_argument("--board-dir", help="also add a bundle (marked as oracle prompts) to this board")
    zero.add_argument("--quiet", action="store_true")
    zero.set_defaults(run=_zero_shot)


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _add_datasets(commands: argparse._SubParsersAction) -> None:
    datasets = commands.add_parser("datasets", help="list, build, verify and publish the canonical datasets")
    sub = datasets.add_subparsers(dest="datasets_command", required=True)
    sub.add_parser("list", help="one registered dataset per line").set_defaults(run=_datasets_list)
    info = sub.add_parser("info", help="classes, splits, sources and licence of one dataset")
    info.add_argument("name")
    info.set_defaults(run=_datasets_info)
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
    build.set_defaults(run=_datasets_build)
    verify = sub.add_parser("verify", help="re-hash every mask against the manifest (exit 0 only when all match)")
    verify.add_argument("name")
    verify.add_argument("--quiet", action="store_true", help="no progress bars")
    verify.set_defaults(run=_datasets_verify)
    push = sub.add_parser("push", help="upload the verified canonical copy to a Hugging Face dataset repo")
    push.add_argument("name")
    push.add_argument("--repo-id", required=True, help="e.g. medseg-eval/kvasir-seg")
    push.add_argument("--private", action="store_true")
    push.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to main")
    push.add_argument("--dry-run", action="store_true", help="list the files without uploading")
    push.set_defaults(run=_datasets_push)
    cards = sub.add_parser("cards", help="(maintainers) write every dataset card from the registry")
    cards.add_argument("--out", default="dataset_cards", help="folder to write <name>.md into (default: dataset_cards)")
    cards.set_defaults(run=_datasets_cards)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medseg-eval", description="Reproducible evaluation of 2D medical image segmentation."
    )
    parser.add_argument("--version", action="version", version=f"medseg-eval {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    conventions = commands.add_parser("conventions", help="list the metric conventions and what each one does")
    conventions.set_defaults(run=_conventions)
    _add_datasets(commands)
    evaluate = commands.add_parser("evaluate", help="score predictions against a dataset's canonical ground truth")
    evaluate.add_argument("predictions", help="folder or zip of prediction files named by case id")
    evaluate.add_argument("--dataset", required=True, help="a registered dataset (medseg-eval datasets list)")
    evaluate.add_argument("--split", help="default: the dataset's test split")
    evaluate.add_argument("--metrics", help="comma-separated, e.g. dice,iou,hd95,assd,nsd (the default)")
    evaluate.add_argument("--convention", default=DEFAULT_CONVENTION, choices=list(CONVENTION_SPECS))
    evaluate.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda")
    evaluate.add_argument("--resize", choices=["nearest"], help="resize predictions of another size (recorded)")
    evaluate.add_argument("--out", help="folder to save the results in (parquet + provenance JSON)")
    evaluate.add_argument("--no-download", action="store_true",
                          help="never fetch the ground truth on first use (also MEDSEG_EVAL_OFFLINE=1)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars")
    evaluate.set_defaults(run=_evaluate)
    _add_compare(commands)
    _add_leaderboard(commands)
    _add_train(commands)
    _add_reports(commands)
    demo = commands.add_parser("demo", help="offline: two classical segmenters on a generated dataset, compared")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(run=_demo)
    return parser


def _add_reports(commands: argparse._SubParsersAction) -> None:
    """``cv`` and ``report``: their logic is :mod:`medseg_eval.stats.report`'s."""
    from .errors import MedsegEvalError
    from .stats.report import cv_command, report_command

    def handle(command):  # errors of the package are the user's to fix: a message, exit 2
        def run(args: argparse.Namespace) -> int:
            try:
                print(command(args))
            except MedsegEvalError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            return 0
        return run

    formats = ["markdown", "latex", "html"]
    cv = commands.add_parser("cv", help="cross-validation of `train --fold K` run folders: over folds, pooled, CIs")
    cv.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders written by medseg-eval train --out")
    cv.add_argument("--out", help="folder to save the cross-validation in (parquet + JSON)")
    report_ = commands.add_parser("report", help="methods paragraph, tables and BibTeX of saved results, "
                                                 "a cross-validation or a comparison")
    report_.add_argument("path", metavar="RESULTS_OR_COMPARISON", help="a folder written by evaluate/cv/compare --out")
    report_.add_argument("--out", help="file to write the report to")
    for parser in (cv, report_):
        parser.add_argument("--format", default="markdown", choices=formats)
        parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples of the CIs")
        parser.add_argument("--seed", type=int, default=0)
    cv.set_defaults(run=handle(lambda a: cv_command(a.runs, fmt=a.format, out=a.out, n_boot=a.n_boot, seed=a.seed)))
    report_.set_defaults(run=handle(lambda a: report_command(a.path, fmt=a.format, out=a.out, n_boot=a.n_boot,
                                                             seed=a.seed)))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medseg-eval`` console script.

    Examples
    --------
    >>> main(["conventions"])  # doctest: +ELLIPSIS
    convention...
    surface-distance (default)  DeepMind surface-distance...
    0
    """
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except SubmissionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (DatasetError, PredictionError, PairingError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
