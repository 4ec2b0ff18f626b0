"""Training loop of the EMOTIC body + context model: checkpoint every epoch, resume, early stop.

Same run folder as the FER-2013 trainer (``--out``): ``last.pt`` (full training state,
``torch.load(weights_only=True)``), ``best.safetensors`` (best validation mAP, with the
per-category thresholds chosen on validation in its metadata) and ``history.json``. With
``--ema DECAY`` selection, thresholds and ``best.safetensors`` use the weight average
(:func:`vidaffect_trainers.common.make_ema`); ``history.json`` then has ``ema_val_*`` beside ``val_*``.

Inputs are RGB, scaled to [0, 1] and normalised with ImageNet's mean and std (the torchvision
convention for these backbones). Training augmentation: the same horizontal flip of body and
context, and brightness/contrast jitter drawn independently for each.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from tqdm import tqdm

from vidaffect.models.checkpoint import CheckpointMeta, build_model, save_checkpoint
from vidaffect.models.emotic import MIN_SIDE
from vidaffect.models.emotic_labels import CATEGORIES
from vidaffect_trainers import multilabel
from vidaffect_trainers.common import cpu_memory_format, seed_everything
from vidaffect_trainers.emotic.data import EmoticAnnotations, EmoticImages, category_counts, load_annotations
from vidaffect_trainers.emotic.losses import category_loss, positive_weights, vad_loss
from vidaffect_trainers.options import add_run_arguments, parse_arch_options
from vidaffect_trainers.run import TrainingRun

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class PersonTensors(Dataset):
    """Wraps :class:`EmoticImages`: ``(body, context, categories, vad)`` as float32 tensors,
    body ``(3, Hb, Wb)`` and context ``(3, Hc, Wc)`` RGB normalised with ``mean``/``std``."""

    def __init__(self, images: EmoticImages, mean: list[float], std: list[float], augment: bool) -> None:
        self.images, self.augment = images, augment
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)
        self.jitter = v2.ColorJitter(brightness=0.2, contrast=0.2)

    def __len__(self) -> int:
        return len(self.images)

    def _tensor(self, img: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        body, context, cats, vad = self.images[i]
        b, c = self._tensor(body), self._tensor(context)
        if self.augment:
            if torch.rand(()) < 0.5:
                b, c = b.flip(-1), c.flip(-1)
            b, c = self.jitter(b), self.jitter(c)
        return (
            (b - self.mean) / self.std,
            (c - self.mean) / self.std,
            torch.from_numpy(np.asarray(cats, np.float32)),
            torch.from_numpy(np.asarray(vad, np.float32)),
        )


@torch.inference_mode()
def predict(model: torch.nn.Module, loader: DataLoader) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid probabilities float32 ``(N, 26)`` and VAD float32 ``(N, 3)`` for ``loader``
    (the model runs in :func:`~vidaffect_trainers.common.cpu_memory_format`, converted in place)."""
    memory_format = cpu_memory_format(model)
    model.eval().to(memory_format=memory_format)
    probs, vads = [], []
    for body, context, _, _ in loader:
        logits, vad = model(
            body.contiguous(memory_format=memory_format), context.contiguous(memory_format=memory_format)
        )
        probs.append(torch.sigmoid(logits).numpy())
        vads.append(vad.numpy())
    return np.concatenate(probs), np.concatenate(vads)


def validate(
    model: torch.nn.Module, loader: DataLoader, ann: EmoticAnnotations
) -> tuple[np.ndarray, float, float]:
    """``(probabilities (N, 26), mAP, mean VAD absolute error)`` of ``model`` on ``loader``,
    scored against the annotations ``ann`` of the same persons."""
    probs, vad = predict(model, loader)
    val_map = multilabel.mean_ap(multilabel.per_category_ap(ann.categories, probs))
    return probs, val_map, float(multilabel.vad_mae(ann.vad, vad).mean())


def image_set(args: argparse.Namespace, path: str, split: str) -> EmoticImages:
    """The persons of the annotation file ``path`` with their images (``--images``/``--arrays``)."""
    ann = load_annotations(path, split)
    if 0 < args.limit < len(ann):
        ann = ann.subset(np.arange(args.limit))
    return EmoticImages(
        ann,
        images_root=args.images,
        arrays_root=args.arrays,
        body_size=(args.body_size, args.body_size),
        context_size=(args.context_size, args.context_size),
    )


def check_arguments(args: argparse.Namespace) -> None:
    """Raises ValueError for options that could only fail later, deep inside torch."""
    for backbone in {args.backbone, args.context_backbone or args.backbone}:
        if min(args.body_size, args.context_size) < MIN_SIDE[backbone]:
            raise ValueError(
                f"--body-size/--context-size must be at least {MIN_SIDE[backbone]} for {backbone}"
            )
    if args.batch_size < 2:
        raise ValueError("--batch-size must be at least 2 (the fusion layer's batch norm needs two persons)")


