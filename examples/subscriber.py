"""Print the emotions of every face as vidaffect publishes them (needs only pyzmq).

Run a pipeline with a `zmq_events` sink (configs/video.yaml has one), then:
    python examples/subscriber.py tcp://127.0.0.1:5560
"""

import json
import sys

import zmq

endpoint = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:5560"
sock = zmq.Context().socket(zmq.SUB)
sock.connect(endpoint)
sock.setsockopt(zmq.SUBSCRIBE, b"")  # every stream; use b"cam0" for one stream id
while True:
    topic, payload = sock.recv_multipart()
    event = json.loads(payload)
    if event["type"] == "change":  # a face track's smoothed emotion changed (or the track ended)
        print(topic.decode(), event["seq"], f"track {event['track_id']}: {event['from']} -> {event['to']}")
        continue
    if event["type"] != "frame":  # e.g. "gap": a live stream came back after a break
        print(topic.decode(), event["seq"], event["type"], flush=True)
        continue
    faces = [f"{f['emotion']['label']} {f['emotion']['score']:.2f}" for f in event["faces"] if f["emotion"]]
    print(topic.decode(), event["seq"], ", ".join(faces) or "no face", flush=True)
