"""A small local HTTP server that plays a feed publisher in tests.

A test registers what each path answers (a body and headers, a redirect, a slow or a
trickling answer, a conditional answer) and afterwards reads what the server received:

    def test_something(feed_server, settings):
        settings.ENGAGE_FEED_ALLOWED_HOSTS = ["127.0.0.1"]
        url = feed_server.route("/feed", RSS_BODY, etag='"v1"')
        ...
        assert feed_server.requests[0].headers["If-None-Match"] == '"v1"'

Import the fixture into a test module with `from tests.feed_server import feed_server`.
"""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

RSS_CONTENT_TYPE = "application/rss+xml; charset=utf-8"


@dataclass
class Route:
    """What one path answers."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds to wait before sending anything (a server that does not answer).
    delay: float = 0.0
    # Seconds between two bytes of the body (a server that trickles its answer), and
    # whether the status line and headers trickle too.
    trickle: float = 0.0
    trickle_headers: bool = False
    # False leaves Content-Length out: the body then ends when the connection closes.
    content_length: bool = True
    # Conditional GET: an If-None-Match equal to `etag`, or an If-Modified-Since equal to
    # `last_modified`, is answered 304 Not Modified.
    etag: str = ""
    last_modified: str = ""


@dataclass(frozen=True)
class Request:
    """One request the server received."""

    path: str
    headers: Message  # case-insensitive: headers["if-none-match"]


class FeedServer:
    """A threaded HTTP server whose answers tests choose path by path."""

    def __init__(self, host: str = "127.0.0.1"):
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        server_class = _IPv6Server if ":" in host else _Server
        self._httpd = server_class((host, 0), _handler_for(self))
        self.host = host
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def route(
        self,
        path: str,
        body: bytes | str = b"",
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        content_type: str = RSS_CONTENT_TYPE,
        delay: float = 0.0,
        trickle: float = 0.0,
        trickle_headers: bool = False,
        content_length: bool = True,
        etag: str = "",
        last_modified: str = "",
    ) -> str:
        """Answer GET `path` with this; returns the path's full URL. Content-Length is
        sent unless `headers` gives one, the body trickles or content_length is False."""
        if isinstance(body, str):
            body = body.encode()
        all_headers = {"Content-Type": content_type} if content_type else {}
        all_headers.update(headers or {})
        self.routes[path] = Route(
            body=body,
            status=status,
            headers=all_headers,
            delay=delay,
            trickle=trickle,
            trickle_headers=trickle_headers,
            content_length=content_length,
            etag=etag,
            last_modified=last_modified,
        )
        return self.url(path)

    def redirect(self, path: str, location: str, *, status: int = 302) -> str:
        """Answer GET `path` with a redirect to `location` (absolute or relative)."""
        return self.route(path, status=status, headers={"Location": location}, content_type="")

    def paths(self) -> list[str]:
        """The paths requested so far, in order."""
        with self._lock:
            return [request.path for request in self.requests]

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        # Sleeping and trickling handlers wait on this event, so they end at once.
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Do not wait for handlers at shutdown: a trickling answer may still be "running".
    block_on_close = False


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


def _handler_for(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server._record(Request(path=self.path, headers=self.headers))
            route = server.routes.get(self.path)
            if route is None:
                route = Route(body=b"Not found", status=404, headers={"Content-Type": "text/plain"})
            if route.delay and server._stopping.wait(route.delay):
                return
            # The client may give up, which is often what the test wanted.
            with suppress(BrokenPipeError, ConnectionResetError):
                self._answer(route)

        def _answer(self, route: Route) -> None:
            status, headers, body = route.status, dict(route.headers), route.body
            if self._not_modified(route):
                status, body = 304, b""
                headers = {"ETag": route.etag} if route.etag else {}
            elif route.etag:
                headers["ETag"] = route.etag
            if route.last_modified and status != 304:
                headers["Last-Modified"] = route.last_modified
            if (
                route.content_length
                and not route.trickle
                and "Content-Length" not in headers
                and status != 304
            ):
                headers["Content-Length"] = str(len(body))
            head = f"HTTP/1.0 {status} {self.responses.get(status, ('',))[0]}\r\n"
            head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            head += "\r\n"
            if route.trickle_headers:
                self._trickle(head.encode("latin-1"), route.trickle)
            else:
                self.wfile.write(head.encode("latin-1"))
                self.wfile.flush()
            if route.trickle:
                self._trickle(body, route.trickle)
            else:
                self.wfile.write(body)

        def _not_modified(self, route: Route) -> bool:
            if route.etag and self.headers.get("If-None-Match") == route.etag:
                return True
            return bool(
                route.last_modified and self.headers.get("If-Modified-Since") == route.last_modified
            )

        def _trickle(self, data: bytes, interval: float) -> None:
            for index in range(len(data)):
                self.wfile.write(data[index : index + 1])
                self.wfile.flush()
                if server._stopping.wait(interval):
                    return

        def log_message(self, format, *args) -> None:
            pass  # Keep the test output quiet.

    return Handler


@contextmanager
def serving(host: str = "127.0.0.1") -> Iterator[FeedServer]:
    """A running FeedServer on `host` (127.0.0.1, or ::1 for IPv6) and a free port."""
    server = FeedServer(host)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A running FeedServer on 127.0.0.1; remember to allow "127.0.0.1" in
    ENGAGE_FEED_ALLOWED_HOSTS, or fetch() refuses the loopback address."""
    with serving() as server:
        yield server
