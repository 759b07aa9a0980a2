"""The curriculum: training prompts partitioned into stages by difficulty, trained easy to hard.

A stage selects the rows whose Spider ``hardness`` is in its list and whose ``depth`` (the question's 1-based
position in its dialogue; a whole dialogue's number of questions) is within its bounds. The run starts on the
first stage and moves on when the stage's ``steps`` (optimizer steps) are spent, or earlier once the mean of the
last ``window`` logged rewards reaches its ``reward_threshold`` (after ``min_steps``); the last stage stays. Each
drawn prompt comes from the earlier stages with probability ``mix_earlier`` (a replay that keeps the easy skills
alive), else from the current one; within a pool the prompts are drawn in shuffled passes, so every prompt of a
stage is seen before any repeats.

GRPOTrainer draws prompts through a sampler it builds itself (``_get_train_sampler``); :class:`CurriculumSampler`
replaces it with the same layout (each generation batch a chunk of distinct prompts, each repeated
``num_generations`` times, the chunk repeated for every optimisation pass over it) but takes each chunk from the
curriculum's current pool when the data loader asks for it. :class:`Curriculum` holds the state (shared by the
sampler and the trainer's callback, identical on every process since every process logs the same gathered
reward), and saves and restores it with the checkpoints. The data loader fetches one batch ahead, so a stage
change reaches the prompts one generation batch later.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mtsql.errors import ConfigError
from mtsql.sql.hardness import HARDNESS_LEVELS
from mtsql.train.config import build


@dataclass(slots=True)
class StageSettings:
    """One stage: which rows (``hardness`` levels, ``min_depth``..``max_depth``) and when to leave it (after
    ``steps`` optimizer steps, or once the windowed mean reward reaches ``reward_threshold`` after ``min_steps``)."""

    name: str = field(metadata={"help": "the stage's name (logged, saved with checkpoints)"})
    hardness: list[str] = field(
        default_factory=lambda: list(HARDNESS_LEVELS), metadata={"help": "the gold hardness levels it selects"}
    )
    min_depth: int = field(default=1, metadata={"help": "the first question position (1-based) it selects"})
    max_depth: int | None = field(default=None, metadata={"help": "the last question position it selects"})
    steps: int | None = field(default=None, metadata={"help": "optimizer steps before the next stage"})
    reward_threshold: float | None = field(default=None, metadata={"help": "mean reward that ends it earlier"})
    min_steps: int = field(default=0, metadata={"help": "steps before the threshold counts"})

    def __post_init__(self) -> None:
        unknown = sorted(set(self.hardness) - set(HARDNESS_LEVELS))
        if unknown or not self.hardness:
            raise ConfigError(
                f"stage {self.name!r}: hardness must be among {', '.join(HARDNESS_LEVELS)}, not {unknown}"
            )
        if self.min_depth < 1 or (self.max_depth is not None and self.max_depth < self.min_depth):
            raise ConfigError(f"stage {self.name!r}: need 1 <= min_depth <= max_depth")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"stage {self.name!r}: steps must be at least 1")

    def selects(self, row: Mapping[str, Any]) -> bool:
        depth = int(row["depth"])
        return (
            row["hardness"] in self.hardness
            and depth >= self.min_depth
            and (self.max_depth is None or depth <= self.max_depth)
        )


@dataclass(slots=True)
class CurriculumSettings:
    """The stages in order, the share of prompts replayed from earlier stages, and how many logged rewards the
    threshold averages."""

    stages: list[StageSettings] = field(metadata={"help": "the stages, easy to hard"})
    mix_earlier: float = field(default=0.0, metadata={"help": "share of prompts replayed from earlier stages"})
    window: int = field(default=1, metadata={"help": "logged rewards the threshold averages"})

    def __post_init__(self) -> None:
        if not self.stages:
            raise ConfigError("a curriculum needs at least one stage")
        if not 0.0 <= self.mix_earlier <= 1.0:
            raise ConfigError(f"mix_earlier must be between 0 and 1, not {self.mix_earlier}")
        if self.window < 1:
            raise ConfigError(f"window must be at least 1, not {self.window}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CurriculumSettings:
        """Settings from a run file's ``curriculum`` section (:func:`mtsql.train.config.build`)."""
        return build(cls, values, section="curriculum")

    @classmethod
    def by_hardness(cls, steps: int | None = None, **options: Any) -> CurriculumSettings:
        """One stage per Spider hardness level, easy to extra."""
        return cls([StageSettings(level, [level], steps=steps) for level in HARDNESS_LEVELS], **options)


