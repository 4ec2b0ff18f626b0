"""``vidaffect ensemble``: one checkpoint from several trained FER checkpoints (a deep ensemble).

    vidaffect ensemble --member default --member runs/r18-b/best.safetensors --out ens.safetensors

The members must share labels (same order), input size and channels; their normalisations may
differ (:mod:`vidaffect.models.ensemble`). The result records its members
(``training.ensemble_of``: name, architecture, file hash, validation top-1) and the first
member's validation split, and is calibrated on that split (temperature scaling) before it is
written, as training runs calibrate theirs. Members trained on another split would have seen
some of those faces: the command then warns, as ``train`` does for teachers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vidaffect.errors import CheckpointError
from vidaffect.models.checkpoint import CheckpointMeta, build_model, load_checkpoint, save_checkpoint
from vidaffect.models.zoo import resolve_checkpoint, shipped_name
from vidaffect_trainers.fer2013.calibrate import calibrate_file, describe_calibration, validation_faces
from vidaffect_trainers.fer2013.distill import describe_checkpoints, warn_other_split
from vidaffect_trainers.fer2013.evaluate import default_data, map_labels


def build(members: list[str], reference_shipped: bool = False) -> tuple[torch.nn.Module, CheckpointMeta]:
    """The ensemble of ``members`` (shipped names or ``.safetensors`` paths), float32; with
    ``reference_shipped``, members given by a shipped name refer to that file (name and SHA-256)
    instead of carrying a copy of its weights (:mod:`vidaffect.models.ensemble`).

    Raises:
        CheckpointError: fewer than two members, a member that cannot be loaded, or members
            whose labels, input size or channels differ.
    """
    if len(members) < 2:
        raise CheckpointError("an ensemble needs at least two --member checkpoints")
    loaded = [load_checkpoint(resolve_checkpoint(m)) for m in members]
    first = loaded[0][1]
    described = describe_checkpoints(members)  # name, architecture, SHA-256, val top-1
    specs = []
    for name, (_, meta), about in zip(members, loaded, described):
        for field in ("labels", "input_size", "in_channels"):
            if getattr(meta, field) != getattr(first, field):
                raise CheckpointError(
                    f"member {name} has {field} {getattr(meta, field)}, the first member "
                    f"{members[0]} has {getattr(first, field)}"
                )
        if meta.arch == "ensemble":
            raise CheckpointError(f"member {name} is itself an ensemble; list its members instead")
        scale = first.std[0] / meta.std[0]  # (x * s0 + m0 - m) / s = x * (s0 / s) + (m0 - m) / s
        shift = (first.mean[0] - meta.mean[0]) / meta.std[0]
        spec = {"arch": meta.arch, "arch_kwargs": dict(meta.arch_kwargs), "scale": scale, "shift": shift}
        shipped = shipped_name(name) if reference_shipped else None
        if shipped:
            spec.update(shipped=shipped, sha256=about["sha256"])
        specs.append(spec)
    meta = CheckpointMeta(
        arch="ensemble",
        labels=list(first.labels),
        input_size=first.input_size,
        in_channels=first.in_channels,
        mean=list(first.mean),
        std=list(first.std),
        arch_kwargs={"members": specs},
        training={
            "data": first.training.get("data"),
            "train_size": first.training.get("train_size"),
            "val_size": first.training.get("val_size"),
            "val_split": first.training.get("val_split"),
            "ensemble_of": described,
        },
    )
    model = build_model(meta)
    for i, (net, _) in enumerate(loaded):
        model.members[i].load_state_dict(net.float().state_dict())
    return model.eval(), meta


def main(args: argparse.Namespace) -> Path:
    """Run ``ensemble``: build, calibrate on the first member's validation split, write."""
    torch.set_num_threads(args.threads)
    model, meta = build(args.member, args.reference_shipped)
    # a member trained on another split may have seen the faces the ensemble is calibrated on
    warn_other_split("member", args.member[1:], meta.training["val_split"], meta.training["train_size"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, model, meta)
    faces, split = validation_faces(meta.training, Path(args.data) if args.data else default_data(), 0.1, 0)
    fig = calibrate_file(out, out, faces.images, map_labels(faces, meta.labels))
    print(
        f"{out}: {len(args.member)} members; {describe_calibration(fig)} ({len(faces)} faces, {split})",
        flush=True,
    )
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--member",
        action="append",
        default=[],
        metavar="CHECKPOINT",
        help="a trained checkpoint (shipped name or .safetensors); repeat, two or more",
    )
    p.add_argument("--out", required=True, help="the ensemble's .safetensors file")
    p.add_argument(
        "--reference-shipped",
        action="store_true",
        help="members given by a shipped name are stored as a reference to that file (name and "
        "SHA-256), not a copy: a small file that fails to load once those shipped weights change",
    )
    p.add_argument(
        "--data",
        default=None,
        help="FER-2013 folder or CSV, for calibration (default: $VIDAFFECT_DATA/fer2013)",
    )
    p.add_argument("--threads", type=int, default=2)
