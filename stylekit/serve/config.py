"""The settings of ``stylekit serve``: :class:`ServeConfig` (plain Python, so ``--help`` loads no torch)."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .._options import option
from .._validate import check_float, check_int

__all__ = ["ServeConfig", "LOCAL_HOSTS", "is_local"]

#: Host names that reach only this machine; any other ``--host`` makes the server say so at start.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_local(host: str) -> bool:
    """True when ``host`` is a loopback name or address (only this machine can connect).

    Examples
    --------
    >>> is_local("127.0.0.1"), is_local("localhost"), is_local("0.0.0.0")
    (True, True, False)
    """
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeConfig:
    """How the local web preview runs and what it accepts.

    Attributes
    ----------
    host, port : where it listens; 127.0.0.1 (this machine only) by default, port 0 picks a free port.
    open_browser : open the page in the default browser once the server listens.
    max_upload_mb : largest upload in megabytes (10^6 bytes).
    max_pixels : largest uploaded image, in pixels (width x height), refused before it is decoded.
    max_audio_seconds : longest uploaded sound, in seconds.
    preview_every : send a snapshot every this many iterations at most ...
    preview_interval : ... and at most one every this many seconds, so a slow browser never holds the run back.

    Examples
    --------
    >>> config = ServeConfig(port=9000)
    >>> config.host, config.port
    ('127.0.0.1', 9000)
    """

    host: str = option("127.0.0.1", group="Server",
                       help="Address to listen on; anything but 127.0.0.1 / localhost lets other machines in.")
    port: int = option(8765, type=int, group="Server", help="Port to listen on (0: any free port).")
    open_browser: bool = option(False, is_flag=True, flag=("--open",), group="Server",
                                help="Open the page in the default web browser.")
    max_upload_mb: float = option(50.0, type=float, group="Limits", help="Largest upload (MB).")
    max_pixels: int = option(25_000_000, type=int, group="Limits",
                             help="Largest uploaded image (width x height, pixels).")
    max_audio_seconds: float = option(120.0, type=float, group="Limits", help="Longest uploaded sound (seconds).")
    preview_every: int = option(1, type=int, group="Preview", help="Snapshot every N iterations at most.")
    preview_interval: float = option(0.25, type=float, group="Preview",
                                     help="Shortest time between two snapshots (seconds).")

    def __post_init__(self) -> None:
        check_int("port", self.port, 0, 65535)
        check_float("max-upload-mb", self.max_upload_mb, 0.0, 1e6, low_open=True)
        check_int("max-pixels", self.max_pixels, 1, 1 << 34)
        check_float("max-audio-seconds", self.max_audio_seconds, 0.0, 1e6, low_open=True)
        check_int("preview-every", self.preview_every, 1, 1_000_000)
        check_float("preview-interval", self.preview_interval, 0.0, 3600.0)

    @property
    def max_bytes(self) -> int:
        """The upload limit in bytes."""
        return int(self.max_upload_mb * 1_000_000)