def train(args: argparse.Namespace) -> Path:
    """Train (or resume) a run; returns the path of ``best.safetensors``.

    Raises:
        ValueError: bad options, fewer than two training persons, or a validation set without
            any positive label (mAP undefined).
        CheckpointError: the run folder's ``last.pt`` is from another model, cannot be read, or
            was trained without ``--ema`` when it is given now (``--restart`` starts over).
    """
    check_arguments(args)
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_images, val_images = image_set(args, args.train, "train"), image_set(args, args.val, "val")
    train_ann, val_ann = train_images.ann, val_images.ann
    if len(train_ann) < 2:
        raise ValueError(f"{train_ann.source}: at least two persons are needed to train")
    if not val_ann.categories.any():
        raise ValueError(f"{val_ann.source}: no validation person has a category; mAP is undefined")
    counts = category_counts(train_ann)
    pos_weight = positive_weights(counts, len(train_ann), args.pos_weight_power)

    gen = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(
        PersonTensors(train_images, IMAGENET_MEAN, IMAGENET_STD, augment=True),
        batch_size=args.batch_size,
        shuffle=True,
        generator=gen,
        drop_last=len(train_ann) >= args.batch_size,  # never a batch of one (batch norm)
        num_workers=args.workers,
    )
    val_loader = DataLoader(
        PersonTensors(val_images, IMAGENET_MEAN, IMAGENET_STD, augment=False),
        batch_size=args.batch_size,
        num_workers=args.workers,
    )
    arch_kwargs = {"backbone": args.backbone, **parse_arch_options(args.arch_opt)}
    if args.context_backbone:
        arch_kwargs["context_backbone"] = args.context_backbone
    meta = CheckpointMeta(
        arch="emotic",
        labels=list(CATEGORIES),
        input_size=(args.body_size, args.body_size),
        in_channels=3,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        arch_kwargs=arch_kwargs,
        task="multilabel",
        context_size=(args.context_size, args.context_size),
        training={
            "data": train_ann.source,
            "val_data": val_ann.source,
            "train_size": len(train_ann),
            "val_size": len(val_ann),
            "loss": args.loss,
            "vad_weight": args.vad_weight,
            "optimizer": args.optimizer,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "seed": args.seed,
            "category_counts": [int(c) for c in counts],
            **({"ema_decay": args.ema} if args.ema else {}),
        },
    )
    model = build_model(meta)
    memory_format = cpu_memory_format(model)
    model = model.to(memory_format=memory_format)
    run = TrainingRun(out, model, gen, args, len(train_loader), score="val mAP", state_key="best_map")
    if not args.restart and not run.resume():
        return out / "best.safetensors"

    step = 0
    for epoch in range(run.epoch, args.epochs):
        model.train()
        t0 = time.perf_counter()
        sums = {"loss": 0.0, "cat_loss": 0.0, "vad_loss": 0.0}
        seen = 0
        bar = tqdm(
            train_loader,
            desc=f"epoch {epoch + 1}/{args.epochs}",
            leave=False,
            disable=args.quiet,
            mininterval=5,
        )
        for body, context, cats, vad in bar:
            logits, vad_pred = model(
                body.contiguous(memory_format=memory_format), context.contiguous(memory_format=memory_format)
            )
            l_cat = category_loss(args.loss, logits, cats, pos_weight)
            l_vad = vad_loss(vad_pred, vad)
            loss = l_cat + args.vad_weight * l_vad
            run.step(loss)
            n = len(cats)
            for key, value in (("loss", loss), ("cat_loss", l_cat), ("vad_loss", l_vad)):
                sums[key] += float(value.detach()) * n
            seen += n
            bar.set_postfix(loss=f"{sums['loss'] / seen:.3f}")
            step += 1
            if args.max_steps and step >= args.max_steps:
                break
        seconds = time.perf_counter() - t0
        probs, val_map, val_vad_mae = validate(model, val_loader, val_ann)
        record = {
            "epoch": epoch + 1,
            **{f"train_{k}": v / max(seen, 1) for k, v in sums.items()},
            "val_mAP": val_map,
            "val_vad_mae": val_vad_mae,
            "lr": run.lr,
            "seconds": seconds,
            "persons_per_s": seen / seconds,
        }
        chosen = run.selected
        if chosen is not model:
            probs, val_map, val_vad_mae = validate(chosen, val_loader, val_ann)
            record.update(ema_val_mAP=val_map, ema_val_vad_mae=val_vad_mae)
        if run.add_epoch(record, val_map):
            thresholds = multilabel.best_f1_thresholds(val_ann.categories, probs)
            meta.thresholds = [
                math.floor(float(t) * 1e4) / 1e4 for t in thresholds
            ]  # down: keeps the deciding score
            meta.metrics = {"val_mAP": val_map, "val_vad_mae": val_vad_mae, "epoch": epoch + 1}
            save_checkpoint(out / "best.safetensors", chosen, meta)
        if run.save() or (args.max_steps and step >= args.max_steps):
            break
    return out / "best.safetensors"


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """Where the images are: ``--images`` (the EMOTIC image folders) or ``--arrays`` (npy)."""
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--images", default=None, help="folder holding EMOTIC's images (searched recursively by file name)"
    )
    group.add_argument(
        "--arrays",
        default=None,
        help="folder of the preprocessed .npy arrays named in the CSV (Arr_name, Crop_name)",
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", required=True, help="training annotations: a CSV, or Annotations.mat")
    p.add_argument("--val", required=True, help="validation annotations: a CSV, or Annotations.mat")
    add_data_arguments(p)
    p.add_argument("--backbone", choices=["alexnet", "resnet18"], default="resnet18")
    p.add_argument(
        "--context-backbone",
        choices=["alexnet", "resnet18"],
        default=None,
        help="context branch backbone (default: the same as --backbone)",
    )
    p.add_argument(
        "--arch-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model option, e.g. --arch-opt fusion=128 (repeatable)",
    )
    p.add_argument("--body-size", type=int, default=128, help="body crop side in pixels")
    p.add_argument("--context-size", type=int, default=224, help="context image side in pixels")
    p.add_argument("--loss", choices=["bce", "kosti"], default="bce")
    p.add_argument(
        "--pos-weight-power",
        type=float,
        default=0.5,
        help="bce: positive weight = (negatives/positives)**power per category",
    )
    p.add_argument("--vad-weight", type=float, default=0.5, help="weight of the VAD loss")
    add_run_arguments(
        p,
        epochs=20,
        batch_size=32,
        weight_decay=0.01,
        warmup_epochs=1,
        limit_help="use only the first N persons of each file (smoke runs)",
    )
