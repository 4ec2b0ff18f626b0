"""OpenCV sources on real files: frame counts, fps subsampling, resize, loop, folders, errors."""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DATA, NEEDS_DATA

from vidaffect.errors import SourceError
from vidaffect_plugins.capture import ImageFolderSource, StreamSource, VideoFileSource

CLIP = DATA / "videos" / "liveportrait_d0.mp4"


def read_all(src, limit: int = 10_000) -> list[tuple[np.ndarray, float | None]]:
    out = []
    while len(out) < limit:
        item = src.read()
        if item is None:
            break
        out.append(item)
    return out


def n_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    return n


@NEEDS_DATA
def test_video_file_every_frame_offline() -> None:
    src = VideoFileSource(VideoFileSource.Config(uri=str(CLIP)))
    info = src.open()
    frames = read_all(src)
    src.close()
    assert not info.live and info.fps == pytest.approx(25, abs=0.1)
    assert len(frames) == n_frames(CLIP) == info.frame_count
    img, pts = frames[10]
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    assert pts == pytest.approx(400.0)


@NEEDS_DATA
def test_fake_camera_is_paced_and_timed_like_a_camera() -> None:
    from vidaffect.testing import FakeCamera

    src = FakeCamera(FakeCamera.Config(uri=str(CLIP), max_frames=6, resize=128))
    info = src.open()
    t0 = time.monotonic()
    frames = read_all(src)
    elapsed = time.monotonic() - t0
    src.close()
    assert info.live and len(frames) == 6 and frames[0][0].shape == (128, 128, 3)
    assert elapsed >= 5 / info.fps * 0.9  # released at the clip's rate, not as fast as decoded
    assert [pts for _, pts in frames] == [None] * 6  # timed by capture, as cameras are


@NEEDS_DATA
def test_fps_subsampling_and_resize() -> None:
    src = VideoFileSource(VideoFileSource.Config(uri=str(CLIP), fps=12.5, resize=256))
    info = src.open()
    frames = read_all(src)
    assert len(frames) == info.frame_count == (n_frames(CLIP) + 1) // 2
    assert frames[0][0].shape == (256, 256, 3)
    assert frames[1][1] == pytest.approx(80.0)


@NEEDS_DATA
def test_loop_restarts_the_file() -> None:
    src = VideoFileSource(VideoFileSource.Config(uri=str(CLIP), loop=True))
    info = src.open()
    frames = read_all(src, limit=n_frames(CLIP) + 5)
    assert info.frame_count is None
    assert len(frames) == n_frames(CLIP) + 5
    assert np.array_equal(frames[0][0], frames[n_frames(CLIP)][0])


@NEEDS_DATA
def test_live_mode_file_is_paced_at_its_fps() -> None:
    import time

    src = VideoFileSource(VideoFileSource.Config(uri=str(CLIP), mode="live"))
    assert src.open().live
    t0 = time.monotonic()
    read_all(src, limit=26)
    assert time.monotonic() - t0 >= 0.95  # 26 frames at 25 fps take a second


@NEEDS_DATA
def test_image_folder_one_frame_per_image(tmp_path: Path) -> None:
    src = ImageFolderSource(ImageFolderSource.Config(uri=str(DATA / "photos")))
    info = src.open()
    frames = read_all(src)
    assert len(frames) == info.frame_count == 8
    first = cv2.imread(str(sorted((DATA / "photos").glob("*.jpg"))[0]))
    assert np.array_equal(frames[0][0], first)


