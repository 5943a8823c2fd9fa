"""The reduced protocol of the reference trainers, run on a lent GPU machine that has torch and nothing else.

Three steps, because the GPU machine has neither polars nor Hugging Face ``datasets`` (and no
network), while scoring needs the canonical dataset:

1. ``export`` (here): one fold of a canonical dataset as files: the images' canonical bytes
   (Kvasir-SEG keeps the release's JPEGs), the label maps as PNG, and ``cases.json`` with the
   fold's ids and a sha256 of every decoded image and mask, so the GPU machine can prove it
   trains on the canonical pixels.
2. ``train`` (on the GPU machine): every model through :func:`medseg_eval.train.train_and_predict`
   (the training half of ``medseg-eval train``) on the exported cases; it writes the held-out
   and test label maps of all models (``held-out.npz``, ``test.npz``, keys ``<model>/<case id>``)
   and ``runs.json`` (each model's record: config, report, command, device, wall time, or the error).
3. ``score`` (here): :func:`medseg_eval.train.score_fold` on those predictions: ``Results`` of
   the held-out fold and the test split, and a bundle with the badge *reproduced* per model.

Run from the repository root::

    python -m benchmarks.reduced_protocol export --dataset kvasir-seg --fold 0 --out .device/kvasir-seg
    python -m benchmarks.reduced_protocol train --cases .device/kvasir-seg --image-size 256 --epochs 8 \\
        --max-time 25 --out "$OUT"                                    # on the GPU machine
    python -m benchmarks.reduced_protocol score --runs RUNS_DIR --board-dir leaderboards
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from medseg_eval._atomic import atomic_write_bytes, atomic_write_text
from medseg_eval.train import TrainConfig, list_models
from medseg_eval.train.data import Cases, to_cases


def pixels_sha256(image: np.ndarray, mask: np.ndarray) -> str:
    """sha256 of a decoded RGB image and its label map (shapes included)."""
    digest = hashlib.sha256()
    for array in (np.ascontiguousarray(image, np.uint8), np.ascontiguousarray(mask, np.uint8)):
        digest.update(f"{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def export(dataset: str, fold: int, out: Path) -> None:
    """Write ``dataset``'s fold ``fold`` (training, held-out and test cases) as files under ``out``."""
    import datasets as hf

    from medseg_eval import load_dataset
    from medseg_eval.datasets import get_spec
    from medseg_eval.train.data import fold_ids

    spec = get_spec(dataset)
    train_ids, held_ids = fold_ids(spec.name, fold)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    hashes, test_ids = {}, []
    for split in ("train", spec.test_split):
        rows = load_dataset(spec.name, split=split).cast_column("image", hf.Image(decode=False))
        for row in rows:
            case_id, data = row["case_id"], row["image"]["bytes"]
            mask = np.asarray(row["mask"], dtype=np.uint8)
            image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            atomic_write_bytes(out / "images" / case_id, data)
            buffer = io.BytesIO()
            Image.fromarray(mask).save(buffer, format="PNG")
            atomic_write_bytes(out / "masks" / f"{case_id}.png", buffer.getvalue())
            hashes[case_id] = pixels_sha256(image, mask)
            if split != "train":
                test_ids.append(case_id)
    meta = {"dataset": spec.name, "fold": fold, "num_classes": spec.num_classes, "test_split": spec.test_split,
            "train": train_ids, "held_out": held_ids, "test": sorted(test_ids), "pixels_sha256": hashes}
    atomic_write_text(out / "cases.json", json.dumps(meta, indent=1) + "\n")
    print(f"{spec.name} fold {fold}: {len(train_ids)} train, {len(held_ids)} held out, {len(test_ids)} test -> {out}")


def _read_case(folder: Path, case_id: str) -> tuple[str, np.ndarray, np.ndarray]:
    image = np.asarray(Image.open(folder / "images" / case_id).convert("RGB"))
    mask = np.asarray(Image.open(folder / "masks" / f"{case_id}.png"))
    return case_id, image, mask


def load_exported(folder: Path, size: int) -> tuple[dict, dict[str, Cases], int]:
    """The exported cases at ``size`` (train / held_out / test) and how many decoded differently from the export."""
    meta = json.loads((folder / "cases.json").read_text())
    with ThreadPoolExecutor(8) as pool:  # JPEG decoding releases the GIL
        read = {c[0]: c for c in pool.map(lambda c: _read_case(folder, c), sorted(meta["pixels_sha256"]))}
    mismatched = sum(pixels_sha256(image, mask) != meta["pixels_sha256"][case_id]
                     for case_id, image, mask in read.values())
    parts = {part: to_cases((read[c] for c in meta[part]), size) for part in ("train", "held_out", "test")}
    return meta, parts, mismatched


