"""What a processing stage does with the in-order frames it receives, one class per stage kind.

Runs of frames between EOS markers are handed to the plugin together. The detector stage also
tracks faces (with a ``tracking`` section); the last stage before the sinks then smooths each
track's emotion and notes label changes, once per frame, so that every sink gets the same labels.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from vidaffect.api import Classifier, Detector, Plugin, Sink
from vidaffect.frames import Detections, Frame
from vidaffect.runtime.codec import encode_eos, encode_outage

if TYPE_CHECKING:
    from vidaffect.runtime.stage import StageContext

Item = tuple[dict[str, Any], Frame | None]


class Applier:
    """The common part: split items into runs, apply the plugin, smooth, count, pass on."""

    def __init__(self, sc: StageContext, plugin: Plugin) -> None:
        self.sc, self.plugin = sc, plugin
        self.smoother = None
        smoothing = sc.spec.smoothing
        if smoothing:
            from vidaffect.analytics.smoothing import Smoother

            self.smoother = Smoother(
                smoothing["smoothing"], smoothing["alpha"], smoothing["window"], smoothing["hysteresis"]
            )

    def __call__(self, items: list[Item]) -> bool:
        """Process ``items`` (frames and EOS markers, in order); False when aborted."""
        run: list[Frame] = []
        for hdr, item in items:
            if item is not None:
                run.append(item)
                continue
            if run and not self._frames(run):
                return False
            run = []
            if not self._eos(hdr):
                return False
        return self._frames(run) if run else True

    def apply(self, frames: list[Frame]) -> None:
        """The plugin's work on a run of frames (in place)."""
        raise NotImplementedError

    def _frames(self, frames: list[Frame]) -> bool:
        m = self.sc.metrics
        t0 = time.perf_counter()
        self.apply(frames)
        if self.smoother is not None:
            for frame in frames:
                self.smoother.apply(frame)
        m.busy_s += time.perf_counter() - t0
        for frame in frames:
            m.faces += len(frame.meta.get("faces", ()))
            m.observe_latency(frame.ts_ns)
            if self.sc.outputs and not self.sc.send_frame(frame):
                return False
            m.frames_out += 1
        return True

    def outage(self, hdr: dict[str, Any]) -> bool:
        """An outage notice: passed on at once; False when aborted while sending."""
        return self.sc.send_all(encode_outage(hdr["stream"], hdr["seq"], hdr["meta"]))

    def end_of_stream(self, stream: str, info: dict[str, Any]) -> None:
        """What the stage does at a stream's end besides passing EOS on (sinks: the plugin's)."""

    def _eos(self, hdr: dict[str, Any]) -> bool:
        stream, meta = hdr["stream"], dict(hdr["meta"])
        if self.smoother is not None:  # the tracks still labelled end with the stream
            meta["changes"] = meta.get("changes", []) + self.smoother.end_stream(stream)
        self.end_of_stream(stream, {**meta, "frames": hdr["seq"]})
        self.sc.eos_totals[stream] = hdr["seq"]
        return self.sc.broadcast(encode_eos(stream, hdr["seq"], meta))


class DetectorApplier(Applier):
    """Finds faces; with tracking, runs the detector only on the frames that need it and lets
    the tracker fill the others (:mod:`vidaffect.analytics.tracking`)."""

    plugin: Detector

    def __init__(self, sc: StageContext, plugin: Detector) -> None:
        super().__init__(sc, plugin)
        self.tracking = None
        if sc.spec.tracking:
            from vidaffect.analytics.tracking import Tracking

            self.tracking = Tracking(sc.spec.tracking)

    def apply(self, frames: list[Frame]) -> None:
        m = self.sc.metrics
        if self.tracking is None:
            for frame, found in zip(frames, self.plugin.detect([f.image for f in frames])):
                frame.meta["faces"] = found.to_faces()
            m.detected += len(frames)
            return
        for frame in frames:
            tracker = self.tracking.tracker(frame)
            dets: Detections | None = None
            if tracker.needs_detection(frame):
                dets = self.plugin.detect([frame.image])[0]
                m.detected += 1
            frame.meta["tracks_ended"] = tracker.update(frame, dets)


class ClassifierApplier(Applier):
    """Adds each face's results."""

    plugin: Classifier

    def apply(self, frames: list[Frame]) -> None:
        self.plugin.classify(frames)


class SinkApplier(Applier):
    """Hands frames, outages, stream ends and (when it asks) the run's counters to the sink."""

    plugin: Sink

    def apply(self, frames: list[Frame]) -> None:
        if self.sc.run_stats is not None:
            stats, self.sc.run_stats = self.sc.run_stats, None
            self.plugin.run_stats(stats)
        for frame in frames:
            self.plugin.write(frame)

    def outage(self, hdr: dict[str, Any]) -> bool:
        self.plugin.outage(hdr["stream"], {**hdr["meta"], "frames": hdr["seq"]})
        return True

    def end_of_stream(self, stream: str, info: dict[str, Any]) -> None:
        self.plugin.end_of_stream(stream, info)


def make_applier(sc: StageContext, plugin: Plugin) -> Applier:
    """The applier of ``plugin``'s kind.

    Raises:
        TypeError: ``plugin`` is a source (sources have their own loop).
    """
    if isinstance(plugin, Detector):
        return DetectorApplier(sc, plugin)
    if isinstance(plugin, Classifier):
        return ClassifierApplier(sc, plugin)
    if isinstance(plugin, Sink):
        return SinkApplier(sc, plugin)
    raise TypeError(f"no applier for a {type(plugin).__name__}")
