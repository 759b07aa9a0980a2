"""``mtsql serve``: an OpenAI-compatible server for a local model (see :mod:`mtsql.serve`)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from mtsql.cli.common import BackendChoice, key_value_options, quiet_hub

#: The engines a server can run: ``openai`` is a client of a server, not one to serve.
LOCAL_BACKENDS = tuple(choice.value for choice in BackendChoice if choice is not BackendChoice.openai)


def register(app: typer.Typer) -> None:
    app.command(name="serve")(serve_command)


def serve_command(
    model: Annotated[
        str,
        typer.Option("--model", help="A checkpoint folder, hub id, a model of 'mtsql models list' or a .gguf file."),
    ],
    backend: Annotated[
        str, typer.Option("--backend", help="The engine: transformers, vllm or llamacpp.")
    ] = "transformers",
    host: Annotated[str, typer.Option("--host", help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="The port (0: any free one).")] = 8000,
    served_model_name: Annotated[
        str | None, typer.Option("--served-model-name", help="The model's name in the API (default: --model).")
    ] = None,
    max_batch_size: Annotated[
        int | None, typer.Option("--max-batch-size", min=1, help="Most requests generated together.")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            help="A backend option KEY=VALUE (VALUE read as JSON when it parses, else as text), e.g. --option "
            "device=cuda --option dtype=bfloat16; repeatable.",
        ),
    ] = None,
    log_requests: Annotated[bool, typer.Option("--log-requests", help="Log every request on stderr.")] = False,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="MTSQL_SERVE_API_KEY",
            help="Require 'Authorization: Bearer KEY' on every endpoint but /health (do set one beyond loopback).",
        ),
    ] = None,
    idle_timeout: Annotated[
        float, typer.Option("--idle-timeout", min=1.0, help="Seconds before an idle or stalled connection closes.")
    ] = 30.0,
) -> None:
    """Serve MODEL over HTTP with the OpenAI API: /v1/completions (token-id prompts, vLLM's return_token_ids),
    /v1/chat/completions, /v1/models and /health.

    Prints one line with the base URL when ready; SIGINT or SIGTERM stops it after the requests in flight. Exit
    code 2 for bad arguments, a missing extra, or an address that cannot be listened on (checked before the
    model loads); 1 when the model cannot be loaded.
    """
    if backend not in LOCAL_BACKENDS:
        raise typer.BadParameter(f"must be one of {', '.join(LOCAL_BACKENDS)}", param_hint="--backend")
    options = key_value_options(option, param_hint="--option")
    _check_address(host, port)  # before the model loads: a wrong host or a taken port is known at once
    logging.basicConfig(level=logging.INFO if log_requests else logging.WARNING, format="%(levelname)s %(message)s")

    from mtsql.backends import BatchedBackend, load_backend
    from mtsql.serve import OpenAIServer

    quiet_hub()  # no progress bars in a server's log

    try:
        engine = load_backend(backend, model, **options)
    except (ImportError, TypeError) as err:  # a missing extra, an option the backend does not take
        typer.echo(f"mtsql serve: {err}", err=True)
        raise typer.Exit(code=2) from None
    except (OSError, ValueError) as err:
        typer.echo(f"mtsql serve: cannot load {model}: {err}", err=True)
        raise typer.Exit(code=1) from None
    if max_batch_size is not None and isinstance(engine, BatchedBackend):
        engine.max_batch_size = max_batch_size
    try:
        server = OpenAIServer(
            engine, served_model_name=served_model_name, host=host, port=port, api_key=api_key,
            idle_timeout=idle_timeout,
        )  # fmt: skip
    except OSError as err:
        typer.echo(f"mtsql serve: cannot listen on {host}:{port}: {err}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"mtsql serve: {server.model_name} ({backend}) at {server.url}", color=False)
    server.run()


def _check_address(host: str, port: int) -> None:
    """Exit 2 with one line when ``host:port`` cannot be listened on (a name that does not resolve, a port taken or
    not allowed); the server binds it again once the model is loaded."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as err:
        typer.echo(f"mtsql serve: cannot listen on {host}:{port}: {err.strerror or err}", err=True)
        raise typer.Exit(code=2) from None
