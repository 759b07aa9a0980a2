"""``mtsql sql``: run one untrusted query on a SQLite database, safely, and print the result as JSON."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from mtsql.cli.common import positive_seconds


def register(app: typer.Typer) -> None:
    # SQL often starts with a "-- comment": such a query is the argument, not an unknown option
    app.command(name="sql", context_settings={"ignore_unknown_options": True})(sql_command)


def sql_command(
    query: Annotated[str, typer.Argument(help="The SQL query (one statement; use '-' to read it from stdin).")],
    db: Annotated[Path, typer.Option("--db", help="The SQLite database file (opened read-only).")],
    timeout: Annotated[
        float, typer.Option("--timeout", callback=positive_seconds, help="Time limit in seconds.")
    ] = 5.0,
    max_rows: Annotated[int, typer.Option("--max-rows", min=0, help="At most this many rows.")] = 10_000,
    max_chars: Annotated[
        int, typer.Option("--max-chars", min=0, help="At most this many characters of result values.")
    ] = 1_000_000,
    text_errors: Annotated[
        str, typer.Option("--text-errors", help="Invalid UTF-8 in text values: replace, ignore or strict.")
    ] = "replace",
    max_memory_mb: Annotated[
        int, typer.Option("--max-memory-mb", min=0, help="Cap this process's address space (0: no cap).")
    ] = 0,
) -> None:
    """Execute one read-only, time- and size-limited statement and print ONE JSON object.

    The object has ``ok``, ``columns``, ``rows`` (blobs as ``X'..'`` literals), ``truncated``, ``error`` and
    ``elapsed_s``. The exit code is 1 when the query fails (the JSON says why), 2 for bad arguments.
    Nothing is ever written: no statement can modify the database or create a file. The time limit is hard:
    a query still running a second after it (one slow function call cannot be interrupted inside SQLite)
    ends the process with the time-limit error.
    """
    from mtsql.sql.executor import ExecResult, execute

    if text_errors not in ("replace", "ignore", "strict"):
        raise typer.BadParameter("must be replace, ignore or strict", param_hint="--text-errors")
    if query == "-":
        query = sys.stdin.read()
    if max_memory_mb:
        _limit_memory(max_memory_mb * 1024 * 1024)

    printed = threading.Lock()

    def watchdog() -> None:
        if not finished.wait(timeout + _GRACE_S) and printed.acquire(blocking=False):
            late = ExecResult(
                ok=False, error=f"query interrupted: time limit of {timeout:g} s exceeded", elapsed_s=timeout
            )
            sys.stdout.write(json.dumps(late.to_json_dict()) + "\n")
            sys.stdout.flush()
            os._exit(1)

    finished = threading.Event()
    threading.Thread(target=watchdog, daemon=True).start()
    result = execute(
        db,
        query,
        timeout=timeout,
        max_rows=max_rows,
        max_chars=max_chars,
        text_errors=text_errors,  # type: ignore[arg-type]
        cache=False,
    )
    finished.set()
    if not printed.acquire(blocking=False):  # the watchdog is writing the time-limit error
        threading.Event().wait()
    typer.echo(json.dumps(result.to_json_dict(), ensure_ascii=False))
    if not result.ok:
        raise typer.Exit(code=1)


_GRACE_S = 1.0


def _address_space_bytes() -> int | None:
    """The process's mapped address space (VmSize), where /proc tells it."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


#: Address space the command needs beyond what it has mapped when the cap is set (a thread's stack, SQLite's cache).
_HEADROOM_BYTES = 128 * 1024 * 1024


def _limit_memory(nbytes: int) -> None:
    used = _address_space_bytes()
    if used is not None and nbytes < used + _HEADROOM_BYTES:
        need = -(-(used + _HEADROOM_BYTES) // (1024 * 1024))
        raise typer.BadParameter(
            f"{nbytes // (1024 * 1024)} MB is below what the command itself needs: give at least {need}",
            param_hint="--max-memory-mb",
        )
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (nbytes, nbytes))
    except (ImportError, ValueError, OSError) as exc:
        raise typer.BadParameter(f"cannot limit memory here: {exc}", param_hint="--max-memory-mb") from exc
