"""The rollout engine: the environment run over datasets with any backend, recorded token by token.

Importing this package is cheap: transformers is imported by the backends that need it.
"""

from mtsql.rollout.chat import ChatFormat, ChatTemplateError
from mtsql.rollout.engine import (
    RecordsFileError,
    RolloutConfig,
    RolloutEngine,
    RolloutSummary,
    episode_id,
    read_episodes,
    read_finished,
    read_records,
)
from mtsql.rollout.trajectory import (
    RECORD_VERSION,
    RunSettings,
    Segment,
    SegmentKind,
    Step,
    Trajectory,
    TrajectoryFormatError,
    TrajectoryStats,
)

__all__ = [
    "RECORD_VERSION",
    "ChatFormat",
    "ChatTemplateError",
    "RecordsFileError",
    "RolloutConfig",
    "RolloutEngine",
    "RolloutSummary",
    "RunSettings",
    "Segment",
    "SegmentKind",
    "Step",
    "Trajectory",
    "TrajectoryFormatError",
    "TrajectoryStats",
    "episode_id",
    "read_episodes",
    "read_finished",
    "read_records",
]
