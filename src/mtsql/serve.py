"""An OpenAI-compatible HTTP server for mtsql's local backends (``mtsql serve``).

Why: users without vLLM (a laptop, a CPU) and our own tests get a real server that the ``openai`` backend,
the OpenAI SDK and curl all talk to, generating with the same backend a local rollout would use.

Endpoints (JSON in and out, errors as OpenAI error objects with their HTTP status):

- ``GET /health``, ``GET /v1/models``;
- ``POST /v1/completions``: ``prompt`` a string or a list of token ids (one prompt, ``n`` 1), ``max_tokens``
  (default 16, as OpenAI), ``temperature``, ``top_p``, ``seed``, ``logprobs``, and vLLM's extensions
  ``top_k``, ``stop_token_ids``, ``add_special_tokens``, ``return_token_ids`` (the choice gets ``token_ids``
  and ``prompt_token_ids``) and ``return_tokens_as_token_ids`` (logprob tokens read ``token_id:123``);
- ``POST /v1/chat/completions``: ``messages`` and ``tools`` rendered with the tokenizer's chat template (vLLM's
  ``chat_template_kwargs`` go to it, e.g. ``{"enable_thinking": false}``); the assistant's text comes back as
  the message content, tool calls included as the model wrote them (parsing them is model-specific).

As in vLLM, the completion's ``token_ids`` end with the stop token and its text leaves it out. Logprobs are the
backend's: of the sampled token under the temperature-scaled distribution, so ``top_logprobs`` lists only the
sampled token whatever number was asked for. Stop strings, streaming, ``echo``, ``suffix``, several choices,
penalties, ``min_p`` and ``logit_bias`` are refused with 400 rather than ignored (their neutral values pass).

Concurrency: a thread per connection (``ThreadingHTTPServer``, a listen backlog of 128) hands each request to
one asyncio loop running in a background thread, where ``backend.generate`` is awaited; a
:class:`~mtsql.backends.BatchedBackend` therefore puts requests that arrive together into one batch.

Limits, for a server reachable beyond loopback: a body over 64 MiB, a negative or missing ``Content-Length``,
JSON nested too deeply or holding ``NaN``/``Infinity``, an out-of-range ``seed`` and unknown chat roles are 400s;
a connection idle or stalled for ``idle_timeout`` seconds (30) is closed; a client that goes away mid-answer
is dropped without a traceback; with ``api_key`` (``mtsql serve --api-key``, as vLLM's) every endpoint but
``/health`` wants ``Authorization: Bearer <key>`` (401 otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final

from mtsql.backends.base import Backend, Generation, SamplingParams

if TYPE_CHECKING:
    from types import FrameType

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 64 * 1024 * 1024
#: Seconds a connection may stay idle (keep-alive) or stall while sending a request before it is closed.
IDLE_TIMEOUT_S: Final = 30.0
#: The roles a chat request's messages may have (the chat template then decides what it renders).
CHAT_ROLES: Final = ("system", "developer", "user", "assistant", "tool")
DEFAULT_CHAT_MAX_TOKENS: Final = 1024
"""Chat requests without ``max_tokens`` get the rest of the context when the model's length is known, else this."""


