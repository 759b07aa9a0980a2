"""``python -m mtsql``: the ``mtsql`` command, for environments whose scripts folder is not on PATH."""

from mtsql.cli.main import app

app(prog_name="mtsql")
