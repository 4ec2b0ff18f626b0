"""How fast the ``mqtt`` sink gets events to a subscriber through a real mosquitto on 127.0.0.1.

Each frame carries two tracked faces and one label change, so each ``write`` publishes the
retained state that changed and one ``change`` event. Prints, per broker setting and QoS: in a
burst, the events a subscriber received per second (end to end, until the last one arrived),
the sink's time per frame inside ``write`` and the events dropped (paho's queue of
:data:`~vidaffect_plugins.sinks.mqtt.MAX_QUEUED` full); paced like four 30 fps cameras, the
events received of those sent and the CPU of the process (the sink and the subscriber).

    python -m benchmarks.mqtt_rate [--frames 2000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from vidaffect.frames import Frame
from vidaffect.testing.mqtt import Broker, Recorder
from vidaffect.testing.probe import wait_until
from vidaffect_plugins.sinks.mqtt import MqttSink

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def _frame(seq: int) -> Frame:
    faces: list[dict[str, Any]] = []
    for tid in (1, 2):
        label = LABELS[(seq + tid) % 7]
        probs = [0.05] * 7
        probs[LABELS.index(label)] = 0.7
        emo = {"label": label, "score": 0.7, "probs": probs}
        faces.append(
            {
                "bbox": [10.0, 10.0, 60.0, 60.0],
                "score": 0.99,
                "track_id": tid,
                "emotion": emo,
                "smoothed": emo,
            }
        )
    change = {"track_id": 1, "from": LABELS[seq % 7], "to": LABELS[(seq + 1) % 7], "score": 0.7}
    meta = {"faces": faces, "labels": LABELS, "changes": [change]}
    return Frame(np.zeros((48, 64, 3), np.uint8), "cam0", seq, time.time_ns(), None, meta)


def paced(sink: MqttSink, sub: Recorder, fps: float, seconds: float) -> tuple[int, int, float]:
    """Frames at ``fps`` for ``seconds``: (events sent, events received, CPU % of one core
    used by this process meanwhile: the sink with paho's network thread, and the subscriber)."""
    before = len(sub.on("vidaffect/cam0/events"))
    sent0 = sink.counters()["events_sent"]
    n = int(fps * seconds)
    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(n):
        delay = t0 + i / fps - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sink.write(_frame(10_000 + i))
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - t0
    sent = sink.counters()["events_sent"] - sent0
    wait_until(lambda: len(sub.on("vidaffect/cam0/events")) - before >= sent, "the paced events", timeout=60)
    return sent, len(sub.on("vidaffect/cam0/events")) - before, 100 * cpu / wall


def measure(folder: Path, nodelay: bool, qos: int, frames: int) -> dict[str, float]:
    broker = Broker(folder, nodelay=nodelay).start()
    try:
        sub = Recorder(broker.port, "vidaffect/cam0/events")
        sink = MqttSink(MqttSink.Config(port=broker.port, qos=qos))  # type: ignore[arg-type]
        sink.streams = ["cam0"]
        sink.open()
        batch = [_frame(i) for i in range(frames)]
        t0 = time.perf_counter()
        in_write = 0.0
        for f in batch:
            t = time.perf_counter()
            sink.write(f)
            in_write += time.perf_counter() - t
        sent = sink.counters()["events_sent"]
        wait_until(lambda: len(sub.on("vidaffect/cam0/events")) >= sent, "every event", timeout=120)
        elapsed = time.perf_counter() - t0
        received = len(sub.on("vidaffect/cam0/events"))
        dropped = sink.counters()["events_dropped"]
        p_sent, p_received, p_cpu = paced(sink, sub, 120.0, 5.0)
        sink.close()
        sub.close()
        return {
            "events_per_s": received / elapsed,
            "write_ms": 1000 * in_write / frames,
            "dropped": dropped,
            "paced_sent": p_sent,
            "paced_received": p_received,
            "paced_cpu": p_cpu,
        }
    finally:
        broker.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=2000)
    args = ap.parse_args(argv)
    print(f"burst: {args.frames} frames as fast as they come; paced: 120 frames/s for 5 s (4 cameras")
    print("at 30 fps); one change event per frame; mosquitto on 127.0.0.1")
    print(
        "| broker | QoS | burst: events/s received | burst: write ms/frame | burst: dropped "
        "| paced: received/sent | paced: CPU % of a core |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for nodelay in (True, False):
            for qos in (0, 1):
                r = measure(Path(tmp), nodelay, qos, args.frames)
                print(
                    f"| set_tcp_nodelay {'true' if nodelay else 'false'} | {qos} | {r['events_per_s']:,.0f} | "
                    f"{r['write_ms']:.3f} | {r['dropped']:.0f} | {r['paced_received']:.0f}/{r['paced_sent']:.0f} "
                    f"| {r['paced_cpu']:.1f} |"
                )


if __name__ == "__main__":
    main()
