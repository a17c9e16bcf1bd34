"""A target served over HTTP on this machine (``invbench serve``).

The server answers ``POST`` requests whose body is an invbench message (:mod:`.codec`:
safetensors bytes, ``op`` ``info``, ``query`` or ``charge``) with the
:class:`~.service.TargetService`'s answer, and ``GET /`` with the service's info as JSON
(for a person checking the endpoint). It binds to a loopback address only: invbench serves
and attacks endpoints on this machine, never over the network. A client is
:class:`~.channels.HttpChannel`, which :class:`~invbench.access.BlackBox` and
:class:`~invbench.access.LabelOnly` take like any channel.

Example::

    server = make_server(service, port=0)           # an ephemeral port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    access = BlackBox(HttpChannel(server_url(server)))
"""

from __future__ import annotations

import ipaddress
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from invbench.errors import ConfigError
from invbench.serving.codec import MAX_MESSAGE_BYTES, encode
from invbench.serving.service import TargetService


def check_loopback_host(host: str) -> str:
    """``host`` as an address to bind if it is loopback (``localhost`` -> 127.0.0.1)."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ConfigError(f"--host '{host}' is not a loopback address; invbench serves only on "
                      "this machine (127.0.0.1 or ::1)")


class LoopbackHandler(BaseHTTPRequestHandler):
    """Base of invbench's loopback servers (``serve``, ``judge``): request logging unless
    :attr:`quiet`, and :meth:`_send` writing one whole response with :attr:`headers` added."""

    quiet = False
    #: extra headers of every response, e.g. ``(("Cache-Control", "no-store"),)``
    headers_out: tuple[tuple[str, str], ...] = ()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        if not self.quiet:
            super().log_message(format, *args)

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in self.headers_out:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def make_server(
    service: TargetService, *, host: str = "127.0.0.1", port: int = 8765, quiet: bool = True
) -> ThreadingHTTPServer:
    """An HTTP server for ``service`` on a loopback ``host`` (``port=0``: any free port).

    Call ``serve_forever()`` on it (and ``shutdown()`` from another thread to stop).
    """
    host = check_loopback_host(host)
    if not 0 <= int(port) <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {port}")

    quiet_log = quiet

    class Handler(LoopbackHandler):
        server_version = "invbench"
        quiet = quiet_log

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = json.dumps(service.info(), indent=1).encode()
            self._send(200, body, "application/json")

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            try:
                length = int(self.headers.get("Content-Length", "-1"))
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_MESSAGE_BYTES:
                body = encode({}, {"error": f"Content-Length must be 0..{MAX_MESSAGE_BYTES}",
                                   "kind": "data", "queries": service.queries})
                self._send(400, body, "application/octet-stream")
                return
            answer = service.handle(self.rfile.read(length))
            self._send(200, answer, "application/octet-stream")

    return loopback_server(host, port, Handler)


def loopback_server(host: str, port: int, handler: type[BaseHTTPRequestHandler]
                    ) -> ThreadingHTTPServer:
    """A threading HTTP server of ``handler`` bound to ``host`` (IPv4 or IPv6) and ``port``
    (0: any free one), its request threads daemons. ``host`` is checked by the caller
    (:func:`check_loopback_host`)."""
    server_cls = ThreadingHTTPServer
    if ":" in host:
        import socket

        class V6Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6

        server_cls = V6Server
    server = server_cls((host, int(port)), handler)
    server.daemon_threads = True
    return server


def server_url(server: ThreadingHTTPServer) -> str:
    """The URL clients use for ``server``."""
    host, port = server.server_address[:2]
    host = f"[{host}]" if ":" in str(host) else host
    return f"http://{host}:{port}/"