class APIError(Exception):
    """A request that gets an OpenAI-style error answer."""

    def __init__(self, status: HTTPStatus, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param

    def body(self) -> dict[str, Any]:
        if self.status == HTTPStatus.NOT_FOUND:
            kind = "not_found_error"
        else:
            kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": str(self), "type": kind, "param": self.param, "code": int(self.status)}}


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
        self.backend = backend
        #: When set, every endpoint but /health wants ``Authorization: Bearer <api_key>`` (as vLLM's --api-key).
        self.api_key = api_key
        #: Seconds a connection may stay idle or stall mid-request before it is closed.
        self.idle_timeout = idle_timeout
        self.model_name = served_model_name or backend.model
        self.tokenizer = backend.tokenizer
        self.created = int(time.time())
        # Fast tokenizers are not meant to be used from several threads at once.
        self._tokenizer_lock = threading.Lock()
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.app = self
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="mtsql-serve-loop", daemon=True)
        self._loop_thread.start()
        self._routes: dict[tuple[str, str], Callable[[Any], dict[str, Any]]] = {
            ("GET", "/health"): lambda _: {"status": "ok"},
            ("GET", "/v1/models"): lambda _: self.models(),
            ("POST", "/v1/completions"): self.completion,
            ("POST", "/v1/chat/completions"): self.chat_completion,
        }

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
        with contextlib.suppress(Exception):  # closing must finish even if the backend fails to
            asyncio.run_coroutine_threadsafe(self.backend.aclose(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join()
        self._loop.close()

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

    # --- endpoints ------------------------------------------------------------------------------------------

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

    def models(self) -> dict[str, Any]:
        card = {"id": self.model_name, "object": "model", "created": self.created, "owned_by": "mtsql"}
        if self.backend.max_model_len is not None:
            card["max_model_len"] = self.backend.max_model_len
        return {"object": "list", "data": [card]}

    def completion(self, body: Any) -> dict[str, Any]:
        request = _Request(body)
        self._check_common(request)
        request.refuse("echo")
        request.refuse("suffix")
        request.refuse("best_of", unless=(None, 1))
        prompt_ids = self._prompt_ids(request)
        params = self._sampling(request, prompt_ids, request.integer("max_tokens", 16, minimum=1))
        logprobs = request.integer("logprobs", None, minimum=0)
        as_ids = request.boolean("return_tokens_as_token_ids", False)
        return_ids = request.boolean("return_token_ids", False)
        generation = self._generate(prompt_ids, params)
        choice: dict[str, Any] = {
            "index": 0,
            "text": self._text(generation),
            "logprobs": None if logprobs is None else self._completion_logprobs(generation, as_ids),
            "finish_reason": generation.finish_reason,
            "stop_reason": _stop_reason(generation, params),
        }
        if return_ids:
            choice["prompt_token_ids"] = prompt_ids
            choice["token_ids"] = generation.token_ids
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [choice],
            "usage": _usage(prompt_ids, generation),
        }

    def chat_completion(self, body: Any) -> dict[str, Any]:
        request = _Request(body)
        self._check_common(request)
        messages = request.get("messages", list, required=True)
        if not messages or not all(isinstance(m, dict) and m.get("role") in CHAT_ROLES for m in messages):
            raise APIError(
                HTTPStatus.BAD_REQUEST,
                f"messages must be a non-empty list of objects with a role among {', '.join(CHAT_ROLES)}",
                param="messages",
            )
        tools = request.get("tools", list)
        template_kwargs = request.get("chat_template_kwargs", dict) or {}
        try:
            with self._tokenizer_lock:
                text = self.tokenizer.apply_chat_template(
                    [_plain_message(m) for m in messages],
                    tools=tools,
                    add_generation_prompt=True,
                    tokenize=False,
                    **template_kwargs,
                )
                prompt_ids = self.tokenizer.encode(text, add_special_tokens=False)
        except APIError:
            raise
        except Exception as err:  # the template's own checks (roles, tool calls) reject the conversation
            raise APIError(HTTPStatus.BAD_REQUEST, f"cannot render the chat template: {err}", param="messages") from err
        max_tokens = request.integer("max_completion_tokens", None, minimum=1)  # OpenAI's newer name
        if max_tokens is None:
            default = DEFAULT_CHAT_MAX_TOKENS
            if self.backend.max_model_len is not None:
                default = max(1, self.backend.max_model_len - len(prompt_ids))
            max_tokens = request.integer("max_tokens", default, minimum=1)
        params = self._sampling(request, prompt_ids, max_tokens)
        logprobs = request.boolean("logprobs", False)
        request.integer("top_logprobs", None, minimum=0)  # accepted; only the sampled token is known
        return_ids = request.boolean("return_token_ids", False)
        generation = self._generate(prompt_ids, params)
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": self._text(generation)},
            "logprobs": {"content": self._chat_logprobs(generation)} if logprobs else None,
            "finish_reason": generation.finish_reason,
            "stop_reason": _stop_reason(generation, params),
        }
        response: dict[str, Any] = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [choice],
            "usage": _usage(prompt_ids, generation),
        }
        if return_ids:
            choice["token_ids"] = generation.token_ids
            response["prompt_token_ids"] = prompt_ids
        return response

    # --- helpers --------------------------------------------------------------------------------------------

    def _check_common(self, request: _Request) -> None:
        """The model's name, and what neither endpoint does (asking for it is a 400, not a silent no)."""
        model = request.get("model", str)
        if model is not None and model != self.model_name:
            raise APIError(
                HTTPStatus.NOT_FOUND,
                f"the model `{model}` does not exist (this server has `{self.model_name}`)",
                param="model",
            )
        for name in ("stream", "stop", "logit_bias"):
            request.refuse(name)
        for name, neutral in (
            ("presence_penalty", 0),
            ("frequency_penalty", 0),
            ("min_p", 0),
            ("repetition_penalty", 1),
        ):
            request.refuse(name, unless=(None, neutral))
        if request.integer("n", 1, minimum=1) != 1:
            raise APIError(HTTPStatus.BAD_REQUEST, "only n=1 is supported", param="n")

    def _prompt_ids(self, request: _Request) -> list[int]:
        prompt = request.body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
            prompt = prompt[0]  # a batch of one
        if isinstance(prompt, str):
            with self._tokenizer_lock:
                ids = self.tokenizer.encode(prompt, add_special_tokens=request.boolean("add_special_tokens", True))
        elif isinstance(prompt, list) and all(type(i) is int for i in prompt):
            ids = prompt
            vocabulary = len(self.tokenizer)
            if any(not 0 <= i < vocabulary for i in ids):
                raise APIError(HTTPStatus.BAD_REQUEST, f"token ids must be in [0, {vocabulary})", param="prompt")
        else:
            raise APIError(HTTPStatus.BAD_REQUEST, "prompt must be one string or one list of token ids", param="prompt")
        if not ids:
            raise APIError(HTTPStatus.BAD_REQUEST, "the prompt is empty", param="prompt")
        return ids

    def _sampling(self, request: _Request, prompt_ids: list[int], max_tokens: int) -> SamplingParams:
        limit = self.backend.max_model_len
        if limit is not None and len(prompt_ids) + max_tokens > limit:
            raise APIError(
                HTTPStatus.BAD_REQUEST,
                f"this model's maximum context length is {limit} tokens; the request asks for "
                f"{len(prompt_ids) + max_tokens} ({len(prompt_ids)} in the prompt, {max_tokens} in the completion)",
                param="max_tokens",
            )
        stop_token_ids = request.get("stop_token_ids", list) or []
        if not all(type(i) is int for i in stop_token_ids):
            raise APIError(HTTPStatus.BAD_REQUEST, "stop_token_ids must be integers", param="stop_token_ids")
        top_k = request.integer("top_k", 0, minimum=-1)
        try:
            return SamplingParams(
                max_tokens=max_tokens,
                temperature=request.number("temperature", 1.0),
                top_p=request.number("top_p", 1.0),
                top_k=max(top_k, 0),  # vLLM spells "no top-k" -1
                stop_token_ids=tuple(stop_token_ids),
                seed=request.integer("seed", None, minimum=0, maximum=2**63 - 1),
            )
        except ValueError as err:
            raise APIError(HTTPStatus.BAD_REQUEST, str(err)) from err

    def _generate(self, prompt_ids: list[int], params: SamplingParams) -> Generation:
        future = asyncio.run_coroutine_threadsafe(self.backend.generate(prompt_ids, params), self._loop)
        return future.result()

    def _text(self, generation: Generation) -> str:
        """The completion's text without its stop token, as vLLM writes it."""
        ids = generation.token_ids[:-1] if generation.finish_reason == "stop" else generation.token_ids
        with self._tokenizer_lock:
            return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _tokens(self, token_ids: list[int]) -> list[str]:
        with self._tokenizer_lock:
            return [self.tokenizer.decode([i]) for i in token_ids]

    def _completion_logprobs(self, generation: Generation, as_ids: bool) -> dict[str, Any]:
        ids = generation.token_ids
        tokens = [f"token_id:{i}" for i in ids] if as_ids else self._tokens(ids)
        logprobs = [_json_logprob(lp) for lp in generation.logprobs]
        offsets, offset = [], 0
        for token in tokens:
            offsets.append(offset)
            offset += len(token)
        return {
            "tokens": tokens,
            "token_logprobs": logprobs,
            "top_logprobs": [{t: lp} for t, lp in zip(tokens, logprobs, strict=True)],
            "text_offset": offsets,
        }

    def _chat_logprobs(self, generation: Generation) -> list[dict[str, Any]]:
        tokens = self._tokens(generation.token_ids)
        logprobs = [_json_logprob(lp) for lp in generation.logprobs]
        return [
            {"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": [{"token": t, "logprob": lp}]}
            for t, lp in zip(tokens, logprobs, strict=True)
        ]


