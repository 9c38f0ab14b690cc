"""Seeded, reproducible training loop (CPU or GPU) with progress bars.

Nothing here looks at the validation split: hyper-parameters, the epoch count and the 0.5
decision threshold are fixed in :class:`TrainConfig`, and the model of the last epoch is the
model; validation figures are computed once, afterwards, for the report.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from carepulse.imaging.training.data import Split
from carepulse.imaging.training.model import PneumoniaNet, ServedModel


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 16
    dropout: float = 0.2
    seed: int = 0
    # Augmentation (train only): small rotations, shifts, zooms and exposure changes, as between
    # two real radiographs; no flips (the heart is on the left).
    max_rotate_deg: float = 10.0
    max_shift_px: float = 2.0
    max_zoom: float = 0.10
    max_contrast: float = 0.10
    max_brightness: float = 0.05
    limit_train: int = 0  # >0: a seeded random N of the training images (quick runs in tests)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    model: ServedModel
    device: str
    threads: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # cuBLAS needs this for deterministic GEMMs; harmless on CPU.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def _augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random affine + exposure jitter of a batch in 0..1; parameters drawn on the CPU generator."""
    n = x.shape[0]

    def uniform(scale: float) -> torch.Tensor:
        return (torch.rand(n, generator=gen) * 2 - 1) * scale

    angle = uniform(math.radians(cfg.max_rotate_deg))
    zoom = 1 + uniform(cfg.max_zoom)
    shift = torch.stack([uniform(cfg.max_shift_px), uniform(cfg.max_shift_px)], 1) * (2 / x.shape[-1])
    contrast, brightness = 1 + uniform(cfg.max_contrast), uniform(cfg.max_brightness)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    theta, contrast, brightness = (t.to(x.device) for t in (theta, contrast, brightness))
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return (out * contrast.view(-1, 1, 1, 1) + brightness.view(-1, 1, 1, 1)).clamp(0, 1)


def train(split: Split, cfg: TrainConfig, *, device: str = "auto", progress: bool = True) -> TrainResult:
    seed_everything(cfg.seed)
    dev = pick_device(device)
    split = split.subset(cfg.limit_train, cfg.seed)
    images, labels = split.scaled(), split.labels.astype(np.float32)
    # Normalisation constants from the training images only.
    mean, std = float(images.mean()), float(images.std())
    x_all = torch.from_numpy(images).to(dev)
    y_all = torch.from_numpy(labels).view(-1, 1).to(dev)

    net = PneumoniaNet(cfg.width, cfg.dropout).to(dev)
    model = ServedModel(net, mean, std).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = math.ceil(len(x_all) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    gen = torch.Generator().manual_seed(cfg.seed)

    started = time.perf_counter()
    history: list[dict[str, float]] = []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = torch.randperm(len(x_all), generator=gen).to(dev)
        total, correct, loss_sum = 0, 0, 0.0
        bar = tqdm(range(steps), desc=f"epoch {epoch:2d}/{cfg.epochs}", unit="batch", disable=not progress,
                   leave=False, dynamic_ncols=True)
        for i in bar:
            idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            x = _augment(x_all[idx], cfg, gen)
            y = y_all[idx]
            logits = net((x - model.mean) / model.std)
            loss = F.binary_cross_entropy_with_logits(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += len(idx)
            loss_sum += float(loss.detach()) * len(idx)
            correct += int(((logits > 0).float() == y).sum())
            bar.set_postfix(loss=f"{loss_sum / total:.4f}", acc=f"{correct / total:.3f}")
        row = {"epoch": epoch, "train_loss": loss_sum / total, "train_accuracy": correct / total}
        history.append(row)
        # One line per epoch even without bars, so logs show the run's progress too.
        tqdm.write(f"epoch {epoch:2d}/{cfg.epochs}  train loss {row['train_loss']:.4f}  "
                       f"train acc {row['train_accuracy']:.4f}")
    model.eval()
    return TrainResult(model, str(dev), torch.get_num_threads(), time.perf_counter() - started, history)


@torch.no_grad()
def predict(model: ServedModel, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """P(pneumonia) [N] of FP32 images [N,1,28,28] in 0..1, through the PyTorch model."""
    model.eval()
    dev = next(model.parameters()).device
    out = [model(torch.from_numpy(images[i:i + batch_size]).to(dev)).cpu().numpy()
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out).reshape(-1)
