"""The ``images`` sink: each frame annotated and written as an image file, a photo under its
own name, so a folder of photos gives a folder of annotated photos."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import cv2
from pydantic import Field

from vidaffect.api import PluginConfig, Sink
from vidaffect.errors import SinkError
from vidaffect.frames import Frame, safe_stream_name
from vidaffect.imaging.draw import annotate
from vidaffect_plugins.sinks.output_files import prepare_output

SUFFIXES = {"jpg": ".jpg", "png": ".png"}


class ImagesSink(Sink):
    """Writes annotated frames (:func:`vidaffect.imaging.draw.annotate`, uint8 BGR, full size) to
    ``folder``, one file per frame.

    A frame from an ``images`` source is written under its photo's name
    (``frame.meta["image_file"]``, sub-folders kept; with ``format: png`` or ``jpg`` the
    suffix is changed); other frames as ``<stream>-<seq, 6 digits>.jpg``. The pipeline's first
    stream writes into ``folder``, every other stream into ``folder/<stream>/``. Each file is
    written under a temporary name and renamed, so the folder never holds half an image.

    Attributes:
        files_written: images written so far.
    """

    name = "images"
    summary = "annotated image per frame (a photo under its own file name)"

    class Config(PluginConfig):
        folder: str = Field(min_length=1, description="output folder (created)")
        format: Literal["same", "jpg", "png"] = Field(
            "same", description="same: the photo's own format (JPEG for video frames); jpg; png"
        )
        jpeg_quality: int = Field(92, ge=1, le=100, description="JPEG quality 1-100")
        prob_bars: bool = Field(False, description="draw a probability bar per label beside each face")

    config: Config
    files_written: int = 0

    @classmethod
    def preflight(cls, config: PluginConfig) -> None:
        """Before any stage starts: the folder can be created and written to.

        Raises:
            SinkError: it cannot.
        """
        prepare_output(Path(config.folder) / "probe", "images")  # type: ignore[attr-defined]

    def open(self) -> None:
        """Create the folder and check that it is writable.

        Raises:
            SinkError: the folder cannot be created or written to.
        """
        self.folder = prepare_output(Path(self.config.folder) / "probe", "images").parent
        self.first_stream: str | None = None
        self.files_written = 0

    def path_of(self, frame: Frame) -> Path:
        """Where ``frame``'s image goes (see the class docstring)."""
        if self.first_stream is None:
            self.first_stream = self.streams[0] if self.streams else frame.stream
        folder = (
            self.folder if frame.stream == self.first_stream else self.folder / safe_stream_name(frame.stream)
        )
        name = frame.meta.get("image_file")
        if isinstance(name, str) and name and not Path(name).is_absolute() and ".." not in Path(name).parts:
            path = folder / name
            return path if self.config.format == "same" else path.with_suffix(SUFFIXES[self.config.format])
        suffix = SUFFIXES["png" if self.config.format == "png" else "jpg"]
        return folder / f"{safe_stream_name(frame.stream)}-{frame.seq:06d}{suffix}"

    def write(self, frame: Frame) -> None:
        """Annotate ``frame`` and write its file.

        Raises:
            SinkError: the image cannot be encoded or written (the path and the OS error
                named: a full disk, a read-only folder).
        """
        img = annotate(frame.image, frame.faces, frame.meta.get("labels"), self.config.prob_bars)
        path = self.path_of(frame)
        params = (
            [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality]
            if path.suffix.lower() in (".jpg", ".jpeg")
            else []
        )
        ok, data = cv2.imencode(path.suffix or ".jpg", img, params)
        if not ok:  # a suffix OpenCV cannot encode (.gif): JPEG beside it
            path = path.with_suffix(".jpg")
            ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality])
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data.tobytes())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise SinkError(f"images sink: cannot write {path}: {exc.strerror or exc}") from None
        self.files_written += 1
