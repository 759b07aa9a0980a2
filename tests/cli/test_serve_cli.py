"""``mtsql serve``: an address that cannot be listened on is refused at once, before any model loads."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from mtsql.cli.main import app


def flat(output: str) -> str:
    return " ".join(output.replace("│", " ").split())


def test_a_taken_port_or_an_unknown_host_exits_2_before_loading_the_model() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The model does not exist: had it been loaded first, the error would be about the model.
        result = CliRunner().invoke(app, ["serve", "--model", "no-such-model", "--port", str(port)])
    assert result.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in flat(result.output)
    result = CliRunner().invoke(app, ["serve", "--model", "no-such-model", "--host", "not a host"])
    assert result.exit_code == 2 and "cannot listen on not a host:8000" in flat(result.output)