class Curriculum:
    """The curriculum's state over ``rows`` (each with ``hardness`` and ``depth``): the current stage, when it
    began, the recent rewards, and a shuffled pass over each pool. Stages that select no row are dropped (listed
    in :attr:`dropped`); at least one must remain."""

    def __init__(self, settings: CurriculumSettings, rows: Sequence[Mapping[str, Any]], *, seed: int = 0) -> None:
        self.settings = settings
        kept = [(stage, [i for i, row in enumerate(rows) if stage.selects(row)]) for stage in settings.stages]
        self.dropped = [stage.name for stage, pool in kept if not pool]
        kept = [(stage, pool) for stage, pool in kept if pool]
        if not kept:
            raise ConfigError("no curriculum stage selects any training prompt")
        self.stages = [stage for stage, _ in kept]
        self.pools = [pool for _, pool in kept]
        self.stage = 0
        self.stage_start = 0
        self.rewards: deque[float] = deque(maxlen=settings.window)
        #: Each stage entered: its index, name, the optimizer step after which it began, and why.
        self.history: list[dict[str, Any]] = [{"index": 0, "stage": self.stages[0].name, "step": 0, "reason": "start"}]
        self._rng = random.Random(seed)
        self._passes: dict[int, list[int]] = {}

    @property
    def current(self) -> StageSettings:
        return self.stages[self.stage]

    # --- advancing -----------------------------------------------------------------------------------------

    def on_step(self, step: int) -> bool:
        """After optimizer step ``step``: leave the stage when its steps are spent. Returns whether it advanced."""
        stage = self.current
        if stage.steps is not None and step - self.stage_start >= stage.steps:
            return self._advance(step, "steps")
        return False

    def on_reward(self, step: int, reward: float) -> bool:
        """A logged mean reward: leave the stage when the window's mean reaches its threshold."""
        self.rewards.append(reward)
        stage = self.current
        if (
            stage.reward_threshold is not None
            and len(self.rewards) == self.rewards.maxlen
            and step - self.stage_start >= stage.min_steps
            and sum(self.rewards) / len(self.rewards) >= stage.reward_threshold
        ):
            return self._advance(step, "reward")
        return False

    def _advance(self, step: int, reason: str) -> bool:
        if self.stage == len(self.stages) - 1:
            return False
        self.stage += 1
        self.stage_start = step
        self.rewards.clear()
        self.history.append({"index": self.stage, "stage": self.current.name, "step": step, "reason": reason})
        return True

    def stage_at(self, step: int) -> int:
        """The stage in effect during optimizer step ``step`` (1-based): the last one entered before it."""
        return max((event["index"] for event in self.history if event["step"] < step), default=0)

    # --- drawing -------------------------------------------------------------------------------------------

    def draw(self, n: int) -> list[int]:
        """``n`` row indices for the next generation batch: each from an earlier stage with probability
        ``mix_earlier`` (when there is one), else from the current stage; distinct within a pass of a pool."""
        rng = self._rng
        indices = []
        for _ in range(n):
            earlier = self.stage > 0 and rng.random() < self.settings.mix_earlier
            pool = rng.randrange(self.stage) if earlier else self.stage
            indices.append(self._next(pool))
        return indices

    def _next(self, pool: int) -> int:
        queue = self._passes.get(pool)
        if not queue:
            queue = self._passes[pool] = list(self.pools[pool])
            self._rng.shuffle(queue)
        return queue.pop()

    # --- checkpoints ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "stage_name": self.current.name,
            "stage_start": self.stage_start,
            "rewards": list(self.rewards),
            "history": self.history,
            "settings": asdict(self.settings),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a saved state (from a run with the same stages)."""
        index = int(state["stage"])
        if index >= len(self.stages) or self.stages[index].name != state["stage_name"]:
            raise ConfigError(f"the saved curriculum is at stage {state['stage_name']!r}, which this run does not have")
        self.stage = index
        self.stage_start = int(state["stage_start"])
        self.rewards.clear()
        self.rewards.extend(state["rewards"])
        self.history = list(state["history"])


class CurriculumSampler:
    """GRPOTrainer's sampler with the prompts drawn from a :class:`Curriculum` (see the module docstring).

    The layout is TRL's ``RepeatSampler``'s: ``batch_size`` distinct prompts per generation batch, each yielded
    ``mini_repeat_count`` times in a row, the chunk ``repeat_count`` times; one pass is ``num_samples`` prompts.
    """

    def __init__(
        self, curriculum: Curriculum, num_samples: int, mini_repeat_count: int, batch_size: int, repeat_count: int = 1
    ) -> None:
        self.curriculum = curriculum
        self.chunks = max(1, num_samples // batch_size)
        self.mini_repeat_count = mini_repeat_count
        self.batch_size = batch_size
        self.repeat_count = repeat_count

    def __iter__(self) -> Iterator[int]:
        for _ in range(self.chunks):
            chunk = self.curriculum.draw(self.batch_size)
            for _ in range(self.repeat_count):
                for index in chunk:
                    for _ in range(self.mini_repeat_count):
                        yield index

    def __len__(self) -> int:
        return self.chunks * self.batch_size * self.mini_repeat_count * self.repeat_count
