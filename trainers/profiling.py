"""Size, compute and CPU latency of a model: shared by the trainers' ``compare`` commands."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidaffect.errors import CheckpointError
from vidaffect.models.zoo import resolve_checkpoint


def resolve(target: str | Path) -> tuple[str, Path]:
    """``(display name, checkpoint path)`` for a run folder, a ``.safetensors`` file or a shipped
    model name (``default``, ``resnet18``, ``alexnet``). The name is the run folder's for a run's
    ``best.safetensors``, else the file's stem (``fer2013-resnet18`` for ``default``).

    Raises:
        CheckpointError: no such file or shipped name, or a folder without ``best.safetensors``.
    """
    path = Path(target)
    if path.is_dir():
        ckpt = path / "best.safetensors"
        if not ckpt.is_file():
            raise CheckpointError(f"run folder {path} has no best.safetensors")
        return path.name, ckpt
    ckpt = resolve_checkpoint(str(target))
    return (ckpt.parent.name if ckpt.stem == "best" else ckpt.stem), ckpt


def default_report(checkpoint_name: str, dataset: str) -> Path:
    """The report folder an ``evaluate`` writes when given no ``--report``:
    ``report-<checkpoint name>-<dataset>`` in the current folder (never beside a shipped
    checkpoint inside the installed package)."""
    return Path(f"report-{checkpoint_name}-{dataset}")


def count_macs(model: nn.Module, input_shapes: Sequence[tuple[int, ...]]) -> int:
    """Multiply-accumulates of all Conv2d and Linear layers for one forward pass on zero
    tensors of ``input_shapes`` (one shape per model input, batch included).

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

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    try:
        with torch.inference_mode():
            model.eval()(*(torch.zeros(shape) for shape in input_shapes))
    finally:
        for h in handles:
            h.remove()
    return total


def cpu_ms_per_item(
    model: nn.Module,
    input_shapes: Sequence[tuple[int, ...]],
    batch: int,
    repeats: int = 20,
    warmup: int = 3,
) -> float:
    """Median wall-clock milliseconds per item (face, person) of ``model`` on random inputs of
    ``(batch, *shape)`` for each of ``input_shapes`` (one per model input, no batch).

    Uses the current ``torch.get_num_threads()``; run :func:`torch.set_num_threads` first.
    Model and image inputs are in ``channels_last`` memory format, as the classifier plugins
    run them (the model is converted in place).
    """
    xs = [torch.randn(batch, *shape) for shape in input_shapes]
    xs = [x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x for x in xs]
    model.to(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode():
        model.eval()
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            model(*xs)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times) / batch


def format_table(rows: list[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """Plain aligned text: a header line and one line per row; unknown values print as ``-``.

    Args:
        columns: ``(key, header, format)`` per column; the first two are text, left-aligned.
    """
    cells = [[h for _, h, _ in columns]]
    cells += [[("-" if r.get(k) is None else f.format(r[k])) for k, _, f in columns] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = []
    for line in cells:  # text columns (name, arch) left-aligned, numbers right-aligned
        padded = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines) + "\n"
