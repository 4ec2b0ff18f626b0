"""Training loop for the FER-2013 emotion models: checkpoints every epoch, resume, early stop.

A run folder (``--out``) holds ``last.pt`` (full training state, loadable with
``torch.load(weights_only=True)``), ``best.safetensors`` (the best-on-validation weights with
their metadata, see :mod:`vidaffect.models.checkpoint`) and ``history.json`` (per-epoch loss
and accuracy, used by the learning-curve plot).

With ``--ema DECAY`` the trainer also keeps an exponential moving average of the weights and
BatchNorm statistics, updated after every optimiser step (:func:`vidaffect_trainers.common.make_ema`).
Model selection, early stopping and ``best.safetensors`` then use the averaged weights;
``history.json`` records both (``val_*`` for the raw weights, ``ema_val_*`` for the average).

With ``--teacher CHECKPOINT`` (repeatable) the model also learns from trained teachers' soft
predictions (knowledge distillation, :mod:`vidaffect_trainers.fer2013.distill`); the targets are computed
once and kept in the run folder as ``teacher_probs.npz``.

With ``--init CHECKPOINT`` the run starts from a trained model's weights (fine-tuning, e.g. a
shipped model on your own faces) instead of a random initialisation; the architecture, its
options, classes and input normalisation then come from that checkpoint, which the run folder
records in ``init.json`` (:mod:`vidaffect_trainers.fer2013.finetune`), so resuming needs no ``--init``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm import tqdm

from vidaffect.models.checkpoint import CheckpointMeta, build_model, save_checkpoint
from vidaffect_trainers.common import cpu_memory_format, seed_everything, use_amp
from vidaffect_trainers.fer2013.augment import FaceTensorDataset
from vidaffect_trainers.fer2013.calibrate import calibrate_file, describe_calibration
from vidaffect_trainers.fer2013.consistency import consistency_loss, flatten_views
from vidaffect_trainers.fer2013.data import FaceSet, load, stratified_split
from vidaffect_trainers.fer2013.device_batches import DeviceBatches, resolve_device
from vidaffect_trainers.fer2013.distill import (
    describe_checkpoints,
    distillation_loss,
    teacher_probs,
    warn_other_split,
)
from vidaffect_trainers.fer2013.finetune import align_classes, check_arch_arguments, starting_point
from vidaffect_trainers.fer2013.framing import cached_boxes
from vidaffect_trainers.fer2013.predict import predict
from vidaffect_trainers.options import (
    add_run_arguments,
    fraction,
    non_negative_float,
    parse_arch_options,
    positive_float,
)
from vidaffect_trainers.run import TrainingRun


def class_weights(counts: np.ndarray, power: float) -> torch.Tensor:
    """Per-class loss weights ``(1 / count) ** power``, scaled to mean 1 over samples."""
    w = (1.0 / np.maximum(counts, 1)) ** power
    w = w / (w * counts).sum() * counts.sum()
    return torch.tensor(w, dtype=torch.float32)


def validate(model: torch.nn.Module, loader: DataLoader, labels: np.ndarray) -> tuple[float, float]:
    """``(top-1 accuracy, mean cross-entropy in nats)`` of ``model`` on ``loader``."""
    probs = predict(model, loader)
    top1 = float((probs.argmax(1) == labels).mean())
    loss = float(-np.log(probs[np.arange(len(probs)), labels] + 1e-9).mean())
    return top1, loss


def train(args: argparse.Namespace) -> Path:  # noqa: C901
    """Train (or resume) a run; returns the path of ``best.safetensors``.

    Raises:
        CheckpointError: a teacher or the ``--init`` model cannot be loaded or does not suit the
            data (:mod:`vidaffect_trainers.fer2013.finetune`), or the run folder's ``last.pt`` is from
            another model, cannot be read, or was trained without ``--ema`` when it is given now
            (``--restart`` starts over).
        FileNotFoundError, ValueError: the data cannot be found or read (:func:`load`); no
            ``--arch``, architecture options that contradict ``--init``, or ``--init`` given to
            resume a run that started from random weights.
    """
    out = Path(args.out)
    check_arch_arguments(args, out)
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    full: FaceSet = load(args.data, "train")
    out.mkdir(parents=True, exist_ok=True)
    init = starting_point(args, out, resuming=not args.restart and (out / "last.pt").is_file())
    if init is not None:
        full = align_classes(full, init)
    if 0 < args.limit < len(full):
        keep, _ = stratified_split(full.labels, 1 - args.limit / len(full), args.seed)
        full = full.subset(keep)
    boxes = None
    if args.framing:  # MTCNN's box on every face, detected once per machine (framing.py)
        t0 = time.perf_counter()
        boxes = cached_boxes(full.images)
        print(
            f"MTCNN boxes for {len(boxes)} faces ({time.perf_counter() - t0:.0f} s; "
            f"{np.isfinite(boxes[:, 0]).mean():.1%} found)",
            flush=True,
        )
    train_idx, val_idx = stratified_split(full.labels, args.val_frac, args.seed)
    train_set, val_set = full.subset(train_idx), full.subset(val_idx)
    train_boxes = None if boxes is None else boxes[train_idx]
    size = int(train_set.images.shape[-1])
    if init is None:
        mean = float(train_set.images.mean() / 255.0)
        std = float(train_set.images.std() / 255.0)
    else:  # the trained weights expect their own normalisation
        mean, std = init.meta.mean[0], init.meta.std[0]

    counts = train_set.class_counts()
    sampler = None
    weights = None
    if args.balance == "sampler":
        w = class_weights(counts, 1.0)[train_set.labels]
        sampler = WeightedRandomSampler(w.double(), num_samples=len(train_set), replacement=True)
    elif args.balance == "weighted-loss":
        weights = class_weights(counts, args.balance_power)

    val_split = f"stratified {args.val_frac:g} of train, seed {args.seed}"
    start_model = init.model if init else None  # None when resuming: the weights come from last.pt
    if start_model is not None:
        warn_other_split("the --init model", [args.init], val_split, len(train_set))
    soft = None
    if args.teacher:
        t0 = time.perf_counter()
        soft = teacher_probs(
            args.teacher, train_set.images, list(full.label_names), cache=out / "teacher_probs.npz"
        )
        agree = float((soft.argmax(1) == train_set.labels).mean())
        print(
            f"teacher targets for {len(soft)} faces ({time.perf_counter() - t0:.0f} s; "
            f"teacher top-1 on them {agree:.4f})",
            flush=True,
        )
        warn_other_split("teacher", args.teacher, val_split, len(train_set))

    gen = torch.Generator().manual_seed(args.seed)
    device = resolve_device(args.device)
    on_device = args.device_batches == "on" or (args.device_batches == "auto" and device.type == "cuda")
    if on_device and sampler is not None:
        raise ValueError("--balance sampler draws faces on the CPU; use weighted-loss with device batches")
    views = 3 if args.consistency else 1  # a batch's x is then (B, 3, 1, H, W)
    train_loader: Any
    if on_device:  # the whole set on the device, augmented there in batches
        train_loader = DeviceBatches(
            train_set.images,
            train_set.labels,
            mean,
            std,
            args.batch_size,
            device,
            soft=soft,
            robust=args.robust,
            seed=args.seed,
            drop_last=len(train_set) >= args.batch_size,
            robust_ranges=args.robust_ranges,
            boxes=train_boxes,
            framing=args.framing,
            views=views,
        )
    else:
        train_loader = DataLoader(
            FaceTensorDataset(
                train_set.images,
                train_set.labels,
                mean,
                std,
                augment=True,
                soft=soft,
                robust=args.robust,
                seed=args.seed,
                robust_ranges=args.robust_ranges,
                boxes=train_boxes,
                framing=args.framing,
                views=views,
            ),
            batch_size=args.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            drop_last=len(train_set) >= args.batch_size,  # else a small set would give 0 steps
            generator=gen,
            num_workers=args.workers,
        )
    val_loader = DataLoader(
        FaceTensorDataset(val_set.images, val_set.labels, mean, std, augment=False),
        batch_size=256,
        num_workers=0,
    )

    meta = CheckpointMeta(
        arch=init.meta.arch if init else args.arch,
        labels=list(full.label_names),
        input_size=(size, size),
        in_channels=1,
        mean=[mean],
        std=[std],
        arch_kwargs=dict(init.meta.arch_kwargs) if init else parse_arch_options(args.arch_opt),
        training={
            "data": full.source,
            "train_size": len(train_set),
            "val_size": len(val_set),
            "val_split": val_split,
            "optimizer": args.optimizer,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "balance": args.balance,
            "label_smoothing": args.label_smoothing,
            "seed": args.seed,
            **({"robust": args.robust} if args.robust else {}),
            **({"robust_ranges": args.robust_ranges} if args.robust or args.consistency else {}),
            **({"framing": args.framing} if args.framing else {}),
            **({"consistency": args.consistency} if args.consistency else {}),
            **({"ema_decay": args.ema} if args.ema else {}),
            **(
                {
                    "teachers": describe_checkpoints(args.teacher),
                    "distill_weight": args.distill_weight,
                    "distill_temperature": args.distill_temperature,
                }
                if args.teacher
                else {}
            ),
            **({"init": init.description} if init else {}),
        },
    )
    model = build_model(meta) if start_model is None else start_model
    memory_format = cpu_memory_format(model) if device.type == "cpu" else torch.channels_last
    model = model.to(device=device, memory_format=memory_format)
    if weights is not None:
        weights = weights.to(device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp(args.amp, device))
    if start_model is not None:
        print(f"the --init model: val top-1 {validate(model, val_loader, val_set.labels)[0]:.4f}", flush=True)
    run = TrainingRun(out, model, gen, args, len(train_loader), score="val top-1", state_key="best_acc")
    if not args.restart and not run.resume():
        return out / "best.safetensors"

    max_steps = args.max_steps or None
    step = 0
    for epoch in range(run.epoch, args.epochs):
        model.train()
        t0 = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(
            train_loader,
            desc=f"epoch {epoch + 1}/{args.epochs}",
            leave=False,
            disable=args.quiet,
            mininterval=5,
        )
        for x, y, *target in bar:
            if views > 1:
                x = flatten_views(x)
            x = x.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            y = y.to(device, non_blocking=True)
            with amp:
                logits = model(x)
            logits = logits.float()
            y_all = y.repeat(views)  # each view keeps its face's label and soft target
            loss = F.cross_entropy(logits, y_all, weight=weights, label_smoothing=args.label_smoothing)
            if target:
                kd = distillation_loss(
                    logits, target[0].to(device, non_blocking=True).repeat(views, 1), args.distill_temperature
                )
                loss = (1 - args.distill_weight) * loss + args.distill_weight * kd
            if views > 1:
                loss = loss + args.consistency * consistency_loss(logits.view(views, len(y), -1))
                logits = logits[: len(y)]  # training top-1 on the first view (as without it)
            run.step(loss)
            loss_sum += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
            step += 1
            if max_steps and step >= max_steps:
                break
        seconds = time.perf_counter() - t0
        val_acc, val_loss = validate(model, val_loader, val_set.labels)
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(seen, 1),
            "train_top1": correct / max(seen, 1),
            "val_loss": val_loss,
            "val_top1": val_acc,
            "lr": run.lr,
            "seconds": seconds,
            "img_per_s": seen / seconds,
        }
        chosen = run.selected
        if chosen is not model:
            val_acc, val_loss = validate(chosen, val_loader, val_set.labels)
            record.update(ema_val_loss=val_loss, ema_val_top1=val_acc)
        if run.add_epoch(record, val_acc):
            meta.metrics = {"val_top1": val_acc, "epoch": epoch + 1}
            save_checkpoint(out / "best.safetensors", chosen, meta)
        if run.save() or (max_steps and step >= max_steps):
            break
    best = out / "best.safetensors"
    if best.is_file() and len(val_set):  # calibrated on the split that chose it
        fig = calibrate_file(best, best, val_set.images, val_set.labels)
        print(f"calibration: {describe_calibration(fig)}", flush=True)
    return best


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--arch",
        default=None,
        help="registered architecture, e.g. resnet18 (required unless --init is given)",
    )
    p.add_argument(
        "--init",
        default=None,
        metavar="CHECKPOINT",
        help="start from this trained model's weights (shipped name or .safetensors) "
        "instead of a random initialisation: fine-tuning; its architecture, options "
        "and normalisation are kept",
    )
    p.add_argument(
        "--arch-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="architecture option, e.g. --arch-opt width=32 (repeatable)",
    )
    p.add_argument(
        "--data", required=True, help="FER-2013 folder (train/, test/), fer2013.csv, or class-named folder"
    )
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--balance", choices=["none", "weighted-loss", "sampler"], default="weighted-loss")
    p.add_argument(
        "--balance-power", type=float, default=0.5, help="weighted-loss: class weight = (1/count)**power"
    )
    p.add_argument("--val-frac", type=float, default=0.1)
    p.add_argument(
        "--device", default="auto", help="auto (a GPU when PyTorch sees one, else the CPU), cpu, or cuda[:N]"
    )
    p.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bfloat16 mixed precision (autocast) for the forward pass (default: on a GPU, "
        "and on a CPU with native bfloat16 instructions; python -m benchmarks.train_speed says "
        "whether it pays for a model there)",
    )
    p.add_argument(
        "--device-batches",
        choices=["auto", "on", "off"],
        default="auto",
        help="keep the training faces on the device and augment whole batches there (auto: on a GPU)",
    )
    p.add_argument(
        "--robust",
        type=fraction,
        default=0.0,
        metavar="P",
        help="robustness training: with probability P a training face gets one camera "
        "corruption (darkening, low contrast, blur, downscale, JPEG, noise, rotation, "
        "head turn, box jitter, occlusion) of random strength; 0: off",
    )
    p.add_argument(
        "--robust-ranges",
        choices=["standard", "wide"],
        default="standard",
        help="strengths --robust draws from: standard stops short of the robustness benchmark's "
        "strongest level; wide runs past it (the benchmark's severity 3 is then not held out)",
    )
    p.add_argument(
        "--framing",
        type=fraction,
        default=0.0,
        metavar="P",
        help="pipeline framing: with probability P a training face is shown as the fer plugin "
        "crops it, around MTCNN's own box on it at a random margin (-0.05 to 0.2) and height; "
        "the boxes are detected once per machine (12 minutes for FER-2013 on one core); 0: off",
    )
    p.add_argument(
        "--consistency",
        type=non_negative_float,
        default=0.0,
        metavar="LAMBDA",
        help="consistency training (AugMix's Jensen-Shannon term, weight LAMBDA; AugMix used "
        "12): each face is seen three times per step, as without this option (corrupted with "
        "probability --robust) and with two corruptions drawn at --robust-ranges strengths, "
        "and the term pulls the three predictions together; the label and distillation terms "
        "apply to all three. Three forward passes per face; 0: off",
    )
    p.add_argument(
        "--teacher",
        action="append",
        default=[],
        metavar="CHECKPOINT",
        help="distil from this trained model (shipped name or .safetensors; repeat for an "
        "ensemble): its flip-averaged predictions on the training faces become soft targets",
    )
    p.add_argument(
        "--distill-weight",
        type=fraction,
        default=0.5,
        help="with --teacher: weight of the distillation term (the label term gets 1 - this)",
    )
    p.add_argument(
        "--distill-temperature",
        type=positive_float,
        default=2.0,
        help="with --teacher: softmax temperature T of teacher and student in that term",
    )
    add_run_arguments(
        p,
        epochs=40,
        batch_size=128,
        weight_decay=0.05,
        warmup_epochs=2,
        limit_help="use only N training images (smoke runs)",
    )
