"""Compare checkpoints side by side: size, compute, CPU latency and accuracy.

For each run folder (its ``best.safetensors``) or ``.safetensors`` file: parameters,
multiply-accumulates per face (Conv2d and Linear layers, counted with forward hooks on one
``(1, C, H, W)`` input), median CPU milliseconds per face at batch 1 and 32, validation top-1
from the metadata, and test top-1 / macro-F1 (evaluated on ``--data`` if given, else the
metadata's ``test_top1`` / ``test_macro_f1``, else ``-``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainers.fer2013.data import FaceSet, load
from trainers.fer2013.evaluate import evaluate_faces
from vidaffect.errors import CheckpointError
from vidaffect.models.checkpoint import load_checkpoint


def resolve(target: str | Path) -> tuple[str, Path]:
    """``(display name, checkpoint path)`` for a run folder or a ``.safetensors`` file.

    Raises:
        CheckpointError: no such file, or a folder without ``best.safetensors``.
    """
    path = Path(target)
    if path.is_dir():
        ckpt = path / "best.safetensors"
        if not ckpt.is_file():
            raise CheckpointError(f"run folder {path} has no best.safetensors")
        return path.name, ckpt
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return (path.parent.name if path.stem == "best" else path.stem), path


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of all Conv2d and Linear layers for one input of ``input_shape``.

    Conv2d: ``output elements * in_channels / groups * kernel area``; Linear: ``output
    elements * in_features``. Other layers (norms, activations, pooling) are not counted.
    """
    total = 0

    def hook(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += output.numel() * (module.in_channels // module.groups) * k
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d | nn.Linear)]
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(input_shape))
    finally:
        for h in handles:
            h.remove()
    return total


def cpu_ms_per_face(
    model: nn.Module, input_shape: tuple[int, ...], batch: int, repeats: int = 20, warmup: int = 3
) -> float:
    """Median wall-clock milliseconds per face of ``model`` on a ``(batch, *input_shape)`` input.

    Uses the current ``torch.get_num_threads()``; run :func:`torch.set_num_threads` first.
    """
    x = torch.randn(batch, *input_shape)
    times = []
    with torch.inference_mode():
        model.eval()
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            model(x)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times) / batch


def profile(target: str | Path, faces: FaceSet | None = None, repeats: int = 20) -> dict[str, Any]:
    """One row of the comparison (values ``None`` where unknown)."""
    name, ckpt = resolve(target)
    model, meta = load_checkpoint(ckpt)
    shape = (meta.in_channels, *meta.input_size)
    row: dict[str, Any] = {
        "name": name, "checkpoint": str(ckpt), "arch": meta.arch,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "mmacs": count_macs(model, (1, *shape)) / 1e6,
        "ms_b1": cpu_ms_per_face(model, shape, 1, repeats),
        "ms_b32": cpu_ms_per_face(model, shape, 32, max(3, repeats // 4)),
        "val_top1": meta.metrics.get("val_top1"),
        "test_top1": meta.metrics.get("test_top1"),
        "test_macro_f1": meta.metrics.get("test_macro_f1"),
        "test_source": "metadata" if "test_top1" in meta.metrics else None,
    }
    row["mflops"] = 2 * row["mmacs"]
    if faces is not None:
        s = evaluate_faces(model, meta, faces, str(ckpt)).summary()
        row.update(test_top1=s["top1"], test_macro_f1=s["macro_f1"], test_source=faces.source)
    return row


COLUMNS = [  # (key, header, format)
    ("name", "name", "{}"), ("arch", "arch", "{}"), ("params_m", "params(M)", "{:.3f}"),
    ("mmacs", "MMACs", "{:.2f}"), ("ms_b1", "ms/face@1", "{:.3f}"),
    ("ms_b32", "ms/face@32", "{:.3f}"),
    ("val_top1", "val_top1", "{:.4f}"), ("test_top1", "test_top1", "{:.4f}"),
    ("test_macro_f1", "test_macroF1", "{:.4f}"),
]


def format_table(rows: list[dict[str, Any]]) -> str:
    """Plain aligned text: a header line and one line per row; unknown values print as ``-``."""
    cells = [[h for _, h, _ in COLUMNS]]
    cells += [[("-" if r.get(k) is None else f.format(r[k])) for k, _, f in COLUMNS] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = []
    for line in cells:  # text columns (name, arch) left-aligned, numbers right-aligned
        padded = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run ``compare``: print the table (or a JSON list with ``--json``); returns the rows."""
    torch.set_num_threads(args.threads)
    faces = load(args.data, args.split) if args.data else None
    rows = [profile(t, faces, args.repeats) for t in args.targets]
    if args.json:
        print(json.dumps(rows))
    else:
        print(format_table(rows), end="")
        print("MMACs: millions of multiply-adds per face (FLOPs ~ 2 x MACs); "
              f"CPU times with {args.threads} thread(s)"
              + (f"; test = {faces.source}" if faces is not None else ""))
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="+", metavar="RUN_OR_CHECKPOINT",
                   help="run folder (uses best.safetensors) or .safetensors file")
    p.add_argument("--data", default=None, help="evaluate test top-1 / macro-F1 on this data")
    p.add_argument("--split", default="test")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=20, help="timed runs per batch size (median)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of the table")
