"""The rollout engine: the environment run over datasets with any backend, recorded token by token.

Importing this package is cheap: transformers is imported by the backends that need it.
"""

from mtsql.rollout.chat import ChatFormat, ChatTemplateError
from mtsql.rollout.engine import (
    RECORD_VERSION,
    RecordsFileError,
    RolloutConfig,
    RolloutEngine,
    RolloutSummary,
    episode_id,
    read_episodes,
    read_finished,
)

__all__ = [
    "RECORD_VERSION",
    "ChatFormat",
    "ChatTemplateError",
    "RecordsFileError",
    "RolloutConfig",
    "RolloutEngine",
    "RolloutSummary",
    "episode_id",
    "read_episodes",
    "read_finished",
]
