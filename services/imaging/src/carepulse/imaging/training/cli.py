"""``carepulse train imaging``: train, export to ONNX, check, and write the model card.

    carepulse train imaging                       # defaults: data in services/imaging/data, repo models/
    carepulse train imaging --epochs 3 --limit-train 1000 --repository /tmp/models --no-progress
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import torch

from carepulse.imaging.evaluation import binary_metrics
from carepulse.imaging.training.data import DatasetError, load
from carepulse.imaging.training.export import export
from carepulse.imaging.training.report import RunFacts, metrics_table, write_reports
from carepulse.imaging.training.train import TrainConfig, predict, train

DEFAULT_DATA = Path("services/imaging/data/pneumoniamnist_trainval.npz")
THRESHOLD = 0.5


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="carepulse train imaging", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="PneumoniaMNIST .npz (train_* and val_*)")
    p.add_argument("--repository", type=Path, default=Path("models"), help="Triton-layout model repository")
    p.add_argument("--name", default="pneumonia-cxr", help="model name in the repository")
    p.add_argument("--version", type=int, default=1, help="model version folder to write (positive integer)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--width", type=int, default=d.width, help="channels of the first conv block")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--limit-train", type=int, default=0, help="train on a seeded random N images (quick runs)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, cuda:1 …")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs, CI)")
    p.add_argument("--no-report", action="store_true", help="skip the model card and evaluation report")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version < 1:
        print("--version must be a positive integer", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        data = load(args.data)
    except (OSError, DatasetError) as e:
        print(f"cannot read training data: {e}", file=sys.stderr)
        return 2
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, width=args.width,
                      seed=args.seed, limit_train=args.limit_train)
    used = data.train.subset(cfg.limit_train, cfg.seed)
    n_train = len(used.labels)
    print(f"training {args.name} v{args.version} on {n_train} images "
          f"({used.labels.mean():.1%} pneumonia), {cfg.epochs} epochs, seed {cfg.seed}")
    result = train(data.train, cfg, device=args.device, progress=not args.no_progress)
    print(f"trained on {result.device} ({result.threads} threads) in {result.seconds:.1f} s")

    train_images, train_labels = used.scaled(), used.labels
    val_images, val_labels = data.val.scaled(), data.val.labels
    train_m = binary_metrics(train_labels, predict(result.model, train_images), THRESHOLD)
    val_torch = predict(result.model, val_images)
    val_torch_m = binary_metrics(val_labels, val_torch, THRESHOLD)

    exported = export(result.model, args.repository, args.name, args.version, val_images, val_torch)
    val_onnx_m = binary_metrics(val_labels, exported.onnx_probabilities, THRESHOLD)
    print(f"exported {exported.path} ({exported.size_bytes / 1024:.0f} KiB) and {exported.config}")
    print(f"max abs diff ONNX vs PyTorch on {len(val_labels)} validation images: {exported.max_abs_diff:.3e}")
    print(f"validation (PyTorch): AUC {val_torch_m.auc:.4f}  accuracy {val_torch_m.accuracy:.4f}")
    print(f"validation (ONNX):    AUC {val_onnx_m.auc:.4f}  accuracy {val_onnx_m.accuracy:.4f}  "
          f"sensitivity {val_onnx_m.sensitivity:.4f}  specificity {val_onnx_m.specificity:.4f}")
    if not args.no_report:
        facts = RunFacts(
            name=args.name, version=args.version, config=cfg.as_dict(), data_path=args.data.name,
            data_sha256=data.sha256, n_train=n_train, device=result.device, threads=result.threads,
            train_seconds=result.seconds, max_abs_diff=exported.max_abs_diff, onnx_bytes=exported.size_bytes,
            onnx_sha256=hashlib.sha256(exported.path.read_bytes()).hexdigest(),
            train=train_m, val_torch=val_torch_m, val_onnx=val_onnx_m,
        )
        out = write_reports(args.repository / args.name, facts, val_labels, exported.onnx_probabilities)
        print(f"wrote {args.repository / args.name / 'MODEL_CARD.md'} and {out}/ (report.md, roc.png, metrics.json)")
        print(metrics_table(facts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
