"""A real HTTP server on 127.0.0.1 that records what it receives, for tests and benchmarks of
the ``webhook`` sink: each request becomes one JSON line (``method``, ``path``, ``headers``,
``body`` as text) in ``--out``. ``--delay`` makes it slow; ``--fail-first N`` answers the first N
requests with 500 (retries); ``--status`` answers every request with that code.

    python -m vidaffect.testing.http_receiver --port 8099 --out requests.jsonl

:class:`HttpReceiver` starts and stops it by PID.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    ap.add_argument("--fail-first", type=int, default=0, help="answer the first N requests with 500")
    ap.add_argument("--status", type=int, default=200)
    args = ap.parse_args(argv)
    lock = threading.Lock()
    seen = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(args.delay)
            with lock:
                seen[0] += 1
                n = seen[0]
                record = {
                    "n": n,
                    "method": "POST",
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body.decode("utf-8", "replace"),
                    "t": time.time(),
                }
                with args.out.open("a") as f:
                    f.write(json.dumps(record) + "\n")
            status = 500 if n <= args.fail_first else args.status
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *a: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    sys.stdout.write(f"ready http://127.0.0.1:{args.port}\n")
    sys.stdout.flush()
    server.serve_forever()
    return 0


class HttpReceiver:
    """The receiver in a subprocess on a free port; :meth:`requests` reads what it recorded."""

    def __init__(self, folder: Path, port: int, **options: float | int) -> None:
        self.port, self.out = port, folder / f"requests-{port}.jsonl"
        self.url = f"http://127.0.0.1:{port}/hook"
        cmd = [
            sys.executable,
            "-m",
            "vidaffect.testing.http_receiver",
            "--port",
            str(port),
            "--out",
            str(self.out),
        ]
        for key, value in options.items():
            cmd += [f"--{key.replace('_', '-')}", str(value)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError(f"the HTTP receiver did not start on port {port}")

    def requests(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.endswith("}")]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


if __name__ == "__main__":
    raise SystemExit(main())
