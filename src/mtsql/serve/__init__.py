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

Modules: :mod:`~mtsql.serve.schema` (the API's requests, responses and errors, no HTTP),
:mod:`~mtsql.serve.endpoints` (the endpoints over a backend) and :mod:`~mtsql.serve.server` (the HTTP transport
and its limits).
"""

from mtsql.serve.schema import CHAT_ROLES, DEFAULT_CHAT_MAX_TOKENS, APIError
from mtsql.serve.server import IDLE_TIMEOUT_S, MAX_BODY_BYTES, OpenAIServer

__all__ = ["CHAT_ROLES", "DEFAULT_CHAT_MAX_TOKENS", "IDLE_TIMEOUT_S", "MAX_BODY_BYTES", "APIError", "OpenAIServer"]
