"""Wire format: one message = multipart ``[msgpack header, buffer0, buffer1, ...]``.

The header is a msgpack map::

    {"v": 1, "kind": "frame" | "eos" | "outage", "stream": str, "seq": int, "ts_ns": int,
     "pts_ms": float | None, "bufs": [{"dtype": "uint8", "shape": [H, W, 3]}, ...],
     "meta": {...}}

A frame sent without pixels adds ``image_shape`` and has no buffer; one sent as face patches
adds ``image_shape``, ``patches`` and ``gray`` and has one buffer (:mod:`.patches`).

Buffers are raw C-contiguous bytes, sent without copying above :data:`ZERO_COPY_MIN` bytes.
There is no pickle anywhere: a message from a foreign or malicious sender can at worst fail
to decode, raising :class:`MessageError` (the receiver drops and counts it). A frame's
``meta`` is checked against its typed contract (:mod:`vidaffect.runtime.frame_meta`) here too, so no plugin
sees a face without a score or a non-finite box.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack
import numpy as np

from vidaffect.frames import Frame
from vidaffect.runtime.frame_meta import check_meta
from vidaffect.runtime.patches import PatchError, cut_patches, paste_patches

PROTOCOL_VERSION = 1
ZERO_COPY_MIN = 64 * 1024
KINDS = ("frame", "eos", "outage")
_DTYPES = {"uint8", "int8", "uint16", "int16", "int32", "int64", "float16", "float32", "float64"}
MAX_BUFFERS = 8


class MessageError(ValueError):
    """A message that is not a valid vidaffect message (foreign, truncated or malformed)."""


def encode_frame(frame: Frame, pixels: bool = True) -> list[Any]:
    """Encode a :class:`Frame` into message parts ``[header_bytes, image_buffer]``.

    The image part is a memoryview of ``frame.image`` (no copy) when it is C-contiguous.
    With ``pixels=False`` (for sinks that need no pixels, :attr:`vidaffect.api.Sink.needs_pixels`)
    the message is the header alone, which records the image's shape as ``image_shape``; the
    receiver's frame then has an all-black read-only image of that shape that takes no memory.

    Raises:
        TypeError: ``frame.meta`` holds a value msgpack cannot encode (e.g. a numpy array;
            meta must be plain Python values).
    """
    img = frame.image
    if not pixels:
        return [_frame_header(frame, [], image_shape=list(img.shape))]
    if not img.flags.c_contiguous:
        img = np.ascontiguousarray(img)
    return [_frame_header(frame, [{"dtype": img.dtype.name, "shape": list(img.shape)}]), img.data.cast("B")]


def _frame_header(frame: Frame, bufs: list[dict[str, Any]], **extra: Any) -> bytes:
    """The msgpack header of a ``frame`` message carrying ``bufs``, with ``extra`` fields."""
    header: dict[str, Any] = {
        "v": PROTOCOL_VERSION,
        "kind": "frame",
        "stream": frame.stream,
        "seq": frame.seq,
        "ts_ns": frame.ts_ns,
        "pts_ms": frame.pts_ms,
        "bufs": bufs,
        "meta": frame.meta,
        **extra,
    }
    return bytes(msgpack.packb(header, use_bin_type=True))


def encode_patches(frame: Frame, margin: float, side: int, gray: bool) -> list[Any]:
    """Encode ``frame`` with only the squares around its faces for pixels (see
    :mod:`.patches`): ``[header_bytes, patch_bytes]``; the receiver's frame is black elsewhere.

    Raises:
        TypeError: as :func:`encode_frame`.
    """
    fields, data = cut_patches(frame, margin, side, gray)
    bufs = [{"dtype": "uint8", "shape": [len(data)]}]
    return [_frame_header(frame, bufs, image_shape=list(frame.image.shape), **fields), data]


def encode_eos(stream: str, seq: int, meta: dict[str, Any] | None = None) -> list[bytes]:
    """Encode an end-of-stream marker; ``seq`` is the number of frames the stream emitted."""
    header = {
        "v": PROTOCOL_VERSION,
        "kind": "eos",
        "stream": stream,
        "seq": seq,
        "ts_ns": 0,
        "pts_ms": None,
        "bufs": [],
        "meta": meta or {},
    }
    return [msgpack.packb(header, use_bin_type=True)]


def encode_outage(stream: str, frames: int, info: dict[str, Any]) -> list[bytes]:
    """Encode an outage notice of a live stream (no buffers): ``seq`` is the number of frames
    the stream sent so far, ``info`` the source's :meth:`~vidaffect.api.Source.outage` plus
    ``last_ts_ns``. Not a frame: stages pass it on at once, sinks get
    :meth:`~vidaffect.api.Sink.outage`."""
    header = {
        "v": PROTOCOL_VERSION,
        "kind": "outage",
        "stream": stream,
        "seq": frames,
        "ts_ns": 0,
        "pts_ms": None,
        "bufs": [],
        "meta": info,
    }
    return [msgpack.packb(header, use_bin_type=True)]


def decode_header(part: bytes | memoryview) -> dict[str, Any]:
    """Decode and validate a header.

    Raises:
        MessageError: not msgpack, wrong version, or missing/mistyped fields.
    """
    try:
        header = msgpack.unpackb(bytes(part), raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated exception types
        raise MessageError(f"header is not msgpack: {exc}") from None
    if not isinstance(header, dict):
        raise MessageError("header is not a map")
    if header.get("v") != PROTOCOL_VERSION:
        raise MessageError(f"unsupported protocol version {header.get('v')!r}")
    if header.get("kind") not in KINDS:
        raise MessageError(f"unknown kind {header.get('kind')!r}")
    for key, typ in (("stream", str), ("seq", int), ("ts_ns", int), ("bufs", list), ("meta", dict)):
        if not isinstance(header.get(key), typ) or isinstance(header.get(key), bool):
            raise MessageError(f"header field {key!r} missing or not {typ.__name__}")
    if len(header["bufs"]) > MAX_BUFFERS:
        raise MessageError("too many buffers")
    if not 0 <= header["seq"] < 2**53 or header["ts_ns"] < 0:
        raise MessageError("seq or ts_ns out of range")
    return header


def _buffer_array(spec: Any, buf: Any) -> np.ndarray:
    if not isinstance(spec, dict) or spec.get("dtype") not in _DTYPES:
        raise MessageError(f"bad buffer spec {spec!r}")
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise MessageError(f"bad buffer shape {shape!r}")
    dtype = np.dtype(spec["dtype"])
    mv = memoryview(buf)
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if mv.nbytes != expected:
        raise MessageError(f"buffer has {mv.nbytes} bytes, header says {expected}")
    return np.frombuffer(mv, dtype=dtype).reshape(shape)


def _image_shape(shape: Any) -> tuple[int, int, int]:
    """``image_shape`` of a frame sent without (all its) pixels, checked: (H, W, 3), sides
    1-65536.

    Raises:
        MessageError: anything else.
    """
    if not (
        isinstance(shape, list)
        and len(shape) == 3
        and shape[2] == 3
        and all(isinstance(s, int) and 0 < s <= 2**16 for s in shape)
    ):
        raise MessageError(f"bad image_shape {shape!r}")
    return shape[0], shape[1], shape[2]


def _no_pixels(shape: Any) -> np.ndarray:
    """The image of a frame sent without pixels: black, read-only, one byte of memory."""
    return np.broadcast_to(np.zeros((), np.uint8), _image_shape(shape))


def decode(parts: Sequence[Any]) -> tuple[dict[str, Any], Frame | None]:
    """Decode message parts into ``(header, frame)``; ``frame`` is ``None`` for EOS and
    outage notices (``header["kind"]`` tells them apart).

    Parts may be ``bytes`` or ``zmq.Frame`` (anything exposing the buffer protocol); the
    image array is a read-only view of the received buffer (no copy).

    Raises:
        MessageError: on any malformed or foreign message.
    """
    if not parts:
        raise MessageError("empty message")
    first = parts[0]
    header = decode_header(first.buffer if hasattr(first, "buffer") else first)
    if len(parts) - 1 != len(header["bufs"]):
        raise MessageError(f"header lists {len(header['bufs'])} buffers, message has {len(parts) - 1}")
    if header["kind"] != "frame":  # eos, outage
        return header, None
    if len(parts) == 1 and "image_shape" in header:  # sent without pixels
        image = _no_pixels(header["image_shape"])
    elif len(parts) == 2 and "patches" in header:  # only the squares around the faces
        buf = parts[1].buffer if hasattr(parts[1], "buffer") else parts[1]
        try:
            shape = _image_shape(header.get("image_shape"))
            image = paste_patches(shape, header["patches"], header.get("gray"), memoryview(buf))
        except PatchError as exc:
            raise MessageError(str(exc)) from None
    elif len(parts) != 2:
        raise MessageError("a frame message carries exactly one image buffer")
    else:
        buf = parts[1].buffer if hasattr(parts[1], "buffer") else parts[1]
        image = _buffer_array(header["bufs"][0], buf)
    pts = header.get("pts_ms")
    if pts is not None and not isinstance(pts, int | float):
        raise MessageError("pts_ms is not a number")
    try:  # Frame checks the image (uint8, (H, W, 3)); check_meta the typed contract of meta
        check_meta(header["meta"])
        frame = Frame(image, header["stream"], header["seq"], header["ts_ns"], pts, header["meta"])
    except ValueError as exc:
        raise MessageError(str(exc)) from None
    return header, frame
