"""The ``openai`` backend against a real ``mtsql serve`` subprocess on the tiny checkpoint (token-exact round trips,
logprobs, text prompts, no torch needed), against small real stdlib servers that misbehave on purpose (retries,
backoff, timeouts, 4xx, servers that return only text), and the server's endpoints over plain HTTP."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mtsql.backends import Backend, BackendError, Generation, SamplingParams, load_backend
from mtsql.backends.openai import OpenAIBackend
from mtsql.env import tool_schemas

torch = pytest.importorskip("torch")  # the server runs the transformers backend; the client needs no torch
pytest.importorskip("transformers")

MODEL = "tiny"
QUESTIONS = ("How many artists are there?", "Show all stages.", "Which festivals took place in 2020?")
GREEDY = SamplingParams(max_tokens=6, temperature=0.0)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread here and in the server: tiny matrices gain nothing from threads, and the same thread count
    on both sides makes the local and served greedy results comparable bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def start_server(checkpoint: Path, log: Path) -> tuple[subprocess.Popen[str], str]:
    """``mtsql serve`` as users start it, on a free loopback port; returns once ``/health`` answers."""
    command = [sys.executable, "-m", "mtsql", "serve", "--model", str(checkpoint), "--port", "0"]
    command += ["--served-model-name", MODEL, "--max-batch-size", "8", "--option", "device=cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    assert process.stdout is not None
    line = process.stdout.readline()  # the one line printed when ready ("" if it died)
    if "http://" not in line:
        process.kill()
        pytest.fail(f"mtsql serve did not start: {line!r}\n{log.read_text()}")
    url = line.split(" at ", 1)[1].strip()
    assert http("GET", url.removesuffix("/v1") + "/health") == (200, {"status": "ok"})
    return process, url


@pytest.fixture(scope="module")
def server(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, url = start_server(checkpoint, tmp_path_factory.mktemp("serve") / "stderr.log")
    yield url
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0


@pytest.fixture(scope="module")
def local(checkpoint: Path) -> Backend:
    """The backend the server runs, loaded here: what the served results must equal."""
    return load_backend("transformers", str(checkpoint), device="cpu")


@pytest.fixture(scope="module")
def prompts(local: Backend) -> list[list[int]]:
    tokenizer = local.tokenizer
    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False)
        for q in QUESTIONS
    ]
    return [tokenizer.encode(text, add_special_tokens=False) for text in texts]


def client(url: str, checkpoint: Path, **options: Any) -> OpenAIBackend:
    backend = load_backend("openai", MODEL, base_url=url, tokenizer=str(checkpoint), **options)
    assert isinstance(backend, OpenAIBackend)
    return backend


def run(backend: Backend, work: Callable[[], Any]) -> Any:
    """``work()``'s coroutine in a fresh event loop, closing the backend's connections after."""

    async def main() -> Any:
        try:
            return await work()
        finally:
            await backend.aclose()

    return asyncio.run(main())


def generate(backend: Backend, prompt: Sequence[int], params: SamplingParams = GREEDY) -> Generation:
    return run(backend, lambda: backend.generate(prompt, params))


def http(method: str, url: str, body: bytes | dict[str, Any] | None = None) -> tuple[int, Any]:
    """A plain HTTP call: the status and the decoded JSON answer."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


# --- the openai backend against mtsql serve ---------------------------------------------------------------------


def test_token_exact_round_trip_equals_the_local_backend(
    server: str, checkpoint: Path, local: Backend, prompts: list[list[int]]
) -> None:
    backend = client(server, checkpoint)
    for prompt in prompts:
        served, expected = generate(backend, prompt), generate(local, prompt)
        assert served.token_ids == expected.token_ids and served.finish_reason == expected.finish_reason == "length"
        assert served.logprobs == pytest.approx(expected.logprobs, abs=1e-5)
        assert not served.retokenized
    assert backend.stats.calls == backend.stats.prompts == len(prompts)
    assert backend.stats.generated_tokens == len(prompts) * GREEDY.max_tokens and backend.stats.generate_time_s > 0


def test_stop_token_ends_the_ids(server: str, checkpoint: Path, local: Backend, prompts: list[list[int]]) -> None:
    backend = client(server, checkpoint)
    free = generate(backend, prompts[0])
    stop = free.token_ids[2]
    params = SamplingParams(max_tokens=6, temperature=0.0, stop_token_ids=(stop,))
    stopped = generate(backend, prompts[0], params)
    assert stopped.finish_reason == "stop"
    assert stopped.token_ids == free.token_ids[: free.token_ids.index(stop) + 1]  # the stop token included
    assert stopped.token_ids == generate(local, prompts[0], params).token_ids


