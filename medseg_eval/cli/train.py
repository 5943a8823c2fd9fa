"""``medseg-eval train`` and ``zero-shot``: the reference trainers and the promptable generalists."""

from __future__ import annotations

import argparse

from ._common import check_device, command_line


def add_parsers(commands: argparse._SubParsersAction) -> None:
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
    train.set_defaults(run=run_train)
    zero = commands.add_parser("zero-shot", help="SAM, MedSAM or SAM 2 with ground-truth boxes (oracle prompts)")
    zero.add_argument("model", choices=["sam", "medsam", "sam2"])
    zero.add_argument("--dataset", required=True)
    zero.add_argument("--checkpoint", help="a Hub id or folder (default: the model's reference checkpoint)")
    zero.add_argument("--jitter", type=int, default=0, help="move each box side by up to this many pixels")
    zero.add_argument("--seed", type=int, default=42)
    zero.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1")
    zero.add_argument("--out", required=True, help="folder for the results")
    zero.add_argument("--board-dir", help="also add a bundle (marked as oracle prompts) to this board")
    zero.add_argument("--quiet", action="store_true")
    zero.set_defaults(run=run_zero_shot)


def run_train(args: argparse.Namespace) -> int:
    check_device(args.device)
    import polars as pl

    from ..train import TrainConfig, train_fold

    overrides = {"model": args.model, "dataset": args.dataset, "fold": args.fold, "max_epochs": args.epochs,
                 "image_size": args.image_size, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                 "max_steps_per_epoch": args.max_steps_per_epoch, "max_time_s": args.max_time, "pretrained": args.pretrained or None,
                 "checkpoint": args.checkpoint, "deterministic": False if args.fast_kernels else None}
    config = (TrainConfig.from_file(args.config, **overrides) if args.config else
              TrainConfig(**{k: v for k, v in overrides.items() if v is not None}))
    run = train_fold(config, args.out, device=args.device, board_dir=args.board_dir, progress=not args.quiet,
                     command=command_line(), sweep_lr=args.sweep_lr)
    if run is None:  # not the first process of a torchrun launch
        return 0
    r = run.report
    print(f"{config.model} fold {config.fold}: {r.epochs_run} epochs, best validation IoU {r.best_iou:.4f} at epoch "
          f"{r.best_epoch}{' (stopped early)' if r.stopped_early else ''}{' (out of time)' if r.out_of_time else ''}; {r.wall_s:.0f} s on {r.device}")
    for row in run.test.summary().filter(pl.col("metric") == "dice").iter_rows(named=True):
        print(f"  test {row['class']} dice ({row['aggregate']}): {row['mean']:.4f} [{row['ci_low']:.4f}, {row['ci_high']:.4f}]")
    print(f"outputs in {run.out_dir}; bundle {run.bundle}")
    return 0


def run_zero_shot(args: argparse.Namespace) -> int:
    check_device(args.device)
    from ..leaderboard import submit
    from ..train.generalist import zero_shot

    res = zero_shot(args.model, args.dataset, checkpoint=args.checkpoint, jitter=args.jitter, seed=args.seed,
                    device=args.device, progress=not args.quiet)
    print(f"results written to {res.save(args.out)}")
    if args.board_dir:
        bundle = submit(res, f"{args.model} (zero-shot, ground-truth boxes)", args.board_dir, badge="reproduced",
                        config={"generalist": res.provenance["generalist"],
                                "command": command_line()})
        print(f"bundle written to {bundle}")
    return 0
