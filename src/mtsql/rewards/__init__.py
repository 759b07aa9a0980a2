"""Rewards for rejection sampling and RL: the outcome (official EX and EM of the final SQL) and the dense process
reward (exec-verify and coherence judgements, clause F1 of every proposed SQL), each component separately.

Definitions, defaults and where we depart from the original reference code: ``docs/rewards.md``.
"""

from mtsql.eval.exact_match import load_foreign_key_maps
from mtsql.eval.turn import TurnScore, prepare_prediction, score_turn
from mtsql.rewards.config import COMPONENTS, RewardConfig
from mtsql.rewards.outcome import sqlite_foreign_key_map
from mtsql.rewards.process import coherence_credit, exec_outcome, exec_verify_credit, is_coherent
from mtsql.rewards.scorer import EpisodeReward, QuestionReward, RewardScorer, reward_episode

__all__ = [
    "COMPONENTS",
    "EpisodeReward",
    "QuestionReward",
    "RewardConfig",
    "RewardScorer",
    "TurnScore",
    "coherence_credit",
    "exec_outcome",
    "exec_verify_credit",
    "is_coherent",
    "load_foreign_key_maps",
    "prepare_prediction",
    "reward_episode",
    "score_turn",
    "sqlite_foreign_key_map",
]
