"""Training throughput of FER models on this CPU, in both memory formats, before a long run.

    python -m benchmarks.train_speed [MODEL ...] [--batch-size 128] [--threads 2] [--steps 6]

MODEL is a shipped model name (``resnet18``, ``alexnet``: their architecture and options are
read from the checkpoint's metadata) or ``ARCH[:KEY=VALUE,...]`` (e.g.
``resnet18:width=48,deep_stem=true``, ``lenet5``); default: the shipped models. Each model
does full training steps as the FER-2013 trainer runs them -- forward, label-smoothed
cross-entropy, backward, AdamW update -- on random 48x48 grayscale batches, in PyTorch's
default (contiguous NCHW) memory format and in ``channels_last`` (the trainer's and the
``fer`` plugin's), timed in alternating blocks after a warm-up; the median block counts.
Random pixels cost the same as faces. Data loading, augmentation, validation and the extra
work of ``--ema`` and ``--teacher`` are not counted.

The table gives images per second, the minutes one FER-2013 epoch (25,837 training faces
after the 10% validation split) would take at that rate, and the channels_last /
contiguous ratio measured in the same run; with ``--bf16`` (a CPU with native bfloat16) also the
trainer's memory format under bfloat16 autocast (what ``vidaffect train`` uses there by default). A model with a convolution narrower than 8
channels (``lenet5``, a ResNet of width 4) is measured contiguous only, as the trainer runs it:
torch 2.14.1's channels_last backward of such convolutions crashes on AVX2-only CPUs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.common import parse_spec, print_table, set_threads
from vidaffect.models import create_model, list_models, model_inputs
from vidaffect.models.meta import read_meta
from vidaffect.models.zoo import resolve_checkpoint, shipped_models
from vidaffect_trainers.common import cpu_has_bf16, cpu_memory_format, make_optimizer

FER_TRAIN_FACES = 25_837  # FER-2013 train (28,709) minus the stratified 10% validation split


def model_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``(display name, arch, arch options)`` of a shipped model name (or ``default``) or
    ``ARCH[:K=V,...]``."""
    if spec == "default" or spec in shipped_models():
        meta = read_meta(resolve_checkpoint(spec))
        return spec, meta.arch, dict(meta.arch_kwargs)
    arch, options = parse_spec(spec)
    return spec, arch, options


def channels_last_trainable(arch: str, options: dict[str, Any]) -> bool:
    """Whether the trainer trains this model in ``channels_last`` (no convolution too narrow)."""
    return cpu_memory_format(create_model(arch, 7, **options)) == torch.channels_last


def training_step(
    arch: str,
    options: dict[str, Any],
    channels_last: bool,
    batch_size: int,
    num_classes: int = 7,
    bf16: bool = False,
) -> tuple[torch.nn.Module, Callable[[], None]]:
    """A fresh model and a callable doing one training step of it on a fixed random batch;
    ``bf16``: the forward pass under bfloat16 autocast, as the trainer runs it on a CPU with
    native bfloat16."""
    torch.manual_seed(0)
    model = create_model(arch, num_classes, **options).train()
    x = torch.randn(batch_size, 1, 48, 48)
    y = torch.randint(0, num_classes, (batch_size,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = make_optimizer("adam", model, 1e-3, 0.05)  # AdamW, as the trainer's default

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        F.cross_entropy(logits.float(), y, label_smoothing=0.1).backward()
        optimizer.step()

    return model, step


def images_per_second(
    arch: str,
    options: dict[str, Any],
    batch_size: int,
    steps: int,
    rounds: int = 3,
    warmup: int = 3,
    bf16: bool = False,
) -> dict[bool | str, float]:
    """Median training images per second, keyed by ``channels_last`` (False, True); only
    ``False`` for a model the trainer keeps contiguous (a convolution narrower than 8 channels,
    see :func:`vidaffect_trainers.common.cpu_memory_format`: channels_last can crash there).
    With ``bf16`` also ``"bf16"``: the trainer's memory format under bfloat16 autocast.

    Both memory formats are warmed up with ``warmup`` untimed steps, then timed in ``rounds``
    alternating blocks of ``steps`` steps, so that a slower stretch of the machine hits both
    and the first steps of a process (allocator and oneDNN set-up) hit neither.
    """
    formats = (False, True) if channels_last_trainable(arch, options) else (False,)
    steps_by_format: dict[bool | str, Callable[[], None]] = {
        cl: training_step(arch, options, cl, batch_size)[1] for cl in formats
    }
    if bf16:
        steps_by_format["bf16"] = training_step(arch, options, formats[-1], batch_size, bf16=True)[1]
    for step in steps_by_format.values():
        for _ in range(warmup):
            step()
    rates: dict[bool | str, list[float]] = {cl: [] for cl in steps_by_format}
    for _ in range(rounds):
        for cl, step in steps_by_format.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            rates[cl].append(batch_size * steps / (time.perf_counter() - t0))
    return {cl: statistics.median(r) for cl, r in rates.items()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.train_speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("models", nargs="*", help="shipped names or ARCH[:KEY=VALUE,...] (default: shipped)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=5, help="timed training steps per block")
    p.add_argument("--rounds", type=int, default=3, help="timed blocks per memory format (median)")
    p.add_argument(
        "--bf16",
        action="store_true",
        help="also time the trainer's bfloat16 autocast (CPUs with native bfloat16)",
    )
    args = p.parse_args(argv)
    set_threads(args.threads)
    bf16 = args.bf16
    if bf16 and not cpu_has_bf16():
        p.error(
            "--bf16: this CPU has no native bfloat16 (avx512_bf16, amx_bf16); the trainer uses float32 here"
        )
    rows = []
    specs = [model_spec(spec) for spec in args.models or list(shipped_models())]
    face_models = [a for a in list_models() if model_inputs(a) == ("image",)]
    unknown = sorted({arch for _, arch, _ in specs} - set(face_models))
    if unknown:
        p.error(f"not a single-image architecture: {', '.join(unknown)}; use one of {', '.join(face_models)}")
    for name, arch, options in specs:
        params = sum(t.numel() for t in create_model(arch, 7, **options).parameters()) / 1e6
        rates = images_per_second(arch, options, args.batch_size, args.steps, args.rounds, bf16=bf16)
        layouts: list[tuple[bool | str, str]] = [(False, "contiguous"), (True, "channels_last")]
        for cl, layout in layouts + ([("bf16", "trainer's, bfloat16 autocast")] if bf16 else []):
            if cl not in rates:
                rows.append([name, f"{params:.2f}", layout, "-", "-", "not run: a conv < 8 channels"])
                continue
            rate = rates[cl]
            rows.append(
                [
                    name,
                    f"{params:.2f}",
                    layout,
                    f"{rate:.0f}",
                    f"{FER_TRAIN_FACES / rate / 60:.1f}",
                    f"{rate / rates[False]:.2f}",
                ]
            )
    print_table(
        f"Training throughput, batch {args.batch_size}, {args.threads} thread(s), 48x48 gray",
        ["model", "params (M)", "memory format", "img/s", "min per FER-2013 epoch", "vs contiguous"],
        rows,
    )


if __name__ == "__main__":
    main()