def test_sampling_is_seeded_with_logprobs(server: str, checkpoint: Path, prompts: list[list[int]]) -> None:
    backend = client(server, checkpoint)
    params = SamplingParams(max_tokens=5, temperature=1.0, top_p=0.9, top_k=50, seed=7)
    first, again = generate(backend, prompts[1], params), generate(backend, prompts[1], params)
    assert first == again
    assert len(first.logprobs) == len(first.token_ids) and all(-30 < lp <= 0 for lp in first.logprobs)


def test_text_prompts_give_the_same_ids(server: str, checkpoint: Path, prompts: list[list[int]]) -> None:
    by_ids = generate(client(server, checkpoint), prompts[2])
    by_text = generate(client(server, checkpoint, token_prompts=False), prompts[2])
    assert by_text == by_ids


def test_many_concurrent_calls(server: str, checkpoint: Path, prompts: list[list[int]]) -> None:
    backend = client(server, checkpoint, max_concurrency=4)
    many = [prompts[i % len(prompts)] for i in range(12)]
    results = run(backend, lambda: asyncio.gather(*(backend.generate(p, GREEDY) for p in many)))
    assert all(len(r.token_ids) == GREEDY.max_tokens and not r.retokenized for r in results)
    assert backend.stats.calls == 12


def test_server_errors_are_not_retried(server: str, checkpoint: Path, local: Backend) -> None:
    backend = client(server, checkpoint, backoff_s=5.0)
    start = time.perf_counter()
    with pytest.raises(BackendError, match=r"400: token ids must be in"):
        generate(backend, [len(local.tokenizer) + 5])
    with pytest.raises(BackendError, match=r"404: the model `other` does not exist"):
        generate(load_backend("openai", "other", base_url=server, tokenizer=str(checkpoint)), [1, 2])
    assert time.perf_counter() - start < 5.0  # no backoff was waited
    assert backend.stats.calls == 0