def test_image_folder_names_each_frame_and_skips_undecodable_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for i, name in enumerate(["b.png", "c.jpg", "d.jpg"]):
        cv2.imwrite(str(tmp_path / name), np.full((20, 30, 3), 40 * (i + 1), np.uint8))
    (tmp_path / "a_broken.jpg").write_bytes(b"not a jpeg")  # sorts first
    (tmp_path / "c2_empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("ignored")
    src = ImageFolderSource(ImageFolderSource.Config(uri=str(tmp_path)))
    info = src.open()
    assert (info.width, info.height, info.frame_count) == (30, 20, 5)  # size from b.png
    assert src.take_meta() == {}  # nothing read yet
    names, values = [], []
    while (item := src.read()) is not None:
        names.append(src.take_meta()["image_file"])
        values.append(int(item[0][0, 0, 0]))
    assert names == ["b.png", "c.jpg", "d.jpg"]
    assert np.allclose(values, [40, 80, 120], atol=2)  # jpeg may move a flat colour by a level
    assert src.skipped == 2
    err = caplog.text  # logged as warnings by the vidaffect_plugins.capture logger
    assert "skipped a_broken.jpg" in err and "skipped c2_empty.png" in err


def test_image_folder_names_that_are_not_utf8(tmp_path: Path) -> None:
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9.png"  # Latin-1, not UTF-8
    ok, png = cv2.imencode(".png", np.full((8, 8, 3), 7, np.uint8))
    assert ok
    with open(raw, "wb") as f:
        f.write(png.tobytes())
    src = ImageFolderSource(ImageFolderSource.Config(uri=str(tmp_path)))
    src.open()
    img, _ = src.read()
    assert img.shape == (8, 8, 3) and src.take_meta() == {"image_file": "caf\ufffd.png"}


def test_image_folder_errors_when_nothing_decodes(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"junk")
    with pytest.raises(SourceError, match="none of the 1 image files"):
        ImageFolderSource(ImageFolderSource.Config(uri=str(tmp_path))).open()
    cv2.imwrite(str(tmp_path / "b.png"), np.zeros((4, 4, 3), np.uint8))
    src = ImageFolderSource(ImageFolderSource.Config(uri=str(tmp_path), loop=True))
    src.open()
    assert src.read() is not None and src.read() is not None  # b.png, then b.png again
    (tmp_path / "b.png").unlink()  # the folder empties while looping: an error, not a hang
    with pytest.raises(SourceError, match="no image .* can be decoded any more"):
        src.read()


def test_missing_file_and_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="video file not found"):
        VideoFileSource.Config(uri=str(tmp_path / "none.mp4"))
    with pytest.raises(ValueError, match="image folder not found"):
        ImageFolderSource.Config(uri=str(tmp_path / "none"))
    with pytest.raises(ValueError, match=r"none\.mp4 \(relative to the current folder /"):
        VideoFileSource.Config(uri="none.mp4")
    with pytest.raises(SourceError, match="no images"):
        ImageFolderSource(ImageFolderSource.Config(uri=str(tmp_path))).open()


def test_corrupt_video_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    src = VideoFileSource(VideoFileSource.Config(uri=str(bad)))
    with pytest.raises(SourceError, match="bad.mp4"):
        src.open()


def test_unreachable_stream_is_a_clear_error() -> None:
    from vidaffect.runtime.transport import free_tcp_port

    port = free_tcp_port()
    url = f"rtsp://127.0.0.1:{port}/none"
    src = StreamSource(StreamSource.Config(uri=url, open_timeout_ms=1000))
    with pytest.raises(
        SourceError, match=f"cannot open rtsp://127.0.0.1.*nothing answers at 127.0.0.1:{port}"
    ):
        src.open()
    with pytest.raises(ValueError, match="expected a URL"):
        StreamSource.Config(uri="camera")


def test_tcp_reachable_tells_a_listening_port_from_a_closed_one() -> None:
    import socket

    from vidaffect_plugins.capture import tcp_reachable

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert tcp_reachable(f"rtsp://127.0.0.1:{port}/stream", 1.0) == (f"127.0.0.1:{port}", True)
    assert tcp_reachable(f"rtsp://127.0.0.1:{port}/stream", 1.0) == (f"127.0.0.1:{port}", False)
    assert tcp_reachable("rtsp://127.0.0.1/stream", 0.5)[0] == "127.0.0.1:554"  # RTSP's default port
    assert tcp_reachable("clip.mp4", 1.0) is None and tcp_reachable("udp://239.0.0.1:5000", 1.0) is None


def test_a_device_index_may_be_a_yaml_number() -> None:
    from vidaffect_plugins.capture import WebcamSource

    assert WebcamSource.Config(uri=0).uri == "0"  # `uri: 0` and `--set source.uri=1`
    assert WebcamSource.Config(uri="/dev/video0").uri == "/dev/video0"
    with pytest.raises(ValueError):
        WebcamSource.Config(uri=True)


def huge_png(path: Path, side: int = 20000) -> Path:
    """A 20000x20000 PNG (400 MP, 1.2 GB once decoded to BGR) of a few hundred kilobytes,
    written from a 1-bit image so the test itself stays small."""
    from PIL import Image

    Image.new("1", (side, side), 0).save(path)
    return path


def test_images_above_the_pixel_limit_are_refused_or_decoded_smaller(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from PIL import Image

    from vidaffect.imaging.imagefile import ImageTooLarge, decode_bounded

    photos = tmp_path / "photos"
    photos.mkdir()
    huge_png(photos / "a_bomb.png")
    Image.new("L", (9000, 6000), 128).save(photos / "b_big.jpg", quality=80)  # 54 MP
    cv2.imwrite(str(photos / "c_small.png"), np.full((40, 60, 3), 200, np.uint8))
    with pytest.raises(ImageTooLarge, match="20000x20000 PNG image .400 MP. is above the limit of 50 MP"):
        decode_bounded(np.fromfile(photos / "a_bomb.png", np.uint8))
    src = ImageFolderSource(ImageFolderSource.Config(uri=str(photos)))
    src.open()
    frames = read_all(src)
    src.close()
    # the bomb skipped without being decoded; the big JPEG decoded at half size by libjpeg
    assert [img.shape for img, _ in frames] == [(3000, 4500, 3), (40, 60, 3)]
    assert src.skipped == 1 and "skipped a_bomb.png (20000x20000 PNG image" in caplog.text
