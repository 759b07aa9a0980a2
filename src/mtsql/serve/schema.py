"""The OpenAI API as ``mtsql serve`` speaks it, without HTTP: request bodies read and validated, and the response,
choice, usage, logprob and error objects built.

Why apart from the transport: what a client may ask and what it gets back is the API's contract (every mistake a
400 naming the parameter, the JSON shapes vLLM and the OpenAI SDK expect), whatever carries the bytes.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from enum import StrEnum
from http import HTTPStatus
from typing import Any, Final

from mtsql.backends.base import FinishReason, Generation, SamplingParams


class Role(StrEnum):
    """The roles a chat request's messages may have (the chat template then decides what it renders)."""

    SYSTEM = "system"
    DEVELOPER = "developer"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class ObjectType(StrEnum):
    """The ``object`` field of each response."""

    LIST = "list"
    MODEL = "model"
    TEXT_COMPLETION = "text_completion"
    CHAT_COMPLETION = "chat.completion"


class ErrorType(StrEnum):
    """The ``type`` of an error object."""

    INVALID_REQUEST = "invalid_request_error"
    NOT_FOUND = "not_found_error"
    SERVER = "server_error"


CHAT_ROLES: Final = tuple(Role)
DEFAULT_CHAT_MAX_TOKENS: Final = 1024
"""Chat requests without ``max_tokens`` get the rest of the context when the model's length is known, else this."""
MAX_SEED: Final = 2**63 - 1


class APIError(Exception):
    """A request that gets an OpenAI-style error answer."""

    def __init__(self, status: HTTPStatus, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param

    def body(self) -> dict[str, Any]:
        if self.status == HTTPStatus.NOT_FOUND:
            kind = ErrorType.NOT_FOUND
        else:
            kind = ErrorType.INVALID_REQUEST if self.status < 500 else ErrorType.SERVER
        return {"error": {"message": str(self), "type": kind, "param": self.param, "code": int(self.status)}}


def bad_request(message: str, param: str | None = None) -> APIError:
    return APIError(HTTPStatus.BAD_REQUEST, message, param=param)


# --- requests -------------------------------------------------------------------------------------------------


def decode_json(data: bytes) -> Any:
    """A request body's JSON; invalid JSON, ``NaN``/``Infinity`` (Python's reader accepts them) and nesting too deep
    for the parser are 400s."""
    try:
        return json.loads(data, parse_constant=_no_constant)
    except ValueError as err:
        raise bad_request(f"the body is not valid JSON: {err}") from err
    except RecursionError:
        raise bad_request("the body's JSON is nested too deeply") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


_JSON_TYPES: Final[dict[Any, str]] = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    list: "an array",
    dict: "an object",
}


class RequestBody:
    """A request body with typed, validated access: every mistake is a 400 naming the parameter."""

    def __init__(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        self.body: dict[str, Any] = body

    def get(self, name: str, kind: type | tuple[type, ...], *, required: bool = False) -> Any:
        value = self.body.get(name)
        if value is None:
            if required:
                raise bad_request(f"{name} is required", name)
            return None
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise bad_request(f"{name} must be {_JSON_TYPES.get(kind, 'a number')}", name)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name, bool)
        return default if value is None else value

    def integer(self, name: str, default: int | None, *, minimum: int | None = None, maximum: int | None = None) -> Any:
        value = self.get(name, int)
        if value is None:
            return default
        if minimum is not None and value < minimum:
            raise bad_request(f"{name} must be at least {minimum}, not {value}", name)
        if maximum is not None and value > maximum:
            raise bad_request(f"{name} must be at most {maximum}", name)
        return value

    def number(self, name: str, default: float) -> float:
        value = self.get(name, (int, float))
        if value is None:
            return default
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            raise bad_request(f"{name} is out of range", name) from None
        if not math.isfinite(number):
            raise bad_request(f"{name} must be a finite number", name)
        return number

    def refuse(self, name: str, *, unless: tuple[Any, ...] = (None, False, "", [])) -> None:
        """A 400 when ``name`` asks for something this server does not do (any value but those in ``unless``)."""
        if self.body.get(name) not in unless:
            raise bad_request(f"{name} is not supported by mtsql serve", name)


