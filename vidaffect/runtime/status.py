"""The live status line of a run (tqdm): frames done, fps, faces, dropped, lost."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class StatusLine:
    """Shows progress of the pipeline's last stage on stderr.

    Args:
        total: frames the source will emit when known (a file), else None (live).
        kinds: stage name -> plugin kind (``source``, ``detector``, ``classifier``, ``sink``).
    """

    def __init__(self, total: int | None, kinds: dict[str, str]) -> None:
        self.kinds = kinds
        self.bar = tqdm(
            total=total,
            unit="frame",
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.5,
            leave=True,
            disable=None,
        )
        self.done = 0

    def update(self, stages: dict[str, dict[str, Any]]) -> None:
        if not stages:
            return
        names = list(stages)
        dropped = sum(int(v.get("dropped") or 0) for k, v in stages.items() if self.kinds.get(k) == "source")
        sinks = [v for k, v in stages.items() if self.kinds.get(k) == "sink"]
        last = sinks[0] if sinks else stages[names[-1]]
        done = int(last.get("frames_out") or 0)
        if done > self.done:
            self.bar.update(done - self.done)
            self.done = done
        faces = max((int(s.get("faces") or 0) for s in stages.values()), default=0)
        self.bar.set_postfix(
            faces=faces,
            dropped=dropped,
            lost=sum(int(s.get("lost") or 0) for s in stages.values()),
            refresh=False,
        )

    def close(self) -> None:
        self.bar.close()
