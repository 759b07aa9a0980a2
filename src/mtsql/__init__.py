"""mtsql: long-horizon multi-turn text-to-SQL agents, their evaluation, environment and training."""

__version__ = "0.1.0"
