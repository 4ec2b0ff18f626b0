"""Pack face sets into one compact file: ``NAME.faces.xz`` (an ``.npz`` compressed with xz).

    python -m vidaffect_trainers.fer2013.pack ../shared/data/fer2013 fer2013-train.faces.xz --split train

FER-2013's 28,709 training faces are 128 MB as JPEG files and 66 MB as raw pixels; packed
they take about 47 MB, small enough to travel with the repository to a GPU machine that
cannot reach the data (the prepared GPU script reads it). Every loader of the trainers takes
a packed file where it takes a data folder (:func:`~vidaffect_trainers.fer2013.data.load`).
The pixels and labels are kept exactly; the file also records the label names and the
source it came from.
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
from pathlib import Path

import numpy as np

SUFFIX = ".faces.xz"


def write_packed(
    path: str | Path,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    label_names: tuple[str, ...],
    source: str,
) -> Path:
    """Write ``{split: (uint8 (N, H, W) images, int64 (N,) labels)}`` to ``path``."""
    buf = io.BytesIO()
    arrays = {f"{k}_images": v[0] for k, v in splits.items()} | {
        f"{k}_labels": v[1] for k, v in splits.items()
    }
    info = json.dumps({"labels": list(label_names), "source": source, "splits": list(splits)})
    np.savez(buf, info=np.array(info), **arrays)
    path = Path(path)
    path.write_bytes(lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME))
    return path


def read_packed(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    """``(images, labels, label_names, source)`` of ``split`` in a packed file.

    Raises:
        FileNotFoundError: the file holds no such split (the message lists those it has).
    """
    with np.load(io.BytesIO(lzma.decompress(Path(path).read_bytes()))) as z:
        info = json.loads(str(z["info"]))
        if split not in info["splits"]:
            raise FileNotFoundError(f"{path} holds the splits {info['splits']}, not {split!r}")
        return z[f"{split}_images"], z[f"{split}_labels"], tuple(info["labels"]), f"{info['source']}/{split}"


def main(argv: list[str] | None = None) -> Path:
    from vidaffect_trainers.fer2013.data import load

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help="FER-2013 folder, fer2013.csv or class folder")
    ap.add_argument("out", help=f"the file to write (NAME{SUFFIX})")
    ap.add_argument("--split", action="append", default=[], help="train, test, ... (repeat; default: train)")
    args = ap.parse_args(argv)
    if not args.out.endswith(SUFFIX):
        ap.error(f"the output name must end in {SUFFIX}")
    splits, names = {}, None
    for split in args.split or ["train"]:
        faces = load(args.data, split)
        splits[split] = (faces.images, faces.labels)
        names = faces.label_names
    path = write_packed(args.out, splits, names or (), Path(args.data).name)
    print(
        f"{path}: {path.stat().st_size / 2**20:.1f} MiB, "
        + ", ".join(f"{k} {len(v[1])}" for k, v in splits.items())
    )
    return path


if __name__ == "__main__":
    main()
