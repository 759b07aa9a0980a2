"""``python -m mtsql`` runs the ``mtsql`` command."""

from mtsql.cli.main import app

app()
