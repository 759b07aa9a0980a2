"""``mtsql serve``'s limits, against hostile or broken clients: bodies, JSON, parameters, idle connections, the
listen backlog, clients that go away, and the optional API key. The server runs in-process over a scripted
backend (no model): what is tested is the HTTP layer and the request validation."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mtsql.backends import Backend, BackendStats, Generation, SamplingParams
from mtsql.serve import OpenAIServer

pytest.importorskip("transformers")


class EchoBackend(Backend):
    """Answers every prompt with its first token, as a finished completion."""

    name = "echo"

    def __init__(self, tokenizer: Any) -> None:
        self.model = "echo"
        self.tokenizer = tokenizer
        self.stats = BackendStats()

    async def generate(self, prompt_ids: Sequence[int], params: SamplingParams) -> Generation:
        return Generation([prompt_ids[0]], [-0.1], "length")


@pytest.fixture(scope="module")
def tokenizer(checkpoint: Any) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(checkpoint)


def start(tokenizer: Any, **options: Any) -> tuple[OpenAIServer, int]:
    server = OpenAIServer(EchoBackend(tokenizer), port=0, **options)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.url.rsplit(":", 1)[1].split("/")[0])


@pytest.fixture(scope="module")
def served(tokenizer: Any) -> Iterator[int]:
    server, port = start(tokenizer, idle_timeout=1.0)
    yield port
    server.shutdown()
    server.close()


def raw(port: int, request: bytes, *, read: bool = True) -> tuple[int, dict[str, Any]]:
    """Send ``request`` as it is; the status and the JSON body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        if not read:
            return 0, {}
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(
            next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        )
        while len(body) < length:
            body += sock.recv(65536)
        return int(head.split()[1]), json.loads(body[:length])


def post(port: int, body: bytes | str, *, path: str = "/v1/completions", headers: str = "") -> tuple[int, dict]:
    data = body.encode() if isinstance(body, str) else body
    request = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n{headers}Connection: close\r\n\r\n"
    return raw(port, request.encode() + data)


def test_a_negative_content_length_is_refused_not_read_to_the_end(served: int) -> None:
    request = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n" + b"x" * 100_000
    status, body = raw(served, request)
    assert status == 400 and "Content-Length" in body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"prompt": "a", "seed": ' + "9" * 40 + "}", "seed must be at most"),
        ('{"prompt": "a", "seed": -1}', "seed must be at least 0"),
        ('{"prompt": "a", "temperature": NaN}', "not valid JSON"),
        ('{"prompt": "a", "temperature": Infinity}', "not valid JSON"),
        ('{"prompt": "a", "temperature": 1' + "0" * 400 + "}", "temperature"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_bad_parameters_are_400s_not_500s(served: int, body: str, message: str) -> None:
    status, answer = post(served, body)
    assert status == 400 and message in answer["error"]["message"], answer


def test_unknown_chat_roles_are_refused(served: int) -> None:
    body = json.dumps({"messages": [{"role": "wizard", "content": "hi"}]})
    status, answer = post(served, body, path="/v1/chat/completions")
    assert status == 400 and "role among system, developer, user, assistant, tool" in answer["error"]["message"]
    status, _ = post(served, json.dumps({"messages": [{"role": "user", "content": "hi"}]}), path="/v1/chat/completions")
    assert status == 200


def test_idle_and_stalled_connections_are_closed(served: int, capfd: pytest.CaptureFixture[str]) -> None:
    """idle_timeout is 1 s here: a connection that sends nothing is closed; one that stalls in its body gets a 408
    and is closed; neither leaves a traceback."""
    for opening, answer in ((b"", b""), (b"POST /v1/completions HTTP/1.1\r\nContent-Length: 50\r\n\r\n{", b" 408 ")):
        with socket.create_connection(("127.0.0.1", served), timeout=10) as sock:
            sock.sendall(opening)
            start = time.monotonic()
            received = b""
            while chunk := sock.recv(1024):  # until the server closes (a 10 s socket timeout fails the test)
                received += chunk
            assert time.monotonic() - start < 5
            assert answer in received
    assert "Traceback" not in capfd.readouterr().err


def test_a_burst_of_concurrent_clients_is_served(served: int) -> None:
    body = json.dumps({"prompt": [5, 6], "max_tokens": 1})
    with ThreadPoolExecutor(40) as pool:
        statuses = list(pool.map(lambda _: post(served, body)[0], range(80)))
    assert statuses == [200] * 80


def test_a_client_that_goes_away_leaves_no_traceback(served: int, capfd: pytest.CaptureFixture[str]) -> None:
    body = json.dumps({"prompt": [5, 6], "max_tokens": 1}).encode()
    for _ in range(5):
        request = f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        raw(served, request + body, read=False)  # closes at once, before the answer
    time.sleep(0.5)
    assert "Traceback" not in capfd.readouterr().err
    assert post(served, body)[0] == 200


def test_an_api_key_guards_every_endpoint_but_health(tokenizer: Any) -> None:
    server, port = start(tokenizer, api_key="s3cret")
    try:
        body = json.dumps({"prompt": [5], "max_tokens": 1})
        assert post(port, body)[0] == 401
        assert post(port, body, headers="Authorization: Bearer wrong\r\n")[0] == 401
        assert post(port, body, headers="Authorization: Bearer s3cret\r\n")[0] == 200
        status, _ = raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status == 200
        status, _ = raw(port, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status == 401
    finally:
        server.shutdown()
        server.close()
