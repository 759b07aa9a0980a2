"""The HTTP transport of ``mtsql serve``: sockets, routes, limits, the API key, and a graceful stop.

Why apart from the API: a server reachable beyond loopback must survive hostile or broken clients whatever the
endpoints do. A body over 64 MiB or with a negative or missing ``Content-Length`` is refused unread; a connection
idle or stalled for ``idle_timeout`` seconds is closed; bursts wait in a listen backlog of 128; a client that
goes away mid-answer is dropped without a traceback; with ``api_key`` every endpoint but ``/health`` wants
``Authorization: Bearer <key>``; SIGINT/SIGTERM finish the requests in flight first.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final

from mtsql.backends.base import Backend
from mtsql.serve.endpoints import Endpoints
from mtsql.serve.schema import APIError, decode_json

if TYPE_CHECKING:
    from types import FrameType

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 64 * 1024 * 1024
#: Seconds a connection may stay idle (keep-alive) or stall while sending a request before it is closed.
IDLE_TIMEOUT_S: Final = 30.0


class OpenAIServer:
    """Serves ``backend`` under ``served_model_name`` (default ``backend.model``) at ``host:port`` (0: any free
    port; :attr:`url` says which). Binds at once; :meth:`run` serves until SIGINT/SIGTERM, or call
    :meth:`serve_forever` and, from another thread, :meth:`shutdown`, then :meth:`close`."""

    def __init__(
        self,
        backend: Backend,
        *,
        served_model_name: str | None = None,
        host: str = "127.0.0.1",
        port: int = 8000,
        api_key: str | None = None,
        idle_timeout: float = IDLE_TIMEOUT_S,
    ) -> None:
        #: When set, every endpoint but /health wants ``Authorization: Bearer <api_key>`` (as vLLM's --api-key).
        self.api_key = api_key
        #: Seconds a connection may stay idle or stall mid-request before it is closed.
        self.idle_timeout = idle_timeout
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.app = self
        self.endpoints = Endpoints(backend, served_model_name=served_model_name)
        self._routes: dict[tuple[str, str], Callable[[Any], dict[str, Any]]] = {
            ("GET", "/health"): self.endpoints.health,
            ("GET", "/v1/models"): self.endpoints.models,
            ("POST", "/v1/completions"): self.endpoints.completion,
            ("POST", "/v1/chat/completions"): self.endpoints.chat_completion,
        }

    @property
    def backend(self) -> Backend:
        return self.endpoints.backend

    @property
    def model_name(self) -> str:
        return self.endpoints.model_name

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}/v1" if ":" in host else f"http://{host}:{port}/v1"

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` (blocks until it returns: call it from another thread)."""
        self._httpd.shutdown()

    def close(self) -> None:
        """Wait for the requests in flight, release the backend, stop the loop."""
        self._httpd.server_close()
        self.endpoints.close()

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM (main thread only), finishing the requests in flight; a second signal
        exits at once (code 128 + the signal's number, as the shell reports a killed process)."""
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        stopping = threading.Event()

        def stop(signum: int, frame: FrameType | None) -> None:
            if stopping.is_set():
                os._exit(128 + signum)
            stopping.set()
            log.warning("%s: finishing the requests in flight (again to exit now)", signal.Signals(signum).name)
            threading.Thread(target=self.shutdown, name="mtsql-serve-shutdown").start()

        for sig in previous:
            signal.signal(sig, stop)
        try:
            self.serve_forever()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.close()

    def authorize(self, path: str, authorization: str | None) -> None:
        """A 401 unless the request carries the API key (when one is set); /health stays open for probes."""
        if self.api_key is None or path == "/health":
            return
        expected = f"Bearer {self.api_key}"
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected.encode()):
            raise APIError(HTTPStatus.UNAUTHORIZED, "a valid API key is required (Authorization: Bearer <key>)")

    def route(self, method: str, path: str, body: Any) -> dict[str, Any]:
        endpoint = self._routes.get((method, path))
        if endpoint is None:
            if any(known == path for _, known in self._routes):
                raise APIError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}")
            raise APIError(HTTPStatus.NOT_FOUND, f"no endpoint {method} {path}")
        return endpoint(body)


class _HTTPServer(ThreadingHTTPServer):
    """Graceful shutdown: :meth:`server_close` waits for the request threads, after waking those that only hold
    an idle keep-alive connection (a client's connection pool would otherwise keep the server up)."""

    app: OpenAIServer
    daemon_threads = False
    block_on_close = True
    request_queue_size = 128  # the listen backlog: bursts of concurrent clients wait instead of being reset

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.discard(request)

    def server_close(self) -> None:
        # Reading now ends at once, writing still works: a request being generated gets its answer, then the
        # connection closes; an idle connection closes now.
        with self._connections_lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RD)
        super().server_close()


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive, for clients with connection pools
    server_version = "mtsql-serve"

    def setup(self) -> None:
        # Every read and write on the connection times out: an idle keep-alive connection or a client that stalls
        # mid-request is closed after idle_timeout seconds instead of holding a thread forever.
        self.timeout = self.server.app.idle_timeout
        super().setup()

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):  # the client went away: nothing to answer, nothing to log
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        try:
            self.server.app.authorize(path, self.headers.get("Authorization"))
            body = self._read_json() if method == "POST" else None
            status, payload = HTTPStatus.OK, self.server.app.route(method, path, body)
        except APIError as err:
            status, payload = err.status, err.body()
        except Exception as err:  # a failed generation: the client may retry, the server keeps serving
            log.exception("%s %s failed", method, path)
            error = APIError(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(err).__name__}: {err}")
            status, payload = error.status, error.body()
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _read_json(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            raise APIError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required") from None
        if length < 0:
            self.close_connection = True  # the body is left unread
            raise APIError(HTTPStatus.BAD_REQUEST, f"Content-Length must be at least 0, not {length}")
        if length > MAX_BODY_BYTES:
            self.close_connection = True  # the body is left unread
            raise APIError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY_BYTES} bytes")
        try:
            data = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            raise APIError(HTTPStatus.REQUEST_TIMEOUT, f"the body did not arrive within {self.timeout:g} s") from None
        return decode_json(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)
