"""Wire format: round trip, zero-copy, and malformed input rejected with MessageError."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidaffect.frames import Frame
from vidaffect.runtime.codec import MessageError, decode, encode_eos, encode_frame


def make_frame(h: int = 48, w: int = 64) -> Frame:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    meta = {"faces": [{"bbox": [1.0, 2.0, 30.0, 40.0], "score": 0.99}], "labels": ["a", "b"]}
    return Frame(img, "cam0", 7, 123456789, 33.3, meta)


def test_frame_round_trip() -> None:
    frame = make_frame()
    header, out = decode([bytes(p) for p in encode_frame(frame)])
    assert header["kind"] == "frame"
    assert out is not None
    assert np.array_equal(out.image, frame.image)
    assert (out.stream, out.seq, out.ts_ns, out.pts_ms) == ("cam0", 7, 123456789, 33.3)
    assert out.meta == frame.meta


@pytest.mark.parametrize(
    "image",
    [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8), [[0, 0, 0]]],
)
def test_frame_rejects_an_image_that_is_not_uint8_bgr(image: object) -> None:
    with pytest.raises(ValueError, match=r"uint8 \(H, W, 3\)"):
        Frame(image, "cam0", 0, 0)  # type: ignore[arg-type]


def test_image_buffer_is_not_copied_on_encode() -> None:
    frame = make_frame(480, 640)
    parts = encode_frame(frame)
    assert isinstance(parts[1], memoryview)
    assert np.shares_memory(np.frombuffer(parts[1], np.uint8), frame.image)


def test_non_contiguous_image_is_made_contiguous() -> None:
    frame = make_frame(48, 64)
    frame.image = frame.image[:, ::2]
    _, out = decode([bytes(p) for p in encode_frame(frame)])
    assert out is not None and np.array_equal(out.image, frame.image)


def test_eos_round_trip() -> None:
    header, frame = decode(encode_eos("cam1", 42, {"dropped": 3}))
    assert frame is None
    assert (header["kind"], header["stream"], header["seq"], header["meta"]) == (
        "eos",
        "cam1",
        42,
        {"dropped": 3},
    )


def _header(**over: object) -> bytes:
    h = {
        "v": 1,
        "kind": "frame",
        "stream": "s",
        "seq": 0,
        "ts_ns": 0,
        "pts_ms": None,
        "bufs": [{"dtype": "uint8", "shape": [2, 2, 3]}],
        "meta": {},
    }
    h.update(over)
    return msgpack.packb(h)


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ([], "empty"),
        ([b"\xc1garbage"], "msgpack"),
        ([msgpack.packb([1, 2])], "not a map"),
        ([_header(v=99), bytes(12)], "version"),
        ([_header(kind="pickle"), bytes(12)], "kind"),
        ([_header(seq="x"), bytes(12)], "seq"),
        ([_header()], "buffers"),
        ([_header(), bytes(11)], "bytes"),
        ([_header(bufs=[{"dtype": "object", "shape": [1]}]), bytes(8)], "spec"),
        ([_header(bufs=[{"dtype": "uint8", "shape": [2, 6]}]), bytes(12)], "(H, W, 3)"),
        ([_header(bufs=[{"dtype": "uint8", "shape": [-1, 2, 3]}]), bytes(12)], "shape"),
    ],
)
def test_malformed_messages_raise_message_error(parts: list[bytes], message: str) -> None:
    with pytest.raises(MessageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode(parts)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), min_size=0, max_size=4))
def test_fuzz_random_parts_never_crash(parts: list[bytes]) -> None:
    try:
        decode(parts)
    except MessageError:
        pass


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["v", "kind", "stream", "seq", "ts_ns", "pts_ms", "bufs", "meta"]),
        st.one_of(
            st.none(),
            st.integers(-(2**63), 2**63 - 1),
            st.text(max_size=5),
            st.floats(),
            st.lists(st.integers(0, 2**31), max_size=3),
            st.just([{"dtype": "uint8", "shape": [1, 1, 3]}]),
        ),
    ),
    st.binary(max_size=8),
)
def test_fuzz_headers_never_crash(header: dict, payload: bytes) -> None:
    try:
        decode([msgpack.packb(header), payload])
    except MessageError:
        pass
