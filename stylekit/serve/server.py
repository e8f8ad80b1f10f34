"""Start and end a ``stylekit serve`` server: its private folder, its socket, uvicorn, and the cleanup."""
from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import threading
import webbrowser
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import ConfigError
from .config import ServeConfig, is_local

__all__ = ["serve", "private_folder", "bind", "Server", "missing_extra"]


def missing_extra() -> str | None:
    """The message for a missing ``serve`` extra, or None when its packages are installed.

    Examples
    --------
    >>> missing_extra() is None or "pip install" in missing_extra()       # None when the serve extra is installed
    True
    """
    import importlib.util
    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        return (f"stylekit serve needs {' and '.join(missing)}: pip install 'stylekit[serve]'")
    return None


@contextlib.contextmanager
def private_folder() -> Iterator[Path]:
    """A fresh folder only this user can read (mode 0700), removed with everything in it on exit.

    Examples
    --------
    >>> with private_folder() as folder:
    ...     oct(folder.stat().st_mode & 0o777)
    '0o700'
    """
    folder = Path(tempfile.mkdtemp(prefix="stylekit-serve-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port); a :class:`ConfigError` when it cannot be had.

    Examples
    --------
    >>> sock = bind("127.0.0.1", 0)                                  # port 0: any free port
    >>> sock.getsockname()[1] > 0
    True
    >>> sock.close()
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ConfigError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        why = "is in use; choose another with --port" if e.errno == 98 else f"cannot be used ({e.strerror})"
        raise ConfigError(f"{host}:{port} {why}") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class Server:
    """One server: a private folder, the app, and uvicorn on ``sock``. ``run()`` blocks until it is told to
    exit (Ctrl-C, SIGTERM or :meth:`exit`); the folder is removed when it ends.

    Examples
    --------
    >>> import threading, urllib.request
    >>> from stylekit.serve.config import ServeConfig
    >>> server = Server(ServeConfig(port=0), bind("127.0.0.1", 0))
    >>> thread = threading.Thread(target=server.run)
    >>> thread.start()
    >>> urllib.request.urlopen(server.url, timeout=30).status          # the page, served on 127.0.0.1
    200
    >>> server.exit()
    >>> thread.join(30)
    """

    def __init__(self, config: ServeConfig, sock: socket.socket, *, fast_kernels: bool = False) -> None:
        self.config, self.sock, self.fast_kernels = config, sock, fast_kernels
        self.url = url_of(sock, config.host)
        self.folder: Path | None = None
        self._uvicorn = None
        self._asked = False

    def run(self) -> None:
        import uvicorn

        from .app import create_app
        with private_folder() as folder:
            self.folder = folder
            app = create_app(self.config, folder, fast_kernels=self.fast_kernels, closing=self._closing)
            # The socket already listens, so a browser that connects before uvicorn is up simply waits.
            self._uvicorn = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
            try:
                self._uvicorn.run(sockets=[self.sock])
            finally:
                self.sock.close()
        # uvicorn ends on SIGINT/SIGTERM and raises the signal again once it has shut down, but under asyncio's own
        # SIGINT handling that second signal can land while the server's task is finishing and be lost, so the
        # run would end as if asked to. A server told to stop by anything but exit() was stopped by a signal.
        if self._uvicorn.should_exit and not self._asked:
            raise KeyboardInterrupt

    def _closing(self) -> bool:
        return self._uvicorn is not None and self._uvicorn.should_exit

    def exit(self) -> None:
        """Ask a running server to end (from another thread)."""
        self._asked = True
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True


def serve(config: ServeConfig, *, echo: Callable[[str], None] = print) -> None:
    """Run the server of ``config`` in this thread until Ctrl-C; say where it listens and, for a host other
    than this machine, warn that anyone who reaches it can use it.

    Examples
    --------
    It blocks until Ctrl-C, so this example is not run (:class:`Server` shows a server started and ended):

    >>> from stylekit.serve.config import ServeConfig
    >>> serve(ServeConfig(port=8765))          # doctest: +SKIP
    stylekit serve: http://127.0.0.1:8765/ (Ctrl-C to stop)
    """
    sock = bind(config.host, config.port)
    server = Server(config, sock, fast_kernels=True)
    if not is_local(config.host):
        echo(f"warning: listening on {config.host}: anyone who can reach this address can upload files and run "
             "style transfers on this machine (there is no login); use 127.0.0.1 unless you mean that")

    echo(f"stylekit serve: {server.url} (Ctrl-C to stop)")
    if config.open_browser:
        threading.Thread(target=webbrowser.open, args=(server.url,), daemon=True).start()
    server.run()
