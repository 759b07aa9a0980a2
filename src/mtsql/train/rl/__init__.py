"""Stage 2: end-to-end multi-turn GRPO on TRL's GRPOTrainer, with a curriculum and the dense process reward.

- :mod:`~mtsql.train.rl.config`: the run's YAML file (:class:`RLConfig`);
- :mod:`~mtsql.train.rl.episodes`: the training prompts, one row per episode;
- :mod:`~mtsql.train.rl.curriculum`: stages by hardness and turn depth, and the sampler that follows them;
- :mod:`~mtsql.train.rl.rollout`: the ``rollout_func`` (episodes of the rollout engine cut into TRL's fields)
  and the reward functions;
- :mod:`~mtsql.train.rl.trainer`: the trainer, checkpoints and resume;
- :mod:`~mtsql.train.rl.metrics`: JSONL metrics and plots.

Importing this package is cheap: the modules needing torch and TRL (``rollout``, ``trainer``, ``metrics``) are
imported by their users.
"""

from mtsql.train.rl.config import RLConfig
from mtsql.train.rl.curriculum import Curriculum, CurriculumSampler, CurriculumSettings, StageSettings

__all__ = ["Curriculum", "CurriculumSampler", "CurriculumSettings", "RLConfig", "StageSettings"]
