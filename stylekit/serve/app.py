"""The web app of ``stylekit serve``: a Starlette application over the runs and uploads of one server.

Every request a client can get wrong ends in a 4xx with ``{"error": "one line"}``; nothing unexpected shows a
traceback (it goes to the server's log and the client gets a 500 with one line). State-changing requests
must carry the header ``X-Stylekit: 1``, which a page of another site cannot send without the browser asking
first (CORS), and the server never allows it; on a loopback address the ``Host`` header must name this
machine, so a foreign site that re-points its own name at 127.0.0.1 (DNS rebinding) gets nothing.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..errors import ConfigError, StylekitError
from .config import ServeConfig, is_local
from .runs import Runner
from .settings import MEDIA, controls, parse_settings, with_masks
from .uploads import KINDS, UploadRefused, Uploads

__all__ = ["create_app", "STATIC", "MAX_JSON_BYTES", "MAX_STYLES"]

log = logging.getLogger("stylekit.serve")

STATIC = resources.files("stylekit.serve") / "static"
#: Largest JSON body the API reads (a run's settings are a few hundred bytes).
MAX_JSON_BYTES = 64 * 1024
#: Most style files of one run.
MAX_STYLES = 8
#: The page loads only its own files: no script, style, image or connection from anywhere else.
_CSP = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
_MEDIA_TYPES = {"image": "image/png", "audio": "audio/wav"}


def _public(message: str, uploads: Path) -> str:
    """A message without the server's private folder in it (an upload's file is named by its id)."""
    return message.replace(str(uploads) + os.sep, "upload ")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _Guard:
    """ASGI middleware: the ``Host`` check on loopback servers and the ``X-Stylekit`` header on changes."""

    def __init__(self, app, *, local: bool) -> None:
        self.app, self.local = app, local

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            host = headers.get("host", "")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if self.local and not is_local(name.strip("[]")):
                return await _error(403, "this server answers only to localhost / 127.0.0.1")(scope, receive, send)
            if scope["method"] not in ("GET", "HEAD") and headers.get("x-stylekit") != "1":
                return await _error(403, "requests that change something need the header X-Stylekit: 1")(
                    scope, receive, send)
        await self.app(scope, receive, send)


async def _read_json(request: Request) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_JSON_BYTES):
        raise HTTPException(413 if declared.isdigit() else 400, "request body too large (or a bad Content-Length)")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise HTTPException(413, "request body too large")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPException(400, "the body must be JSON") from None


class _Api:
    """The request handlers of one server, over its uploads and runs."""

    def __init__(self, config: ServeConfig, folder: Path, *, fast_kernels: bool, closing) -> None:
        (folder / "uploads").mkdir(mode=0o700)
        (folder / "runs").mkdir(mode=0o700)
        self.config = config
        self.uploads = Uploads(folder / "uploads", config)
        self.runner = Runner(folder / "runs", config, fast_kernels=fast_kernels)
        self.closing = closing or (lambda: False)

    def routes(self) -> list:
        return [
            Route("/", self.index), Route("/api/info", self.info), Route("/api/events", self.events),
            Route("/api/uploads/{kind}", self.upload, methods=["POST"]),
            Route("/api/runs", self.queue), Route("/api/runs", self.submit, methods=["POST"]),
            Route("/api/runs/{run_id}", self.run_info), Route("/api/runs/{run_id}/stop", self.stop, methods=["POST"]),
            Route("/api/runs/{run_id}/continue", self.resume, methods=["POST"]),
            Route("/api/runs/{run_id}/result", self.result), Route("/api/runs/{run_id}/spectrogram", self.spectrogram),
            Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        self.runner.start()
        try:
            yield
        finally:
            await run_in_threadpool(self.runner.close)
            self.uploads.close()

    async def index(self, request: Request) -> Response:
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        return Response(html, media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-store"})

    async def info(self, request: Request) -> Response:
        c = self.config
        return JSONResponse({"version": __version__, "media": list(MEDIA), "controls": {m: controls(m) for m in MEDIA},
                             "limits": {"bytes": c.max_bytes, "pixels": c.max_pixels,
                                        "audio_seconds": c.max_audio_seconds, "styles": MAX_STYLES}})

    async def upload(self, request: Request) -> Response:
        kind = request.path_params["kind"]
        if kind not in KINDS:
            raise HTTPException(404, f"uploads are {' or '.join(KINDS)}")
        limit = self.config.max_bytes
        declared = request.headers.get("content-length")
        if declared is not None and not declared.isdigit():
            raise HTTPException(400, "bad Content-Length")
        if declared is not None and int(declared) > limit:
            raise HTTPException(413, f"the file is {int(declared) / 1e6:.1f} MB; this server takes at most "
                                     f"{limit / 1e6:g} MB (stylekit serve --max-upload-mb)")
        part = self.uploads.new_path()
        await _receive(request, part, limit)
        try:
            item = await run_in_threadpool(self.uploads.accept, kind, part)
        except UploadRefused as e:
            return _error(e.status, str(e))
        return JSONResponse(item.to_json(), status_code=201)

    async def submit(self, request: Request) -> Response:
        body = await _read_json(request)
        if not isinstance(body, dict):
            raise HTTPException(400, "the body must be a JSON object")
        medium = body.get("medium")
        if medium not in MEDIA:
            raise HTTPException(400, f"medium must be one of {', '.join(MEDIA)}")
        styles = body.get("styles")
        if not isinstance(styles, list) or not 1 <= len(styles) <= MAX_STYLES:
            raise HTTPException(400, f"styles must be a list of 1 to {MAX_STYLES} upload ids")
        try:
            content = self.uploads.get(body.get("content"), medium)
            style_items = [self.uploads.get(s, medium) for s in styles]
        except KeyError:
            raise HTTPException(400, f"no such {medium} upload: upload the files again") from None
        try:
            config = parse_settings(medium, body.get("settings") or {})
            config = self._masks(body.get("masks"), medium, config, len(styles))
            run = await run_in_threadpool(self.runner.submit, medium, content, style_items, config)
        except StylekitError as e:
            raise HTTPException(400, _public(str(e), self.uploads.folder)) from None
        return JSONResponse(run.summary(), status_code=201)

    def _masks(self, masks: Any, medium: str, config: Any, n_styles: int) -> Any:
        """``{"content": id, "styles": [id per style]}`` (uploaded images) set as the config's masks."""
        if not masks:
            return config
        if medium != "image" or not isinstance(masks, dict) or not set(masks) <= {"content", "styles"}:
            raise HTTPException(400, 'masks are for images: {"content": upload id, "styles": [one id per style]}')
        styles = masks.get("styles") or []
        if not isinstance(styles, list) or (styles and len(styles) != n_styles):
            raise HTTPException(400, f"style masks: one per style, in style order ({n_styles} here)")
        try:
            content = masks.get("content")
            content_path = str(self.uploads.get(content, "image").path) if content is not None else None
            style_paths = [str(self.uploads.get(s, "image").path) for s in styles]
        except KeyError:
            raise HTTPException(400, "no such image upload for a mask: upload it again") from None
        return with_masks(config, content_mask=content_path, style_masks=style_paths)

    def _run(self, request: Request):
        try:
            return self.runner.get(request.path_params["run_id"])
        except KeyError:
            raise HTTPException(404, "no such run") from None

    async def run_info(self, request: Request) -> Response:
        run = self._run(request)
        return JSONResponse({**run.summary(), "steps": list(run.steps)})

    async def stop(self, request: Request) -> Response:
        try:
            return JSONResponse(self.runner.stop(self._run(request).id).summary())
        except ConfigError as e:
            raise HTTPException(409, str(e)) from None

    async def resume(self, request: Request) -> Response:
        try:
            return JSONResponse(self.runner.continue_run(self._run(request).id).summary())
        except ConfigError as e:
            raise HTTPException(409, str(e)) from None

    async def result(self, request: Request) -> Response:
        run = self._run(request)
        if not run.output.is_file():
            raise HTTPException(404, "this run has no result yet")
        return FileResponse(run.output, media_type=_MEDIA_TYPES[run.medium],
                            filename=f"stylekit-{run.medium}-{run.id}{run.output.suffix}")

    async def spectrogram(self, request: Request) -> Response:
        run = self._run(request)
        if run.result_spectrogram is None:
            raise HTTPException(404, "this run has no result spectrogram")
        return JSONResponse(run.result_spectrogram.to_json())

    async def queue(self, request: Request) -> Response:
        return JSONResponse(self.runner.queue())

    async def events(self, request: Request) -> Response:
        return StreamingResponse(_events(request, self.runner, self.closing), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _receive(request: Request, part: Path, limit: int) -> None:
    """Write the request's body to ``part`` (a new file, mode 0600), refusing it past ``limit`` bytes."""
    total = 0
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                total += len(chunk)
                if total > limit:
                    raise HTTPException(413, f"the file is over {limit / 1e6:g} MB, the most this server takes "
                                             "(stylekit serve --max-upload-mb)")
                f.write(chunk)
        if total == 0:
            raise HTTPException(400, "the upload is empty")
    except ClientDisconnect:
        part.unlink(missing_ok=True)
        raise HTTPException(400, "the upload was cut off") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return _error(exc.status_code, exc.detail if isinstance(exc.detail, str) else "bad request")


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("error in %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal error; the server's log has the details")


def create_app(config: ServeConfig, folder: Path, *, fast_kernels: bool = False, closing=None) -> Starlette:
    """The app for one server whose private folder is ``folder`` (it must exist, empty, mode 0700).

    ``closing()`` says when the server is shutting down, so that event streams end; ``fast_kernels`` turns on
    the CPU convolution backend for the runs, as the commands do. ``app.state.runner`` and
    ``app.state.uploads`` are the server's runs and uploads.

    Examples
    --------
    >>> from starlette.testclient import TestClient
    >>> from stylekit.serve.config import ServeConfig
    >>> from stylekit.serve.server import private_folder
    >>> with private_folder() as folder, TestClient(create_app(ServeConfig(), folder),
    ...                                           base_url="http://127.0.0.1:8765") as client:
    ...     client.get("/").status_code, client.get("/api/runs").status_code
    (200, 200)
    """
    api = _Api(config, folder, fast_kernels=fast_kernels, closing=closing)
    app = Starlette(routes=api.routes(), lifespan=api.lifespan,
                    exception_handlers={HTTPException: _http_error, Exception: _server_error})
    app.state.runner, app.state.uploads, app.state.folder = api.runner, api.uploads, folder
    app.add_middleware(_Guard, local=is_local(config.host))
    return app


def _event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _events(request: Request, runner: Runner, closing, *, tick: float = 0.1, keepalive: float = 15.0):
    """The page's event stream: ``queue`` when a run's state changes, ``steps`` with each run's new loss terms,
    ``frame`` with its latest snapshot. Each client gets only the newest snapshot when it falls behind."""
    version, sent_steps, sent_frames = -1, {}, {}
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    yield "retry: 1000\n\n"
    while not closing() and not await request.is_disconnected():
        out = []
        if runner.version != version:
            version = runner.version
            out.append(_event("queue", runner.queue()))
        for run in list(runner.runs.values()):
            steps = run.steps
            n, k = len(steps), sent_steps.get(run.id, 0)
            k = min(k, n)
            if n > k:
                out.append(_event("steps", {"run": run.id, "start": k, "steps": steps[k:n], "total": run.total_steps}))
                sent_steps[run.id] = n
            frame, fv = run.frame, run.frame_version
            if frame is not None and sent_frames.get(run.id) != fv:
                sent_frames[run.id] = fv
                out.append(_event("frame", {"run": run.id, "version": fv, "medium": run.medium, **frame.to_json()}))
        if out:
            quiet_since = loop.time()
            yield "".join(out)
        elif loop.time() - quiet_since > keepalive:
            quiet_since = loop.time()
            yield ": keep-alive\n\n"
        await asyncio.sleep(tick)
