"""``vidaffect dashboard``: a small Starlette app over a :class:`~vidaffect.dashboard.feed.Feed`.

Pages: ``/`` (the streams), ``/streams/ID`` (live video, tracks, emotion timeline, stage
counters). Video: ``/streams/ID/mjpeg`` (``multipart/x-mixed-replace`` JPEGs, as IP cameras
serve them; one ``<img>`` shows it). JSON API: ``/api/streams``, ``/api/streams/ID/tracks``,
``/api/streams/ID/timeline``, ``/api/streams/ID/events`` (recent events), ``/api/pipelines``
(stage counters), and ``/api/streams/ID/sse`` (server-sent events: tracks, mood and counters
twice a second). With a token, every request needs ``?token=TOKEN`` or ``Authorization: Bearer
TOKEN``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from vidaffect.dashboard.feed import Feed

STATIC = Path(__file__).resolve().parent / "static"
BOUNDARY = "vidaffectframe"
MJPEG_POLL_S = 0.02
SSE_EVERY_S = 0.5


NO_MOOD = {"label": None, "score": None, "faces": 0}
"""The mood shown before a stream's first ``faces`` message."""


class TokenRequired:
    """ASGI middleware: every HTTP request needs ``?token=TOKEN`` or ``Authorization: Bearer
    TOKEN`` (compared in constant time); others get 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            given = request.query_params.get("token", "")
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                given = auth[7:]
            if not hmac.compare_digest(given.encode(), self.token):
                error = {"error": "a token is required (?token=... or Authorization: Bearer ...)"}
                await JSONResponse(error, status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Dashboard:
    """The route handlers over ``feed``."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed

    def snapshot(self, stream: str) -> dict[str, Any] | None:
        """What the stream page shows now, or None for an unknown stream."""
        feed = self.feed
        with feed.lock:
            view = feed.streams.get(stream)
            if view is None:
                return None
            faces = list(view.faces.get("faces", []))
            stats = feed.stats.get(view.pipeline, {})
            return {
                "stream": stream,
                "pipeline": view.pipeline,
                "ended": view.ended,
                "preview_fps": round(view.fps(), 1),
                "seq": view.faces.get("seq"),
                "size": view.faces.get("size"),
                "faces": faces,
                "mood": view.faces.get("mood") or NO_MOOD,  # the preview sink's, as MQTT's
                "stats": stats.get("stages", {}),
            }

    async def streams(self, request: Request) -> Response:
        with self.feed.lock:
            names = sorted(self.feed.streams)
        return JSONResponse([self.snapshot(n) for n in names])

    async def tracks(self, request: Request) -> Response:
        snap = self.snapshot(request.path_params["stream"])
        if snap is None:
            return JSONResponse({"error": "no such stream"}, status_code=404)
        return JSONResponse(snap["faces"])

    async def timeline(self, request: Request) -> Response:
        return JSONResponse(self.feed.timeline(request.path_params["stream"]))

    async def events(self, request: Request) -> Response:
        with self.feed.lock:
            view = self.feed.streams.get(request.path_params["stream"])
            got = list(view.events) if view is not None else []
        return JSONResponse(got)

    async def pipelines(self, request: Request) -> Response:
        with self.feed.lock:
            return JSONResponse(dict(self.feed.stats))

    async def _jpegs(self, request: Request, stream: str) -> AsyncIterator[bytes]:
        seen = -1
        while not await request.is_disconnected():
            with self.feed.lock:
                view = self.feed.streams.get(stream)
                jpeg, version = (view.jpeg, view.jpeg_version) if view is not None else (b"", -1)
            if version != seen and jpeg:
                seen = version
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                yield head.encode() + jpeg + b"\r\n"
            await asyncio.sleep(MJPEG_POLL_S)

    async def mjpeg(self, request: Request) -> Response:
        frames = self._jpegs(request, request.path_params["stream"])
        return StreamingResponse(frames, media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}")

    async def _updates(self, request: Request, stream: str) -> AsyncIterator[str]:
        while not await request.is_disconnected():
            snap = self.snapshot(stream)
            if snap is not None:
                yield f"data: {json.dumps(snap, separators=(',', ':'))}\n\n"
            await asyncio.sleep(SSE_EVERY_S)

    async def sse(self, request: Request) -> Response:
        updates = self._updates(request, request.path_params["stream"])
        return StreamingResponse(
            updates, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC / "dashboard.html")


def create_app(feed: Feed, token: str | None = None) -> Starlette:
    """The dashboard app for ``feed``; ``token`` (if any) is required on every request."""
    d = Dashboard(feed)
    routes = [
        Route("/", d.page),
        Route("/streams/{stream}", d.page),
        Route("/streams/{stream}/mjpeg", d.mjpeg),
        Route("/api/streams", d.streams),
        Route("/api/streams/{stream}/tracks", d.tracks),
        Route("/api/streams/{stream}/timeline", d.timeline),
        Route("/api/streams/{stream}/events", d.events),
        Route("/api/streams/{stream}/sse", d.sse),
        Route("/api/pipelines", d.pipelines),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(TokenRequired, token=token)] if token is not None else []
    return Starlette(routes=routes, middleware=middleware)


def serve(endpoints: list[str], host: str, port: int, token: str | None, timeline_s: int = 300) -> None:
    """Run the dashboard until interrupted (uvicorn, one process).

    Raises:
        OSError: the port cannot be bound.
    """
    import uvicorn

    feed = Feed(endpoints, timeline_s)
    try:
        uvicorn.run(create_app(feed, token), host=host, port=port, log_level="warning")
    finally:
        feed.close()