def test_works_without_torch(server: str, checkpoint: Path, prompts: list[list[int]]) -> None:
    code = f"""
import asyncio, sys
sys.modules["torch"] = None  # as if torch were not installed
from mtsql.backends import SamplingParams, load_backend
backend = load_backend("openai", {MODEL!r}, base_url={server!r}, tokenizer={str(checkpoint)!r})
print(asyncio.run(backend.generate({prompts[0]!r}, SamplingParams(max_tokens=6, temperature=0))).token_ids)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == generate(client(server, checkpoint), prompts[0]).token_ids


# --- the server over plain HTTP ---------------------------------------------------------------------------------


def test_models_health_and_errors(server: str) -> None:
    status, models = http("GET", f"{server}/models")
    assert status == 200 and [m["id"] for m in models["data"]] == [MODEL] and models["data"][0]["max_model_len"] > 0
    cases: list[tuple[str, str, Any, int, str | None]] = [
        ("POST", "/completions", b"{not json", 400, None),
        ("POST", "/completions", b"[1, 2]", 400, None),
        ("POST", "/completions", {"model": MODEL}, 400, "prompt"),
        ("POST", "/completions", {"prompt": [1], "temperature": "hot"}, 400, "temperature"),
        ("POST", "/completions", {"prompt": [1], "n": 2}, 400, "n"),
        ("POST", "/completions", {"prompt": [1], "stop": ["\n"]}, 400, "stop"),
        ("POST", "/completions", {"prompt": [1], "stream": True}, 400, "stream"),
        ("POST", "/completions", {"prompt": [1], "repetition_penalty": 1.2}, 400, "repetition_penalty"),
        ("POST", "/completions", {"prompt": [1], "max_tokens": 10**6}, 400, "max_tokens"),
        ("POST", "/completions", {"prompt": [1], "top_p": 0}, 400, None),
        ("POST", "/completions", {"model": "other", "prompt": [1]}, 404, "model"),
        ("POST", "/chat/completions", {"messages": []}, 400, "messages"),
        (
            "POST",
            "/chat/completions",
            {"messages": [{"role": "user", "content": [{"type": "image"}]}]},
            400,
            "messages",
        ),
        ("GET", "/completions", None, 405, None),
        ("GET", "/nothing", None, 404, None),
    ]
    for method, path, body, expected, param in cases:
        status, answer = http(method, server + path, body)
        assert status == expected == answer["error"]["code"], (path, body, answer)
        assert answer["error"]["message"] and answer["error"]["param"] == param, (path, body, answer)


def test_completions_as_vllm_answers(server: str, local: Backend, prompts: list[list[int]]) -> None:
    tokenizer = local.tokenizer
    body = {"model": MODEL, "prompt": prompts[0], "max_tokens": 4, "temperature": 0, "logprobs": 1}
    status, plain = http("POST", f"{server}/completions", body)
    assert status == 200 and plain["object"] == "text_completion"
    choice = plain["choices"][0]
    assert "token_ids" not in choice and choice["finish_reason"] == "length"
    assert plain["usage"] == {
        "prompt_tokens": len(prompts[0]),
        "completion_tokens": 4,
        "total_tokens": len(prompts[0]) + 4,
    }
    status, with_ids = http(
        "POST", f"{server}/completions", {**body, "return_token_ids": True, "return_tokens_as_token_ids": True}
    )
    ids = with_ids["choices"][0]["token_ids"]
    assert with_ids["choices"][0]["prompt_token_ids"] == prompts[0]
    assert with_ids["choices"][0]["logprobs"]["tokens"] == [f"token_id:{i}" for i in ids]
    assert choice["logprobs"]["tokens"] == [tokenizer.decode([i]) for i in ids]
    assert choice["logprobs"]["token_logprobs"] == with_ids["choices"][0]["logprobs"]["token_logprobs"]
    assert choice["text"] == tokenizer.decode(ids, skip_special_tokens=True)
    # a string prompt is encoded by the server; a batch of one prompt is one prompt
    text = tokenizer.decode(prompts[0])
    status, from_text = http("POST", f"{server}/completions", {**body, "prompt": [text], "return_token_ids": True})
    assert from_text["choices"][0]["prompt_token_ids"] == prompts[0] and from_text["choices"][0]["token_ids"] == ids


def test_chat_completions_render_the_chat_template(server: str, local: Backend) -> None:
    tokenizer = local.tokenizer
    messages = [
        {"role": "system", "content": "You are an expert in SQLite."},
        {"role": "user", "content": [{"type": "text", "text": "How many "}, {"type": "text", "text": "artists?"}]},
    ]
    body = {
        "model": MODEL,
        "messages": messages,
        "tools": tool_schemas(),
        "max_completion_tokens": 5,
        "temperature": 0,
        "logprobs": True,
        "return_token_ids": True,
        "chat_template_kwargs": {"enable_thinking": False},
    }
    status, answer = http("POST", f"{server}/chat/completions", body)
    assert status == 200 and answer["object"] == "chat.completion"
    flat = [messages[0], {"role": "user", "content": "How many artists?"}]
    rendered = tokenizer.apply_chat_template(
        flat, tools=tool_schemas(), add_generation_prompt=True, tokenize=False, enable_thinking=False
    )
    assert answer["prompt_token_ids"] == tokenizer.encode(rendered, add_special_tokens=False)
    choice = answer["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "length"
    assert choice["message"]["content"] == tokenizer.decode(choice["token_ids"], skip_special_tokens=True)
    assert [entry["logprob"] for entry in choice["logprobs"]["content"]] == pytest.approx(
        generate(local, answer["prompt_token_ids"], SamplingParams(max_tokens=5, temperature=0)).logprobs, abs=1e-5
    )


@pytest.mark.slow
def test_sigterm_finishes_the_requests_in_flight(checkpoint: Path, prompts: list[list[int]], tmp_path: Path) -> None:
    process, url = start_server(checkpoint, tmp_path / "stderr.log")
    answers: list[tuple[int, Any]] = []
    body = {"prompt": prompts[0], "max_tokens": 2000, "temperature": 0, "top_k": -1}
    request = threading.Thread(target=lambda: answers.append(http("POST", f"{url}/completions", body)))
    request.start()
    time.sleep(0.5)
    assert not answers  # still generating
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 0
    request.join()
    assert answers[0][0] == 200 and answers[0][1]["usage"]["completion_tokens"] == 2000


# --- the openai backend against servers that misbehave ------------------------------------------------------------


@dataclass
class Reply:
    """One scripted answer: a status, a body (default: a valid completion), headers, a delay before answering."""

    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def completion(
    text: str = "", finish: str = "length", *, logprobs: dict[str, Any] | None = None, **choice: Any
) -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 0,
        "model": MODEL,
        "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": logprobs, **choice}],
    }


class ScriptedServer(ThreadingHTTPServer):
    """A real HTTP server answering ``/v1/completions`` with :class:`Reply` objects in order (the last repeats),
    recording each request body and the most requests it held at once."""

    daemon_threads = True

    def __init__(self, replies: Sequence[Reply], port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _ScriptedHandler)
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.url = f"http://127.0.0.1:{self.server_address[1]}/v1"

    def next_reply(self, body: dict[str, Any]) -> Reply:
        with self.lock:
            self.requests.append(body)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.replies[min(len(self.requests), len(self.replies)) - 1]

    def __enter__(self) -> ScriptedServer:
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.shutdown()
        self.server_close()


class _ScriptedHandler(BaseHTTPRequestHandler):
    server: ScriptedServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = self.server.next_reply(body)
        try:
            self.server.closing.wait(reply.delay_s)
            data = json.dumps(reply.body if reply.body is not None else completion("x", token_ids=[5])).encode()
            self.send_response(reply.status)
            for name, value in {**reply.headers, "Content-Length": str(len(data))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
            pass
        finally:
            with self.server.lock:
                self.server.in_flight -= 1

    def log_message(self, format: str, *args: Any) -> None:
        pass


def scripted_client(checkpoint: Path, url: str, **options: Any) -> OpenAIBackend:
    return client(url, checkpoint, **{"backoff_s": 0.01, "max_backoff_s": 0.05, **options})


def test_request_sent_as_vllm_reads_it(checkpoint: Path, local: Backend, prompts: list[list[int]]) -> None:
    params = SamplingParams(max_tokens=9, temperature=0.5, top_p=0.8, top_k=20, stop_token_ids=(3, 4), seed=11)
    with ScriptedServer([Reply()]) as fake:
        generate(scripted_client(checkpoint, fake.url), prompts[0], params)
        generate(scripted_client(checkpoint, fake.url, token_prompts=False), prompts[0], GREEDY)
    by_ids, by_text = fake.requests
    assert by_ids == {
        "model": MODEL,
        "prompt": prompts[0],
        "max_tokens": 9,
        "temperature": 0.5,
        "top_p": 0.8,
        "seed": 11,
        "logprobs": 1,
        "top_k": 20,
        "min_p": 0.0,
        "repetition_penalty": 1.0,
        "stop_token_ids": [3, 4],
        "return_token_ids": True,
        "return_tokens_as_token_ids": True,
    }
    assert by_text["prompt"] == local.tokenizer.decode(prompts[0]) and by_text["add_special_tokens"] is False
    assert by_text["top_k"] == -1 and "stop_token_ids" not in by_text and "seed" not in by_text


def test_retries_5xx_and_429_with_backoff(checkpoint: Path) -> None:
    replies = [Reply(503), Reply(500), Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "0.3"}), Reply()]
    with ScriptedServer(replies) as fake:
        start = time.perf_counter()
        result = generate(scripted_client(checkpoint, fake.url, max_backoff_s=1.0), [1, 2, 3])
        elapsed = time.perf_counter() - start
    assert result.token_ids == [5] and len(fake.requests) == 4
    assert elapsed >= 0.3  # Retry-After honoured (up to max_backoff_s)


def test_gives_up_after_max_retries(checkpoint: Path) -> None:
    with ScriptedServer([Reply(503, {"error": {"message": "overloaded"}})]) as fake:
        backend = scripted_client(checkpoint, fake.url, max_retries=2)
        with pytest.raises(BackendError, match="503: overloaded"):
            generate(backend, [1, 2, 3])
    assert len(fake.requests) == 3 and backend.stats.calls == 0


def test_4xx_is_not_retried(checkpoint: Path) -> None:
    replies = [Reply(400, {"error": {"message": "bad prompt"}}), Reply()]
    with ScriptedServer(replies) as fake, pytest.raises(BackendError, match="400: bad prompt"):
        generate(scripted_client(checkpoint, fake.url), [1])
    assert len(fake.requests) == 1


def test_waits_for_a_server_that_is_down_then_up(checkpoint: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = scripted_client(checkpoint, f"http://127.0.0.1:{port}/v1", max_retries=30, max_backoff_s=0.1)
    started: list[ScriptedServer] = []
    timer = threading.Timer(0.5, lambda: started.append(ScriptedServer([Reply()], port=port).__enter__()))
    timer.start()
    try:
        assert generate(backend, [1, 2]).token_ids == [5]
    finally:
        timer.join()
        started[0].__exit__()
    with pytest.raises(BackendError, match="unreachable after 3 attempts"):
        generate(scripted_client(checkpoint, f"http://127.0.0.1:{port}/v1", max_retries=2), [1, 2])


def test_timeouts_are_retried_then_fail(checkpoint: Path) -> None:
    with ScriptedServer([Reply(delay_s=10.0)]) as fake:
        backend = scripted_client(checkpoint, fake.url, timeout=0.3, max_retries=1)
        start = time.perf_counter()
        with pytest.raises(BackendError, match="unreachable after 2 attempts: APITimeoutError"):
            generate(backend, [1, 2])
        assert time.perf_counter() - start < 5
    assert len(fake.requests) == 2


def test_concurrency_limit(checkpoint: Path) -> None:
    with ScriptedServer([Reply(delay_s=0.05)]) as fake:
        backend = scripted_client(checkpoint, fake.url, max_concurrency=3)
        results = run(backend, lambda: asyncio.gather(*(backend.generate([i + 1], GREEDY) for i in range(20))))
    assert len(results) == len(fake.requests) == 20 and fake.max_in_flight == 3
    assert backend.stats.calls == backend.stats.prompts == 20 and backend.stats.generated_tokens == 20


def test_ids_from_whatever_the_server_returns(checkpoint: Path, local: Backend) -> None:
    tokenizer = local.tokenizer
    im_end, endoftext = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    text = "SELECT name FROM artist"
    text_ids = tokenizer.encode(text, add_special_tokens=False)
    nan = math.nan

    def logprobs(tokens: list[str], values: list[float]) -> dict[str, Any]:
        return {"tokens": tokens, "token_logprobs": values, "top_logprobs": None, "text_offset": None}

    cases: list[tuple[dict[str, Any], Generation]] = [
        # vLLM: ids with the stop token, logprobs as token_id:N
        (
            completion(
                "ab", "stop", token_ids=[7, im_end], logprobs=logprobs(["token_id:7", f"token_id:{im_end}"], [-1, -2])
            ),
            Generation([7, im_end], [-1.0, -2.0], "stop"),
        ),
        # a server that drops the eos from the ids: it is put back, its logprob unknown
        (
            completion("a", "stop", token_ids=[7], logprobs=logprobs(["a"], [-1])),
            Generation([7, im_end], [-1.0, nan], "stop"),
        ),
        # the checkpoint's second eos ends a completion too; a stop token from stop_reason is put back
        (completion("a", "stop", token_ids=[7, endoftext]), Generation([7, endoftext], [nan, nan], "stop")),
        (completion("a", "stop", token_ids=[7], stop_reason=9), Generation([7, 9], [nan, nan], "stop")),
        # ids only in the logprob tokens
        (
            completion("ab", logprobs=logprobs(["token_id:7", "token_id:8"], [-1, -2])),
            Generation([7, 8], [-1.0, -2.0], "length"),
        ),
        # only text (Ollama): retokenized, logprobs used when they are as many as the tokens
        (
            completion(text, "stop"),
            Generation([*text_ids, im_end], [nan] * (len(text_ids) + 1), "stop", retokenized=True),
        ),
        (
            completion(text, logprobs=logprobs(["t"] * len(text_ids), [-0.5] * len(text_ids))),
            Generation(text_ids, [-0.5] * len(text_ids), "length", retokenized=True),
        ),
        (
            completion(text, logprobs=logprobs(["t"], [-0.5])),
            Generation(text_ids, [nan] * len(text_ids), "length", True),
        ),
        (completion(text, "eos_token"), Generation([*text_ids, im_end], [nan] * (len(text_ids) + 1), "stop", True)),
    ]
    with ScriptedServer([Reply(body=body) for body, _ in cases]) as fake:
        backend = scripted_client(checkpoint, fake.url)
        for body, expected in cases:
            result = generate(backend, [1, 2])
            assert result.token_ids == expected.token_ids and result.finish_reason == expected.finish_reason, body
            assert result.retokenized == expected.retokenized, body
            assert str(result.logprobs) == str(expected.logprobs), body  # nan == nan as text
    bad = [completion("x", "content_filter"), {**completion(), "choices": []}, completion(token_ids=["x"])]
    with ScriptedServer([Reply(body=body) for body in bad]) as fake:
        backend = scripted_client(checkpoint, fake.url)
        for match in ("content_filter", "no completion", "malformed completion"):
            with pytest.raises(BackendError, match=match):
                generate(backend, [1])


def test_options(checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://example.invalid:9/v1")
    backend = load_backend("openai", MODEL, tokenizer=str(checkpoint))
    assert backend.base_url == "http://example.invalid:9/v1" and backend.max_model_len is None  # type: ignore[attr-defined]
    assert client("http://h/v1", checkpoint, max_model_len=4096).max_model_len == 4096
    with pytest.raises(ValueError, match="pass tokenizer="):
        load_backend("openai", str(tmp_path))  # no tokenizer there
    with pytest.raises(ValueError, match="max_concurrency"):
        client("http://h/v1", checkpoint, max_concurrency=0)
