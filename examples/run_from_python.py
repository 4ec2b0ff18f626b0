"""Run a pipeline from your own Python program and use its result.

    python examples/run_from_python.py CLIP.mp4 OUT_DIR [--max-frames N]

Builds the pipeline from a mapping (the same keys as a pipeline YAML file), runs it to the end
of the clip, then prints each stage's counters and the emotions counted in the events file.

Each stage is a process started with multiprocessing's "spawn" method, which imports this
file again (as ``__mp_main__``) in every stage: keep the run under
``if __name__ == "__main__":`` and keep heavy imports (torch, your own models) out of the top
of the file, or every stage loads them too.
"""

import argparse
import collections
import json
from pathlib import Path

from vidaffect.config import validate
from vidaffect.errors import VidaffectError
from vidaffect.runtime.supervisor import raise_for_errors, run_pipeline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", help="a video file")
    parser.add_argument("out", type=Path, help="folder for events.jsonl")
    parser.add_argument("--max-frames", type=int, default=None)
    args = parser.parse_args()

    events = args.out / "events.jsonl"
    pipeline = {
        "pipeline": {"stream_id": "clip"},
        "source": {"type": "video", "uri": args.clip, "max_frames": args.max_frames},
        "detector": {"type": "mtcnn", "preset": "fast"},
        "classifier": {"type": "fer", "checkpoint": "default"},
        "tracking": {"detect_every": 5},
        "sinks": [{"type": "jsonl", "path": str(events)}],
    }
    try:
        config = validate(pipeline, "run_from_python")  # ConfigError names the stage and key
        result = run_pipeline(config, show_status=False)
        raise_for_errors(result)  # StageError with the traceback of a crashed stage
    except VidaffectError as err:
        print(f"error: {err}")
        return 1

    for stage, counters in result.stages.items():
        print(f"{stage:<12} in {counters['frames_in']:>5}  out {counters['frames_out']:>5}")
    labels = collections.Counter()
    for line in events.read_text().splitlines():
        event = json.loads(line)
        if event["type"] == "frame":
            labels.update(face["emotion"]["label"] for face in event["faces"] if face["emotion"])
    print(f"{result.wall_s:.1f} s; emotions per face and frame: {dict(labels.most_common())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