_JSON_TYPES: Final[dict[Any, str]] = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    list: "an array",
    dict: "an object",
}


class _Request:
    """A request body with typed, validated access: every mistake is a 400 naming the parameter."""

    def __init__(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise APIError(HTTPStatus.BAD_REQUEST, "the request body must be a JSON object")
        self.body: dict[str, Any] = body

    def get(self, name: str, kind: type | tuple[type, ...], *, required: bool = False) -> Any:
        value = self.body.get(name)
        if value is None:
            if required:
                raise APIError(HTTPStatus.BAD_REQUEST, f"{name} is required", param=name)
            return None
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise APIError(HTTPStatus.BAD_REQUEST, f"{name} must be {_JSON_TYPES.get(kind, 'a number')}", param=name)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name, bool)
        return default if value is None else value

    def integer(self, name: str, default: int | None, *, minimum: int | None = None, maximum: int | None = None) -> Any:
        value = self.get(name, int)
        if value is None:
            return default
        if minimum is not None and value < minimum:
            raise APIError(HTTPStatus.BAD_REQUEST, f"{name} must be at least {minimum}, not {value}", param=name)
        if maximum is not None and value > maximum:
            raise APIError(HTTPStatus.BAD_REQUEST, f"{name} must be at most {maximum}", param=name)
        return value

    def number(self, name: str, default: float) -> float:
        value = self.get(name, (int, float))
        if value is None:
            return default
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            raise APIError(HTTPStatus.BAD_REQUEST, f"{name} is out of range", param=name) from None
        if not math.isfinite(number):
            raise APIError(HTTPStatus.BAD_REQUEST, f"{name} must be a finite number", param=name)
        return number

    def refuse(self, name: str, *, unless: tuple[Any, ...] = (None, False, "", [])) -> None:
        """A 400 when ``name`` asks for something this server does not do (any value but those in ``unless``)."""
        if self.body.get(name) not in unless:
            raise APIError(HTTPStatus.BAD_REQUEST, f"{name} is not supported by mtsql serve", param=name)


