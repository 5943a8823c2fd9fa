"""``medseg-eval leaderboard submit|build|validate|push|seed-reported``: bundles and the boards built from them.

A bundle that cannot go on a board (:class:`~medseg_eval.leaderboard.SubmissionError`, a forged one
included) exits 1, the others of the package's errors 2 (see :mod:`medseg_eval.cli`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parsers(commands: argparse._SubParsersAction) -> None:
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
    submit.add_argument("--cv", metavar="CV_DIR", help="a saved cross-validation (medseg-eval cv --out, or "
                                                       "CrossValidation.save) of the model's held-out folds")
    submit.add_argument("--fold-predictions", action="append", metavar="FOLD[,SEED]=PATH",
                        help="a fold's held-out predictions or trainer run folder, re-scored by the board (repeatable)")
    for name, parser, run in (("build", sub.add_parser("build", help="rebuild README.md per dataset and index.html"),
                               run_build),
                              ("validate", sub.add_parser("validate", help="check every bundle (exit 1 on the "
                                                          "first invalid one, named)"), run_validate)):
        parser.add_argument("dataset", nargs="?", help="one dataset (default: all with bundles)")
        parser.set_defaults(run=run)
    push = sub.add_parser("push", help="open a pull request with bundles on a Hugging Face leaderboard repo")
    push.add_argument("dataset")
    push.add_argument("--repo-id", required=True, help="the leaderboard dataset repo, e.g. medseg-eval/leaderboards")
    push.add_argument("--bundle", action="append", help="bundle folder name to send (repeatable; default: all)")
    push.add_argument("--dry-run", metavar="DIR", help="write the exact files of the pull request to DIR instead")
    push.set_defaults(run=run_push)
    seed = sub.add_parser("seed-reported", help="(maintainers) write the founding study's reported bundles")
    seed.set_defaults(run=run_seed_reported)
    for parser in (submit, sub.choices["build"], sub.choices["validate"], push, seed):
        parser.add_argument("--board-dir", default="leaderboards", help="boards folder (default: leaderboards)")
    submit.set_defaults(run=run_submit)


def run_submit(args: argparse.Namespace) -> int:
    from ..leaderboard import submit
    from ..leaderboard.folds import parse_fold_predictions

    config = json.loads(Path(args.config).read_text()) if args.config else None
    path = submit(args.results, args.model, args.board_dir, predictions=args.predictions, badge=args.badge,
                  parameters=args.parameters, code_url=args.code_url, paper_url=args.paper_url,
                  training_protocol=args.protocol, seed=args.seed, contact=args.contact,
                  weights_license=args.weights_license, config=config, citation=args.citation,
                  predictions_withheld=args.withheld, cross_validation=args.cv,
                  fold_predictions=parse_fold_predictions(args.fold_predictions) if args.fold_predictions else None)
    print(f"bundle written to {path}; run `medseg-eval leaderboard build --board-dir {args.board_dir}` to rank it")
    return 0


def run_build(args: argparse.Namespace) -> int:
    from ..leaderboard import build

    for path in build(args.board_dir, args.dataset):
        print(f"wrote {path}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from ..leaderboard.board import load_bundles

    board_dir = Path(args.board_dir)
    names = [args.dataset] if args.dataset else sorted(p.name for p in board_dir.iterdir() if p.is_dir())
    for name in names:
        for slug, sub in load_bundles(board_dir, name):
            how = {"reported": "reported", "unverified": "unverified: checked against its counts, not scored again"}
            print(f"ok  {name}/{slug} ({how.get(sub.meta['badge'], 'scored again from its predictions')})")
    return 0


def run_push(args: argparse.Namespace) -> int:
    from ..leaderboard.hub import push

    where = push(args.board_dir, args.dataset, args.repo_id, bundles=args.bundle, dry_run=args.dry_run)
    print(f"{'files of the pull request written to' if args.dry_run else 'pull request opened:'} {where}")
    return 0


def run_seed_reported(args: argparse.Namespace) -> int:
    from ..leaderboard.founding_study import seed_reported

    print(f"wrote {len(seed_reported(args.board_dir))} reported bundles under {args.board_dir}")
    return 0
