"""Face tracks across frames: detect every N frames, let the tracker fill the frames between.

One :class:`StreamTracker` per stream lives in the detector stage (all of a stream's frames
reach the same detector worker, in order). It decides per frame whether the detector must
run, feeds detections to a ByteTrack tracker (Zhang et al., ECCV 2022; the implementation
of Roboflow's ``trackers`` package, which also predicts boxes with its Kalman filter) and
turns the result into the pipeline's face dicts with a ``track_id``.

When the detector runs:

* on the first frame and then at least every ``detect_every`` frames;
* on the next frame after a detection that left a track uncertain: a new face whose track
  is not yet confirmed (ByteTrack confirms it on its second matching detection), or a
  confirmed track that the detection missed;
* when a predicted box leaves the frame (the face is probably exiting);
* at a shot change (a hard cut, :mod:`vidaffect.analytics.shots`), where every track ends and the
  faces of the new shot start new tracks, so an id never passes from one person to another
  across a cut.

Every face the detector reports can start a track, whatever its score: the detector plugin
has already applied its own threshold (MTCNN's ``min_score``, Haar's ``min_neighbors``), so
ByteTrack's split into high- and low-score detections is switched off (both thresholds 0).

Between detections a face's box is its track's Kalman prediction (clipped to the frame);
its landmarks are the last detected landmarks moved and scaled with the box; its score is
the last detection score. Times come from the source: ``pts_ms`` for files (video time, so an
offline run tracks the same way at any processing speed), else the capture time. A file whose
time goes back (a looping file restarted) starts the tracks afresh, with ids that go on from
the previous ones (ids are unique within a stream); capture times that go back
(the wall clock stepped back) are moved just past the previous frame instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from vidaffect.analytics.shots import ShotCutDetector
from vidaffect.frames import Detections, Face, Frame

OUTSIDE_FRACTION = 0.15  # share of a predicted box's area outside the frame that triggers a detection


@dataclass
class _Track:
    bbox: np.ndarray  # last detected box, xyxy
    score: float
    landmarks: np.ndarray | None  # (5, 2) at the last detection


class StreamTracker:
    """Tracks the faces of one stream.

    Args:
        settings: the pipeline's ``tracking`` section as a dict (see
            :class:`vidaffect.config.TrackingSettings`): ``detect_every``, ``lost_after_s``,
            ``min_iou``.
        fps: the stream's nominal frame rate; ByteTrack scales its Kalman steps by it.
    """

    def __init__(self, settings: dict[str, Any], fps: float) -> None:
        self.settings = settings
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._tracker: ByteTrackTracker | None = None
        self._last_t: float | None = None
        self._since_detect = 0
        self._uncertain = True
        self._tracks: dict[int, _Track] = {}
        self._visible: set[int] = set()
        self._confirmed: dict[int, int] = {}  # ByteTrack's id -> stream id
        self._new: dict[Any, int] = {}  # ByteTrack tracklet not yet confirmed -> stream id
        self._next_id = 0  # ids are unique within the stream, also across restarted trackers
        self.detections_run = 0
        threshold = settings.get("cut_threshold")
        self.shots = ShotCutDetector(float(threshold), self.fps) if threshold else None
        self._cut_checked: tuple[str, int] | None = None
        self._cut = False

    def _is_cut(self, frame: Frame) -> bool:
        """Whether ``frame`` starts a new shot (checked once per frame, whichever of
        :meth:`needs_detection` and :meth:`update` comes first)."""
        if self.shots is None:
            return False
        if self._cut_checked != (frame.stream, frame.seq):
            self._cut_checked = (frame.stream, frame.seq)
            self._cut = self.shots.frame_is_cut(frame)
        return self._cut

    def _allocate(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _ids(self, tracker_ids: Any) -> list[int]:
        """Stream ids of ByteTrack's confirmed ids (any unknown to us gets a new one)."""
        out = []
        for t in map(int, tracker_ids):
            if t >= 0 and t not in self._confirmed:
                self._confirmed[t] = self._allocate()
            out.append(self._confirmed[t] if t >= 0 else -1)
        return out

    def _assign_ids(self, tracker_ids: np.ndarray) -> tuple[list[int], set[int]]:
        """Stream ids of one ``update``'s detections, in the result's order, and the ids of
        unconfirmed tracks that ByteTrack dropped.

        ByteTrack confirms a track (gives it an id) on its second matching detection and
        reports a new face with id -1. The face gets its stream id at once: the new tracklet
        is remembered with a fresh id, which becomes the track's id when ByteTrack confirms
        it, and ends (an "ended" id) if ByteTrack drops it unconfirmed.
        """
        assert self._tracker is not None  # update() makes one before it assigns ids
        tracklets = list(self._tracker.tracks)
        for tracklet in tracklets:  # confirmed by this update: keep the id its face already had
            if (
                tracklet.tracker_id >= 0
                and tracklet.tracker_id not in self._confirmed
                and tracklet in self._new
            ):
                self._confirmed[int(tracklet.tracker_id)] = self._new.pop(tracklet)
        dropped = {sid for tracklet, sid in self._new.items() if tracklet not in tracklets}
        self._new = {t: sid for t, sid in self._new.items() if t in tracklets}
        # Every detection is a high-score one (thresholds 0), so the unconfirmed detections of
        # the result are exactly the tracklets spawned by this update, in the same order.
        spawned = [t for t in tracklets if t.tracker_id < 0 and t not in self._new]
        ids = self._ids(tracker_ids)
        unassigned = [k for k, tid in enumerate(ids) if tid < 0]
        if len(spawned) == len(unassigned):
            for tracklet, k in zip(spawned, unassigned):
                ids[k] = self._new[tracklet] = self._allocate()
        return ids, dropped

    def _new_tracker(self) -> ByteTrackTracker:
        s = self.settings
        return ByteTrackTracker(
            lost_track_buffer=max(1, round(float(s["lost_after_s"]) * 30)),  # in 30 fps frames
            frame_rate=self.fps,
            minimum_consecutive_frames=1,
            minimum_iou_threshold=float(s["min_iou"]),
            # the detector has filtered its faces: any score starts a track (see module doc)
            track_activation_threshold=0.0,
            high_conf_det_threshold=0.0,
        )

    @staticmethod
    def frame_time(frame: Frame) -> float:
        """Seconds: the frame's position in a file, else its capture time."""
        return frame.pts_ms / 1000.0 if frame.pts_ms is not None else frame.ts_ns / 1e9

    def _starting(self, frame: Frame, t: float) -> bool:
        """No tracker yet, a new shot (a hard cut), or a file's time went back (a looping file
        restarted): begin afresh."""
        cut = self._is_cut(frame)
        return (
            self._tracker is None
            or cut
            or (frame.pts_ms is not None and self._last_t is not None and t < self._last_t)
        )

    def needs_detection(self, frame: Frame) -> bool:
        """Whether the detector must run on ``frame`` (call once per frame, in order)."""
        if self._starting(frame, self.frame_time(frame)):
            return True
        return self._uncertain or self._since_detect + 1 >= int(self.settings["detect_every"])

    def update(self, frame: Frame, detections: Detections | None) -> list[int]:
        """Set ``frame.meta["faces"]`` from ``detections`` (a detection frame) or from the
        track predictions (``None``); return the ids of tracks that ended at this frame.

        Each face dict has ``bbox`` (xyxy pixels of the frame), ``score``, ``landmarks`` (left
        out when the detector gives none), ``track_id`` (int, unique within the stream, from
        the face's first detection on) and ``tracked`` (True for a predicted box, False for a
        detected one). A face seen once and not found again by the next detection gets an id
        that ends at that detection (ByteTrack drops a track not confirmed by a second match).
        """
        t = self.frame_time(frame)
        ended: list[int] = []
        if self._starting(frame, t):
            ended = sorted(set(self._tracks) | set(self._new.values()))
            self._tracker, self._tracks, self._visible = self._new_tracker(), {}, set()
            self._confirmed, self._new, self._last_t = {}, {}, None
            if detections is None:
                detections = Detections.empty()
        assert self._tracker is not None  # _starting() made one if there was none
        if self._last_t is not None and t <= self._last_t:
            # ByteTrack skips a repeated timestamp and rejects an earlier one
            t = self._last_t + 1e-6
        self._last_t = t
        width, height = frame.size
        if detections is not None:
            self.detections_run += 1
            self._since_detect = 0
            det = sv.Detections(
                xyxy=detections.boxes.astype(np.float32).reshape(-1, 4),
                confidence=detections.scores.astype(np.float32),
                data={"index": np.arange(len(detections))},
            )
            result = self._tracker.update(det, timestamp=t)
            stream_ids, dropped = self._assign_ids(np.asarray(result.tracker_id))
            ended.extend(sorted(dropped))
            ids = {int(i): tid for i, tid in zip(result.data.get("index", ()), stream_ids)}
            new_ids = set(self._new.values())
            faces = detections.to_faces()
            visible: set[int] = set()
            for i, face in enumerate(faces):
                tid = ids.get(i, -1)
                face["track_id"] = None if tid < 0 else tid
                face["tracked"] = False
                if tid >= 0 and tid not in new_ids:
                    visible.add(tid)
                    lm = None if detections.landmarks is None else detections.landmarks[i].copy()
                    self._tracks[tid] = _Track(detections.boxes[i].copy(), float(detections.scores[i]), lm)
            missed = self._visible - visible
            self._visible = visible
            self._uncertain = bool(self._new) or any(f["track_id"] is None for f in faces) or bool(missed)
        else:
            self._since_detect += 1
            self._tracker.update(sv.Detections.empty(), timestamp=t)
            tracked = self._tracker.tracked_objects
            faces = []
            for box, tid in zip(tracked.xyxy, self._ids(tracked.tracker_id)):
                if tid not in self._visible or tid not in self._tracks:
                    continue
                if _outside(box, width, height) > OUTSIDE_FRACTION:
                    self._uncertain = True
                box = np.clip(np.asarray(box, np.float32), 0, [width, height, width, height])
                if box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
                    faces.append(self._predicted_face(tid, box))
        alive = set(self._ids(self._tracker.tracked_objects.tracker_id))
        for tid in sorted(set(self._tracks) - alive):
            del self._tracks[tid]
            self._visible.discard(tid)
            ended.append(tid)
        frame.meta["faces"] = faces
        frame.meta["detected"] = detections is not None
        return ended

    def _predicted_face(self, tid: int, box: np.ndarray) -> Face:
        track = self._tracks[tid]
        x1, y1, x2, y2 = (float(v) for v in box)
        face: Face = {
            "bbox": [round(v, 2) for v in (x1, y1, x2, y2)],
            "score": round(track.score, 4),
            "track_id": tid,
            "tracked": True,
        }
        if track.landmarks is not None:
            ox1, oy1, ox2, oy2 = (float(v) for v in track.bbox)
            sx = (x2 - x1) / max(ox2 - ox1, 1e-6)
            sy = (y2 - y1) / max(oy2 - oy1, 1e-6)
            pts = (track.landmarks - [ox1, oy1]) * [sx, sy] + [x1, y1]
            face["landmarks"] = [[round(float(x), 2), round(float(y), 2)] for x, y in pts]
        return face


def _outside(box: np.ndarray, width: int, height: int) -> float:
    """Fraction of the box's area outside the ``width`` x ``height`` frame."""
    x1, y1, x2, y2 = (float(v) for v in box)
    area = max(x2 - x1, 0.0) * max(y2 - y1, 0.0)
    if area <= 0:
        return 1.0
    ix = max(0.0, min(x2, width) - max(x1, 0.0))
    iy = max(0.0, min(y2, height) - max(y1, 0.0))
    return 1.0 - ix * iy / area


class Tracking:
    """The trackers of every stream a detector worker sees."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.streams: dict[str, StreamTracker] = {}

    def tracker(self, frame: Frame) -> StreamTracker:
        """The tracker of ``frame``'s stream, created on its first frame with the stream's
        ``meta["fps"]`` (30 when the source gave none)."""
        st = self.streams.get(frame.stream)
        if st is None:
            st = self.streams[frame.stream] = StreamTracker(self.settings, frame.meta.get("fps") or 30.0)
        return st
