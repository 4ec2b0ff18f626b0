"""Shot changes (hard cuts) in a stream, so that face tracks do not pass from one person to
another across a cut.

Uses PySceneDetect's ``ContentDetector`` (Castellano, PySceneDetect; a cut is a frame whose
weighted mean change of hue, saturation and luminance from the previous frame exceeds
``threshold``, 0-255 scale; at most one cut per ``min_scene_len`` frames). Frames are
downscaled to at most :data:`WIDTH` pixels wide first. ``python -m benchmarks.shots`` measures
its cost and its cuts on the sample clips and on clips joined with a cut.
"""

from __future__ import annotations

import cv2
import numpy as np
from scenedetect.common import FrameTimecode
from scenedetect.detectors import ContentDetector

from vidaffect.frames import Frame

WIDTH = 256  # pixels; the cut test needs colour statistics, not detail


class ShotCutDetector:
    """Tells whether each frame of one stream starts a new shot.

    Args:
        threshold: ContentDetector's threshold (PySceneDetect's default 27; lower finds
            softer cuts and more false ones).
        fps: the stream's frame rate (PySceneDetect keeps time codes).
        min_scene_frames: frames a shot lasts at least (PySceneDetect's default 15).
    """

    def __init__(self, threshold: float = 27.0, fps: float = 30.0, min_scene_frames: int = 15) -> None:
        self.detector = ContentDetector(threshold=threshold, min_scene_len=min_scene_frames)
        self.fps = fps if fps > 0 else 30.0
        self.frames = 0
        self.cuts = 0

    def is_cut(self, image_bgr: np.ndarray) -> bool:
        """Whether this frame (uint8 ``(H, W, 3)`` BGR, the stream's next frame) starts a new
        shot; never the first frame."""
        img = image_bgr
        h, w = img.shape[:2]
        if w > WIDTH:
            img = cv2.resize(img, (WIDTH, max(1, round(h * WIDTH / w))), interpolation=cv2.INTER_AREA)
        cut = bool(self.detector.process_frame(FrameTimecode(self.frames, self.fps), img))
        self.frames += 1
        self.cuts += cut
        return cut

    def frame_is_cut(self, frame: Frame) -> bool:
        """:meth:`is_cut` of ``frame.image``."""
        return self.is_cut(frame.image)
