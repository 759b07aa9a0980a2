"""The ``mtsql`` command line: one module per command group, assembled in :mod:`mtsql.cli.main`."""
