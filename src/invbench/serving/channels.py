"""How a query-only access object reaches its :class:`~.service.TargetService`.

A channel sends one encoded request (:mod:`.codec`) and returns the encoded answer:

- :class:`PipeChannel` — a :mod:`multiprocessing` connection to the process that serves
  the target (the runner serves an attack running in a spawned worker; bytes only, via
  ``send_bytes``/``recv_bytes``, so nothing is pickled).
- :class:`HttpChannel` — an endpoint on this machine (``invbench serve``, or a user's own
  server speaking the same messages): ``POST`` of the request body to the URL. Only loopback
  hosts are accepted; invbench never talks to the network.
- :class:`LocalChannel` — a service in this very process: the Python API's convenience (and
  the unit tests'). It is **not** a barrier — the service, and so the module, is reachable
  from the channel — which is why the runner never uses it for an attack.
"""

from __future__ import annotations

import ipaddress
import threading
import urllib.error
import urllib.parse
import urllib.request
from multiprocessing.connection import Connection
from typing import Protocol

from invbench.errors import AccessError, ConfigError
from invbench.serving.codec import MAX_MESSAGE_BYTES
from invbench.serving.service import TargetService


class Channel(Protocol):
    """Anything that turns an encoded request into the encoded answer."""

    def request(self, data: bytes) -> bytes:
        """Send ``data``, return the answer."""
        ...


class LocalChannel:
    """A service in this process (not a barrier: for the Python API and unit tests)."""

    def __init__(self, service: TargetService) -> None:
        self._service = service

    def request(self, data: bytes) -> bytes:
        """Answer ``data`` with the in-process service."""
        return self._service.handle(data)


class PipeChannel:
    """One end of a :func:`multiprocessing.Pipe` whose other end a service answers."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def request(self, data: bytes) -> bytes:
        """Send ``data`` and wait for the answer (one request at a time)."""
        with self._lock:
            try:
                self._conn.send_bytes(data)
                return self._conn.recv_bytes(MAX_MESSAGE_BYTES)
            except (EOFError, OSError) as exc:
                raise AccessError(f"the target's server went away: {exc or type(exc).__name__}"
                                  ) from None


def check_loopback_url(url: str) -> str:
    """``url`` if it is ``http://`` on a loopback host (127.0.0.0/8, ::1, localhost)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(f"target URL '{url}' must be http://HOST:PORT/... on this machine")
    host = parts.hostname
    if host != "localhost":
        try:
            if not ipaddress.ip_address(host).is_loopback:
                raise ValueError
        except ValueError:
            raise ConfigError(
                f"target URL '{url}': host '{host}' is not loopback; invbench only talks to "
                "endpoints on this machine (127.0.0.1, ::1, localhost)"
            ) from None
    return url


class HttpChannel:
    """An HTTP endpoint on this machine that answers invbench messages (``POST``)."""

    def __init__(self, url: str, *, timeout: float = 600.0) -> None:
        self.url = check_loopback_url(url)
        self._timeout = timeout
        # never route loopback through a proxy from the environment
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(self, data: bytes) -> bytes:
        """POST ``data``; the body of the answer."""
        req = urllib.request.Request(
            self.url, data=data, method="POST",
            headers={"Content-Type": "application/octet-stream"},
        )
        try:
            with self._opener.open(req, timeout=self._timeout) as resp:
                return resp.read(MAX_MESSAGE_BYTES + 1)  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            body = exc.read(MAX_MESSAGE_BYTES + 1)
            if body:
                return body  # an invbench error message
            raise AccessError(f"target URL '{self.url}' answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AccessError(f"target URL '{self.url}' is unreachable: {reason}") from None
