"""``medseg-eval evaluate``: score predictions against a dataset's ground truth or one's own.

Every option of :func:`medseg_eval.evaluate` has its flag; a flag left out leaves the function's own
default in force (the help states it), so the command and the function cannot drift apart.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import check_device, positive_int, summary_table
from ._names import CONVENTIONS, DEFAULT_CONVENTION, DEFAULT_METRICS, EMPTY_PRESETS, EVALUATE_DEFAULTS


def add_parsers(commands: argparse._SubParsersAction) -> None:
    d = EVALUATE_DEFAULTS
    evaluate = commands.add_parser(
        "evaluate", help="score predictions against a dataset's canonical ground truth, or your own (--targets)",
        description="Score predictions against a registered dataset's canonical ground truth (--dataset), or against "
                    "your own ground truth (--targets, with --spacing and --num-classes). Options left out take "
                    "medseg_eval.evaluate()'s defaults.")
    evaluate.add_argument("predictions", help="folder or zip of prediction files named by case id (PNG, GIF, BMP, "
                                              "TIFF, NPY, NPZ, NIfTI), or one .npy/.npz array")
    truth = evaluate.add_mutually_exclusive_group(required=True)
    truth.add_argument("--dataset", help="a registered dataset (medseg-eval datasets list)")
    truth.add_argument("--targets", metavar="GT", help="your own ground truth: a folder or zip of label maps named by "
                                                      "case id, in any format the predictions accept")
    own = evaluate.add_argument_group("your own ground truth (with --targets)")
    own.add_argument("--spacing", type=_spacing, metavar="SY,SX",
                     help="pixel size (sy, sx), e.g. 0.5,0.5, or a JSON file {case_id: [sy, sx]} holding every case; "
                          "default: 1 pixel")
    own.add_argument("--num-classes", type=positive_int, metavar="N",
                     help="classes with background (default: the largest label found + 1)")
    data = evaluate.add_argument_group("a registered dataset (with --dataset)")
    data.add_argument("--split", help="default: the dataset's test split")
    data.add_argument("--no-download", action="store_true",
                      help="never fetch the ground truth on first use (also MEDSEG_EVAL_OFFLINE=1)")
    data.add_argument("--no-verify", action="store_true",
                      help="skip checking each ground-truth mask against the manifest's sha256 (recorded)")
    scoring = evaluate.add_argument_group("metrics")
    scoring.add_argument("--metrics", type=_names, metavar="M1,M2,...",
                         help="comma-separated names of medseg_eval.metrics (default: the dataset's literature set, "
                              "as medseg-eval datasets info NAME lists it; with --targets: "
                              f"{','.join(DEFAULT_METRICS)})")
    scoring.add_argument("--instances", action="store_true",
                         help="the predictions are instance label maps (each object its own id), scored against the "
                              "dataset's instances (GlaS, MoNuSeg); default: semantic label maps")
    scoring.add_argument("--convention", choices=CONVENTIONS,
                         help=f"the reference implementation distances reproduce (default: {DEFAULT_CONVENTION})")
    scoring.add_argument("--empty", choices=EMPTY_PRESETS,
                         help="what metrics return for empty masks: medseg_eval (default: both empty is best, one "
                              "empty worst, distances the image diagonal) or a library's own preset")
    scoring.add_argument("--percentile", type=float, metavar="P",
                         help=f"percentile of the robust Hausdorff distance (default: {d['percentile']:g}, HD95)")
    scoring.add_argument("--tolerance", type=float, metavar="T",
                         help=f"NSD and boundary F1 tolerance in spacing units (default: {d['tolerance']:g})")
    lesions = evaluate.add_argument_group("lesions (lesion_recall and the other lesion metrics)")
    lesions.add_argument("--lesion-connectivity", type=int, choices=[4, 8],
                         help="connectivity of a lesion's pixels (default: 8)")
    lesions.add_argument("--lesion-criterion", choices=["overlap", "iou"],
                         help="a lesion is detected by covering a fraction of it (overlap, the default) or by IoU")
    lesions.add_argument("--lesion-min-overlap", type=float, metavar="F",
                         help="with criterion overlap: the fraction of the lesion covered (default: 0, any overlap)")
    lesions.add_argument("--lesion-iou-threshold", type=float, metavar="F",
                         help="with criterion iou: the IoU at least (default: 0.5)")
    run = evaluate.add_argument_group("running")
    run.add_argument("--device", help=f"{d['device']} (the default: CUDA when available), cpu, cuda, cuda:1; "
                                      "checked before any work")
    run.add_argument("--batch-size", type=positive_int, metavar="N",
                     help=f"cases scored together at most (default: {d['batch_size']}); the numbers do not depend on it")
    run.add_argument("--resize", choices=["nearest"], help="resize predictions of another size (recorded); "
                                                          "default: an error")
    run.add_argument("--out", help="folder to save the results in (parquet + provenance JSON)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    evaluate.set_defaults(run=run_evaluate, parser=evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    if args.dataset and (args.spacing is not None or args.num_classes is not None):
        args.parser.error("--spacing and --num-classes describe your own ground truth (--targets); a dataset's come "
                          "from its manifest")
    if args.targets and (args.split or args.no_download or args.no_verify):
        args.parser.error("--split, --no-download and --no-verify apply to --dataset only")
    if args.device is not None:
        check_device(args.device)
    for given, what in ((args.predictions, "predictions"), (args.targets, "ground truth (--targets)")):
        if given is not None and not Path(given).exists():
            raise FileNotFoundError(f"{what} not found: {given!r}; give a folder, a zip or an array file.")
    from .._atomic import check_replaceable
    from ..evaluate import evaluate
    from ..results import RESULT_FILES

    if args.out:
        check_replaceable(args.out, RESULT_FILES)  # before scoring, not after
    options = _options(args)
    res = evaluate(args.predictions, args.dataset, targets=args.targets, progress=not args.quiet, **options)
    p = res.provenance
    where = (f"{p['dataset']} / {p['split']}" if p.get("dataset") else f"your ground truth ({args.targets})")
    summary_table(f"{where}: {p['num_cases']} cases, convention {p['convention']} (mean [95% bootstrap CI])",
                  {Path(args.predictions).name or "predictions": res})
    if args.out:
        print(f"results written to {res.save(args.out)}")
    return 0


def _options(args: argparse.Namespace) -> dict:
    """The keyword arguments of :func:`medseg_eval.evaluate` the flags give (the others keep their defaults)."""
    options = {name: getattr(args, name) for name in ("split", "spacing", "num_classes", "metrics", "convention",
                                                       "percentile", "tolerance", "device", "batch_size", "resize")
               if getattr(args, name) is not None}
    if args.no_download:
        options["download"] = False
    if args.no_verify:
        options["verify_ground_truth"] = False
    if args.instances:
        options["instances"] = True
    from ..metrics import EmptyPolicy, LesionCriteria

    if args.empty is not None:
        options["empty"] = _empty_policy(args.empty, EmptyPolicy)
    criteria = {name: getattr(args, f"lesion_{name}") for name in ("connectivity", "criterion", "min_overlap",
                                                                   "iou_threshold")}
    if any(v is not None for v in criteria.values()):
        options["lesions"] = LesionCriteria(**{k: v for k, v in criteria.items() if v is not None})
    return options


def _empty_policy(name: str, policy: type):
    """The :class:`~medseg_eval.metrics.EmptyPolicy` a ``--empty`` name stands for."""
    if name == "monai-keep-empty":
        return policy.monai(ignore_empty=False)
    if name == "medseg_eval":
        return policy()
    return getattr(policy, name.replace("-", "_"))()


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated metric names, e.g. dice,hd95")
    return names


def _spacing(text: str) -> tuple[float, float] | dict[str, tuple[float, float]]:
    """``SY,SX`` (also ``SY SX`` or one number for both), or a JSON file mapping case id -> ``[sy, sx]``."""
    if text.endswith(".json"):
        try:
            table = json.loads(Path(text).read_text())
        except (OSError, ValueError) as err:
            raise argparse.ArgumentTypeError(f"cannot read the spacing file {text!r}: {err}") from None
        if not isinstance(table, dict):
            raise argparse.ArgumentTypeError(f"{text}: expected a JSON object {{case_id: [sy, sx]}}")
        return {str(k): tuple(v) for k, v in table.items()}
    parts = text.replace(",", " ").split()
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or not all(v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected SY,SX, two positive pixel sizes such as 0.5,0.5, got {text!r}")
    return values  # type: ignore[return-value]