def check_common(request: RequestBody, model_name: str) -> None:
    """The model's name, and what neither endpoint does (asking for it is a 400, not a silent no)."""
    model = request.get("model", str)
    if model is not None and model != model_name:
        raise APIError(
            HTTPStatus.NOT_FOUND,
            f"the model `{model}` does not exist (this server has `{model_name}`)",
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
        raise bad_request("only n=1 is supported", "n")


def check_completion_only(request: RequestBody) -> None:
    """What /v1/completions alone could ask for and this server does not do."""
    request.refuse("echo")
    request.refuse("suffix")
    request.refuse("best_of", unless=(None, 1))


def completion_prompt(request: RequestBody) -> str | list[int]:
    """The one prompt of a completion request: a text or token ids (a batch of one is unwrapped)."""
    prompt = request.body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]
    if isinstance(prompt, str) or (isinstance(prompt, list) and all(type(i) is int for i in prompt)):
        return prompt
    raise bad_request("prompt must be one string or one list of token ids", "prompt")


def chat_messages(request: RequestBody) -> list[Any]:
    """The conversation, as given: a non-empty list of objects whose roles are known."""
    messages = request.get("messages", list, required=True)
    if not messages or not all(isinstance(m, dict) and m.get("role") in CHAT_ROLES for m in messages):
        raise bad_request(
            f"messages must be a non-empty list of objects with a role among {', '.join(CHAT_ROLES)}", "messages"
        )
    return messages


def plain_message(message: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's content parts (``[{"type": "text", "text": ...}]``) joined into the string chat templates expect."""
    content = message.get("content")
    if not isinstance(content, list):
        return message
    if not all(isinstance(part, dict) and part.get("type") == "text" for part in content):
        raise bad_request("only text content parts are supported", "messages")
    return {**message, "content": "".join(str(part.get("text", "")) for part in content)}


def chat_max_tokens(request: RequestBody, prompt_tokens: int, max_model_len: int | None) -> int:
    """``max_completion_tokens`` (OpenAI's newer name), else ``max_tokens``, else the rest of the context."""
    max_tokens = request.integer("max_completion_tokens", None, minimum=1)
    if max_tokens is None:
        default = DEFAULT_CHAT_MAX_TOKENS
        if max_model_len is not None:
            default = max(1, max_model_len - prompt_tokens)
        max_tokens = request.integer("max_tokens", default, minimum=1)
    return max_tokens


def sampling_params(
    request: RequestBody, prompt_tokens: int, max_tokens: int, max_model_len: int | None
) -> SamplingParams:
    """The backend's sampling parameters; a prompt and completion that cannot fit the context are a 400."""
    if max_model_len is not None and prompt_tokens + max_tokens > max_model_len:
        raise bad_request(
            f"this model's maximum context length is {max_model_len} tokens; the request asks for "
            f"{prompt_tokens + max_tokens} ({prompt_tokens} in the prompt, {max_tokens} in the completion)",
            "max_tokens",
        )
    stop_token_ids = request.get("stop_token_ids", list) or []
    if not all(type(i) is int for i in stop_token_ids):
        raise bad_request("stop_token_ids must be integers", "stop_token_ids")
    top_k = request.integer("top_k", 0, minimum=-1)
    try:
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=request.number("temperature", 1.0),
            top_p=request.number("top_p", 1.0),
            top_k=max(top_k, 0),  # vLLM spells "no top-k" -1
            stop_token_ids=tuple(stop_token_ids),
            seed=request.integer("seed", None, minimum=0, maximum=MAX_SEED),
        )
    except ValueError as err:
        raise bad_request(str(err)) from err


# --- responses ------------------------------------------------------------------------------------------------


def model_list(model_name: str, created: int, max_model_len: int | None) -> dict[str, Any]:
    card = {"id": model_name, "object": ObjectType.MODEL, "created": created, "owned_by": "mtsql"}
    if max_model_len is not None:
        card["max_model_len"] = max_model_len
    return {"object": ObjectType.LIST, "data": [card]}


