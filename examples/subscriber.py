"""Print the emotions of every face as vidaffect publishes them (needs only pyzmq).

Run a pipeline with a `zmq_events` sink (configs/video.yaml has one), then:
    python examples/subscriber.py tcp://127.0.0.1:5560 [STREAM_ID]

Each message is two frames, [stream id, JSON event]. ZeroMQ subscriptions match prefixes
(subscribing to "cam1" also delivers "cam10"), so the stream id is compared whole.
"""

import json
import sys

import zmq

endpoint = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5560"
stream = sys.argv[2] if len(sys.argv) > 2 else ""  # "": every stream
sock = zmq.Context().socket(zmq.SUB)
sock.connect(endpoint)
sock.setsockopt(zmq.SUBSCRIBE, stream.encode())
try:
    while True:
        topic, payload = sock.recv_multipart()
        if stream and topic.decode() != stream:
            continue
        event = json.loads(payload)
        if event["type"] == "change":  # a face track's smoothed emotion changed (or the track ended)
            print(
                topic.decode(), event["seq"], f"track {event['track_id']}: {event['from']} -> {event['to']}"
            )
            continue
        if event["type"] != "frame":  # e.g. "gap": a live stream came back after a break
            print(topic.decode(), event["seq"], event["type"], flush=True)
            continue
        faces = [
            f"{f['emotion']['label']} {f['emotion']['score']:.2f}" for f in event["faces"] if f["emotion"]
        ]
        print(topic.decode(), event["seq"], ", ".join(faces) or "no face", flush=True)
except KeyboardInterrupt:  # Ctrl-C: stop quietly
    pass
finally:
    sock.close(linger=0)