def train(cases_dir: Path, models: list[str], out: Path, *, image_size: int, epochs: int, max_time: float | None,
          lr: float, device: str) -> None:
    """Train every model in ``models`` on the exported fold; predictions and records go to ``out`` after each."""
    from medseg_eval.train import train_and_predict

    started = time.perf_counter()
    meta, parts, mismatched = load_exported(cases_dir, image_size)
    print(f"loaded {sum(len(p.case_ids) for p in parts.values())} cases in {time.perf_counter() - started:.1f} s; "
          f"{mismatched} decoded differently from the export", flush=True)
    command = " ".join(["python -m benchmarks.reduced_protocol", *sys.argv[1:]])
    runs: dict[str, dict] = {"_data": {"cases": str(cases_dir), "dataset": meta["dataset"], "fold": meta["fold"],
                                       "pixels_mismatched": mismatched, "load_s": time.perf_counter() - started}}
    held_out: dict[str, np.ndarray] = {}
    test: dict[str, np.ndarray] = {}
    for name in models:
        config = TrainConfig(model=name, dataset=meta["dataset"], fold=meta["fold"], image_size=image_size,
                             max_epochs=epochs, lr=lr, max_time_s=max_time)
        try:
            trained = train_and_predict(config, parts["train"], parts["held_out"], parts["test"], meta["num_classes"],
                                        Path("runs") / name, device=device, progress=False, command=command)
        except Exception as err:  # noqa: BLE001 -- one model's failure is recorded; the others still run
            runs[name] = {"config": config.as_dict(), "error": f"{type(err).__name__}: {err}",
                          "traceback": traceback.format_exc()}
            print(f"{name}: FAILED {type(err).__name__}: {err}", flush=True)
        else:
            runs[name] = trained.record
            held_out.update({f"{name}/{k}": v for k, v in trained.held_out.items()})
            test.update({f"{name}/{k}": v for k, v in trained.test.items()})
            r = trained.report
            print(f"{name}: {r.epochs_run} epochs{' (out of time)' if r.out_of_time else ''}, best val IoU "
                  f"{r.best_iou:.4f} at {r.best_epoch}, {trained.record['wall_s']:.1f} s", flush=True)
        for file, predictions in (("held-out.npz", held_out), ("test.npz", test)):
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **predictions)
            atomic_write_bytes(out / file, buffer.getvalue())
        atomic_write_text(out / "runs.json", json.dumps(runs, indent=1, default=str) + "\n")
    print(f"polars imported: {'polars' in sys.modules}; total {time.perf_counter() - started:.0f} s", flush=True)


def score(runs_dir: Path, board_dir: Path, work_dir: Path) -> None:
    """Score what ``train`` wrote and write one *reproduced* bundle per model that trained."""
    from medseg_eval.train import score_fold

    runs = json.loads((runs_dir / "runs.json").read_text())
    data = runs.pop("_data")
    if data["pixels_mismatched"]:
        raise SystemExit(f"{data['pixels_mismatched']} cases decoded differently on the training machine; "
                         "its numbers are not for the canonical pixels.")
    with np.load(runs_dir / "held-out.npz") as held_file, np.load(runs_dir / "test.npz") as test_file:
        held_all, test_all = dict(held_file), dict(test_file)
    for name, record in runs.items():
        if "error" in record:
            print(f"{name}: not scored ({record['error']})")
            continue
        config = TrainConfig(**record["config"])
        held = {k.split("/", 1)[1]: v for k, v in held_all.items() if k.startswith(f"{name}/")}
        test = {k.split("/", 1)[1]: v for k, v in test_all.items() if k.startswith(f"{name}/")}
        report = record["report"]
        run = score_fold(config, work_dir / name, held, test, record, board_dir=board_dir,
                         name=f"{name} (reduced: fold {config.fold}, {config.image_size}px, {report['epochs_run']} epochs)")
        print(f"{name}: bundle {run.bundle}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("export")
    p.add_argument("--dataset", default="kvasir-seg")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("train")
    p.add_argument("--cases", type=Path, required=True)
    p.add_argument("--models", nargs="+", default=["all"])
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--max-time", type=float, help="seconds of training per model (TrainConfig.max_time_s)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("score")
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--board-dir", type=Path, default=Path("leaderboards"))
    p.add_argument("--work-dir", type=Path, default=Path("runs"), help="per-model results and run.json")
    args = parser.parse_args(argv)
    if args.step == "export":
        export(args.dataset, args.fold, args.out)
    elif args.step == "train":
        args.out.mkdir(parents=True, exist_ok=True)
        models = list_models() if args.models == ["all"] else args.models
        train(args.cases, models, args.out, image_size=args.image_size, epochs=args.epochs, max_time=args.max_time,
              lr=args.lr, device=args.device)
    else:
        score(args.runs, args.board_dir, args.work_dir)


if __name__ == "__main__":
    main()