def _no_constant(name: str) -> Any:
    """JSON has no NaN or Infinity (Python's reader accepts them): refused like any invalid JSON."""
    raise ValueError(f"{name} is not a JSON value")


def _plain_message(message: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's content parts (``[{"type": "text", "text": ...}]``) joined into the string chat templates expect."""
    content = message.get("content")
    if not isinstance(content, list):
        return message
    if not all(isinstance(part, dict) and part.get("type") == "text" for part in content):
        raise APIError(HTTPStatus.BAD_REQUEST, "only text content parts are supported", param="messages")
    return {**message, "content": "".join(str(part.get("text", "")) for part in content)}


def _stop_reason(generation: Generation, params: SamplingParams) -> int | None:
    """vLLM's ``stop_reason``: the stop token id when one of ``stop_token_ids`` ended it, None for eos or length."""
    if (
        generation.finish_reason == "stop"
        and generation.token_ids
        and generation.token_ids[-1] in params.stop_token_ids
    ):
        return generation.token_ids[-1]
    return None


def _json_logprob(logprob: float) -> float | None:
    """JSON has no infinities or NaN: -inf is clamped to -9999.0 as vLLM does, an unknown logprob is null."""
    return None if math.isnan(logprob) else max(logprob, -9999.0)


def _usage(prompt_ids: list[int], generation: Generation) -> dict[str, int]:
    completion = len(generation.token_ids)
    return {
        "prompt_tokens": len(prompt_ids),
        "completion_tokens": completion,
        "total_tokens": len(prompt_ids) + completion,
    }


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
        try:
            return json.loads(data, parse_constant=_no_constant)
        except ValueError as err:
            raise APIError(HTTPStatus.BAD_REQUEST, f"the body is not valid JSON: {err}") from err
        except RecursionError:
            raise APIError(HTTPStatus.BAD_REQUEST, "the body's JSON is nested too deeply") from None

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)