def text_token_ids(generation: Generation) -> list[int]:
    """The ids the completion's text is decoded from: without the stop token, as vLLM writes it."""
    if generation.finish_reason == FinishReason.STOP:
        return generation.token_ids[:-1]
    return generation.token_ids


def json_logprob(logprob: float) -> float | None:
    """JSON has no infinities or NaN: -inf is clamped to -9999.0 as vLLM does, an unknown logprob is null."""
    return None if math.isnan(logprob) else max(logprob, -9999.0)


def completion_logprobs(tokens: list[str], logprobs: list[float]) -> dict[str, Any]:
    """/v1/completions' logprobs of the sampled ``tokens``: only the sampled token is known, so it is the top one."""
    values = [json_logprob(lp) for lp in logprobs]
    offsets, offset = [], 0
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": values,
        "top_logprobs": [{t: lp} for t, lp in zip(tokens, values, strict=True)],
        "text_offset": offsets,
    }


def chat_logprobs(tokens: list[str], logprobs: list[float]) -> dict[str, Any]:
    """/v1/chat/completions' logprobs of the sampled ``tokens``."""
    values = [json_logprob(lp) for lp in logprobs]
    return {
        "content": [
            {"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": [{"token": t, "logprob": lp}]}
            for t, lp in zip(tokens, values, strict=True)
        ]
    }


def stop_reason(generation: Generation, params: SamplingParams) -> int | None:
    """vLLM's ``stop_reason``: the stop token id when one of ``stop_token_ids`` ended it, None for eos or length."""
    if (
        generation.finish_reason == FinishReason.STOP
        and generation.token_ids
        and generation.token_ids[-1] in params.stop_token_ids
    ):
        return generation.token_ids[-1]
    return None


def usage(prompt_ids: list[int], generation: Generation) -> dict[str, int]:
    completion = len(generation.token_ids)
    return {
        "prompt_tokens": len(prompt_ids),
        "completion_tokens": completion,
        "total_tokens": len(prompt_ids) + completion,
    }


def completion_response(
    model_name: str,
    prompt_ids: list[int],
    generation: Generation,
    params: SamplingParams,
    *,
    text: str,
    logprobs: dict[str, Any] | None,
    return_token_ids: bool,
) -> dict[str, Any]:
    """A /v1/completions answer with one choice; ``return_token_ids`` adds vLLM's ``prompt_token_ids`` and
    ``token_ids`` to it."""
    choice: dict[str, Any] = {
        "index": 0,
        "text": text,
        "logprobs": logprobs,
        "finish_reason": generation.finish_reason,
        "stop_reason": stop_reason(generation, params),
    }
    if return_token_ids:
        choice["prompt_token_ids"] = prompt_ids
        choice["token_ids"] = generation.token_ids
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": ObjectType.TEXT_COMPLETION,
        "created": int(time.time()),
        "model": model_name,
        "choices": [choice],
        "usage": usage(prompt_ids, generation),
    }


def chat_response(
    model_name: str,
    prompt_ids: list[int],
    generation: Generation,
    params: SamplingParams,
    *,
    text: str,
    logprobs: dict[str, Any] | None,
    return_token_ids: bool,
) -> dict[str, Any]:
    """A /v1/chat/completions answer with one assistant message; ``return_token_ids`` adds vLLM's ``token_ids``
    to the choice and ``prompt_token_ids`` to the answer."""
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": Role.ASSISTANT, "content": text},
        "logprobs": logprobs,
        "finish_reason": generation.finish_reason,
        "stop_reason": stop_reason(generation, params),
    }
    response: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": ObjectType.CHAT_COMPLETION,
        "created": int(time.time()),
        "model": model_name,
        "choices": [choice],
        "usage": usage(prompt_ids, generation),
    }
    if return_token_ids:
        choice["token_ids"] = generation.token_ids
        response["prompt_token_ids"] = prompt_ids
    return response
