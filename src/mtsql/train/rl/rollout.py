"""GRPOTrainer's ``rollout_func``: each prompt becomes an episode of the rollout engine, cut into TRL's fields.

TRL 1.16 calls ``rollout_func(prompts, trainer)`` once per generation batch with this process's rows' ``prompt``
values, each prompt repeated ``num_generations`` times in a row (its sampler's layout), and expects one completion
per entry: ``prompt_ids``, ``completion_ids`` and ``logprobs``, plus any extra fields, which reach the reward
functions as keyword arguments; an ``env_mask`` field becomes its ``tool_mask``, so the loss mask is
``completion_mask * env_mask`` and environment tokens never enter the loss.

Each prompt is an episode key (:mod:`mtsql.train.rl.episodes`). Its episode runs in
:class:`~mtsql.rollout.engine.RolloutEngine` exactly as ``mtsql rollout`` runs one, token-exact, and is cut:

- a **question** episode plays the dialogue up to question k: the earlier questions with the gold protocol
  (``context: gold``, the same prefix for every sample of the group) or with the policy (``sampled``), then
  question k with the policy. The prompt is the record's prompt plus everything before question k's first model
  segment; the completion runs from there to its last model segment (tool replies inside it masked);
- a **dialogue** episode is the whole record, the completion cut after its last model segment.

The rewards are the record's (:mod:`mtsql.rewards`): question k's components, or for a dialogue the means over
its questions (a question the context never reached counts 0). An episode whose context filled up before the
question got a single model token has nothing to train: it returns one masked end token and no reward, which
TRL treats as unscorable (advantage 0).

Generation backends, all without copying weights: the trainer's live model (:class:`TrainerModelBackend`,
transformers ``generate`` on CPU or GPU, the model unwrapped and in eval mode while episodes run), vLLM colocated
in the trainer's processes (TRL's ``LLM``, synced by TRL before each call), or TRL's vLLM server (token ids over
its OpenAI-compatible endpoint, which serves TRL's synced weights).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mtsql.backends.base import Backend, end_and_pad_ids
from mtsql.backends.transformers import CausalLMBackend
from mtsql.backends.vllm import VLLMEngineBackend
from mtsql.data.dialogue import Dialogue
from mtsql.env.environment import GoldPolicy
from mtsql.errors import ConfigError
from mtsql.rewards.config import COMPONENTS
from mtsql.rollout.engine import RolloutEngine
from mtsql.rollout.trajectory import Trajectory
from mtsql.train.rl.config import RLConfig
from mtsql.train.rl.episodes import parse_key

if TYPE_CHECKING:
    from trl import GRPOTrainer

#: The extra field carrying each completion's reward components to the reward functions.
REWARDS_FIELD = "mtsql_rewards"
#: The extra field carrying a rollout call's episode statistics (``episode/*``) to the reward functions, which log
#: them through TRL's public ``log_metric`` (see :class:`ComponentReward`).
STATS_FIELD = "mtsql_episode_stats"


@dataclass(slots=True)
class Sample:
    """One completion in TRL's terms; ``rewards`` maps each component (and ``total``) to its value, or is
    ``None`` when there is nothing to score."""

    prompt_ids: list[int]
    completion_ids: list[int]
    env_mask: list[int]
    logprobs: list[float]
    rewards: dict[str, float] | None


def cut_question(record: Trajectory, question: int) -> Sample | None:
    """Question ``question``'s part of an episode record (see the module docstring); ``None`` without model
    tokens for it."""
    model = record.model_segments(question)
    if not model:
        return None
    start, end = model[0].start, model[-1].end
    rewards = record.rewards or {}
    scored = next((q for q in rewards.get("questions", ()) if q["turn"] == question), None)
    return Sample(
        prompt_ids=list(record.prompt_ids) + list(record.completion_ids[:start]),
        completion_ids=list(record.completion_ids[start:end]),
        env_mask=list(record.completion_mask[start:end]),
        logprobs=list(record.logprobs[start:end]),
        rewards=None if scored is None else {name: float(scored[name]) for name in (*COMPONENTS, "total")},
    )


def cut_dialogue(record: Trajectory) -> Sample | None:
    """A whole-dialogue episode up to its last model segment; rewards averaged over all its questions."""
    model = record.model_segments()
    if not model:
        return None
    end = model[-1].end
    questions = (record.rewards or {}).get("questions", [])
    n = record.n_turns
    return Sample(
        prompt_ids=list(record.prompt_ids),
        completion_ids=list(record.completion_ids[:end]),
        env_mask=list(record.completion_mask[:end]),
        logprobs=list(record.logprobs[:end]),
        rewards={name: sum(float(q[name]) for q in questions) / n for name in (*COMPONENTS, "total")},
    )


class ComponentReward:
    """A reward function returning one component per completion, so TRL logs each as ``rewards/<name>/mean``
    and weighs it with ``reward_weights`` (the :class:`~mtsql.rewards.RewardConfig` weights).

    With ``log_stats``, it also logs the rollout call's episode statistics (:data:`STATS_FIELD`) through the
    ``log_metric`` keyword TRL gives reward functions: TRL's public way for metrics of one's own, averaged over
    each logging step beside its own. (A ``rollout_func`` is given no such hook; one reward function logs them.)"""

    def __init__(self, component: str, *, log_stats: bool = False) -> None:
        if component not in COMPONENTS:
            raise ConfigError(f"unknown reward component {component!r}")
        self.component = component
        self.log_stats = log_stats
        self.__name__ = component

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        rewards: Sequence[Mapping[str, float] | None] = kwargs[REWARDS_FIELD]
        log_metric = kwargs.get("log_metric")
        stats = kwargs.get(STATS_FIELD)
        if self.log_stats and log_metric is not None and stats:
            for name, value in stats[0].items():  # the call's statistics, the same for every completion
                log_metric(name, value)
        return [None if r is None else r[self.component] for r in rewards]


def reward_functions() -> list[ComponentReward]:
    """One reward function per component, in :data:`~mtsql.rewards.config.COMPONENTS` order (the first also logs
    the episode statistics)."""
    return [ComponentReward(name, log_stats=index == 0) for index, name in enumerate(COMPONENTS)]


class EpisodeRollout:
    """The ``rollout_func`` of a run: see the module docstring. ``dialogues`` maps ids to the training
    dialogues; ``db_dir`` and ``tables`` are the rewards' (``tables.json`` for the official foreign keys).

    ``last_records`` keeps the latest call's episode records, in the order of the prompts."""

    def __init__(
        self, config: RLConfig, dialogues: Mapping[str, Dialogue], db_dir: str | Path, tables: str | Path | None
    ) -> None:
        self.config = config
        self.dialogues = dialogues
        self.db_dir = Path(db_dir)
        self.tables = tables
        self.engine: RolloutEngine | None = None
        self.last_records: list[Trajectory] = []
        self._calls = 0

    def __call__(self, prompts: Sequence[str], trainer: GRPOTrainer) -> dict[str, Any]:
        engine = self._engine(trainer)
        live = engine.backend.live() if isinstance(engine.backend, TrainerModelBackend) else nullcontext()
        start = time.perf_counter()
        with live, asyncio.Runner() as runner:
            records = runner.run(self._play_all(engine, prompts))
        elapsed = time.perf_counter() - start
        self.last_records = records
        self._calls += 1
        samples = [self._cut(prompt, record, engine) for prompt, record in zip(prompts, records, strict=True)]
        stats = {f"episode/{name}": value for name, value in episode_stats(prompts, records).items()}
        stats["episode/rollout_s"] = elapsed  # generation, environment and rewards of this call
        return {
            "prompt_ids": [s.prompt_ids for s in samples],
            "completion_ids": [s.completion_ids for s in samples],
            "logprobs": [s.logprobs for s in samples],
            "env_mask": [s.env_mask for s in samples],
            REWARDS_FIELD: [s.rewards for s in samples],
            STATS_FIELD: stats,  # not a list: TRL hands it to every completion's reward call as is
        }

    async def _play_all(self, engine: RolloutEngine, prompts: Sequence[str]) -> list[Trajectory]:
        limit = asyncio.Semaphore(self.config.generation.concurrency)
        seen: Counter[str] = Counter()
        samples = []
        for prompt in prompts:  # the sample number keeps episode ids distinct within a call
            samples.append(self._calls * len(prompts) + seen[prompt])
            seen[prompt] += 1

        async def play(prompt: str, sample: int) -> Trajectory:
            async with limit:
                return await self.play(engine, prompt, sample)

        try:
            return list(await asyncio.gather(*(play(p, s) for p, s in zip(prompts, samples, strict=True))))
        finally:
            await engine.backend.aclose()

    async def play(self, engine: RolloutEngine, key: str, sample: int = 0) -> Trajectory:
        """Run the episode of ``key`` and return its record (whole dialogue, or up to the question)."""
        dialogue_id, question = parse_key(key)
        dialogue = self.dialogues[dialogue_id]
        if question is None:
            return await engine.episode(dialogue, sample)
        episode = engine.start(dataclasses.replace(dialogue, turns=dialogue.turns[: question + 1]), sample)
        policy = GoldPolicy(dialogue) if self.config.context == "gold" else None
        for _ in range(question):
            await episode.play(one_question=True, policy=policy)
        await episode.play()
        return episode.record()

    def _cut(self, prompt: str, record: Trajectory, engine: RolloutEngine) -> Sample:
        _, question = parse_key(prompt)
        sample = cut_dialogue(record) if question is None else cut_question(record, question)
        if sample is not None:
            return sample
        end = engine.chat.end_id if engine.chat.end_id is not None else engine.backend.tokenizer.eos_token_id
        prompt_ids = list(record.prompt_ids) + list(record.completion_ids)
        return Sample(prompt_ids, [end], [0], [0.0], None)

    def _engine(self, trainer: GRPOTrainer) -> RolloutEngine:
        if self.engine is None:
            config = self.config
            backend = make_backend(trainer, config)
            self.engine = RolloutEngine(
                backend, self.db_dir, config.rollout_config(), tables=self.tables, rewards=config.rewards
            )
        return self.engine


def episode_stats(prompts: Sequence[str], records: Sequence[Trajectory]) -> dict[str, float]:
    """Per-batch means over the trained part of each episode: assistant ``steps``, ``env_tokens`` (tool replies
    inside the completion, masked), ``answered`` questions, ``malformed`` messages, ``context_full`` episodes."""
    steps = env_tokens = answered = malformed = questions = 0
    for prompt, record in zip(prompts, records, strict=True):
        _, question = parse_key(prompt)
        chosen = [t for t in record.turns if question is None or t.index == question]
        questions += len(chosen) if question is None else 1
        steps += sum(step.turn in {t.index for t in chosen} for step in record.steps)
        segments = [s for s in record.segments if question is None or s.turn == question]
        last = max((s.end for s in segments if s.kind == "model"), default=0)
        env_tokens += sum(s.end - s.start for s in segments if s.kind == "env" and s.end <= last)
        answered += sum(t.answered for t in chosen)
        malformed += sum(t.malformed for t in chosen)
    n = max(len(records), 1)
    return {
        "steps": steps / n,
        "env_tokens": env_tokens / n,
        "answered": answered / max(questions, 1),
        "malformed": malformed / n,
        "context_full": sum(r.finish == "context" for r in records) / n,
    }


# --- backends over the trainer's model -------------------------------------------------------------------------


def make_backend(trainer: GRPOTrainer, config: RLConfig) -> Backend:
    """The generation backend of ``config.generation.backend`` bound to ``trainer`` (see the module docstring)."""
    args = trainer.args
    seed = args.seed + 7919 * trainer.accelerator.process_index
    if config.generation.backend == "trainer":
        from trl.distributed import DistributedBackend

        dist = DistributedBackend(trainer.accelerator)
        if dist.fsdp_version is not None and trainer.accelerator.num_processes > 1:
            raise ConfigError(
                "generation.backend 'trainer' cannot run multi-turn episodes under FSDP (every forward is a collective "
                "and processes run different numbers of steps): use generation.backend 'vllm'"
            )
        if dist.is_zero3 and not args.ds3_gather_for_generation:
            raise ConfigError("generation.backend 'trainer' under ZeRO-3 needs ds3_gather_for_generation: true")
        return TrainerModelBackend(
            trainer,
            max_batch_size=config.generation.max_batch_size,
            max_model_len=config.sampling.max_total_tokens,
            seed=seed,
        )
    if args.vllm_mode == "server":
        from mtsql.backends.openai import OpenAIBackend

        base = args.vllm_server_base_url or f"http://{args.vllm_server_host}:{args.vllm_server_port}"
        return OpenAIBackend(
            config.generation.server_model or config.model,
            base_url=base.rstrip("/") + "/v1",
            tokenizer=config.model,
            max_concurrency=config.generation.max_batch_size,
            max_model_len=config.sampling.max_total_tokens,
        )
    if args.vllm_tensor_parallel_size > 1 or args.vllm_enable_sleep_mode:
        raise ConfigError(
            "colocated vLLM runs multi-turn episodes with vllm_tensor_parallel_size 1 and without sleep mode (each "
            "process generates on its own schedule): use vllm_mode 'server' for a model split over several GPUs"
        )
    return ColocatedVLLMBackend(trainer, max_batch_size=config.generation.max_batch_size)


def _model_name(model: Any, default: str) -> str:
    return str(getattr(model, "name_or_path", "") or default)


class TrainerModelBackend(CausalLMBackend):
    """:class:`~mtsql.backends.transformers.CausalLMBackend`'s exact batched sampling (left padding, per-row
    limits, logprobs recorded while sampling, seeded; the transformers backend's) on the trainer's own model: no
    weights are loaded or copied.

    Generation happens inside :meth:`live`, which unwraps the model (gathering ZeRO-3 parameters, as TRL does for
    its own generation), puts it in eval mode with a generation config holding only its token ids, and restores
    the training mode and config afterwards.
    """

    name = "trainer"

    def __init__(self, trainer: GRPOTrainer, *, max_batch_size: int, max_model_len: int | None, seed: int) -> None:
        model = trainer.accelerator.unwrap_model(trainer.model)
        limit = getattr(model.config.get_text_config(), "max_position_embeddings", None)
        lengths = [n for n in (max_model_len, limit) if n]
        super().__init__(
            None,  # lent by live()
            trainer.processing_class,
            model=_model_name(model, "trainer"),
            device=trainer.accelerator.device,
            generation_config=model.generation_config,
            max_batch_size=max_batch_size,
            seed=seed,
            max_model_len=min(lengths) if lengths else None,
        )
        self.trainer = trainer

    @contextmanager
    def live(self) -> Iterator[None]:
        """The model ready to generate while the block runs, then back to training."""
        from trl.models import unwrap_model_for_generation

        trainer, args = self.trainer, self.trainer.args
        with unwrap_model_for_generation(
            trainer.model_wrapped,
            trainer.accelerator,
            gather_deepspeed3_params=args.ds3_gather_for_generation,
            gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs,
        ) as model:
            base = model.get_base_model() if hasattr(model, "get_base_model") else model
            training, config = model.training, base.generation_config
            model.eval()
            base.generation_config = self.generation_config
            self.hf_model = model
            try:
                yield
            finally:
                self.hf_model = None
                base.generation_config = config
                model.train(training)


class ColocatedVLLMBackend(VLLMEngineBackend):
    """:class:`~mtsql.backends.vllm.VLLMEngineBackend`'s requests on the ``vllm.LLM`` TRL colocates in this process
    (``vllm_mode: colocate``): TRL builds it with processed logprobs and syncs the trainer's weights into it
    before each ``rollout_func`` call."""

    name = "vllm-colocate"

    def __init__(self, trainer: GRPOTrainer, *, max_batch_size: int) -> None:
        model = trainer.accelerator.unwrap_model(trainer.model)
        name = _model_name(model, "vllm")
        eos, _ = end_and_pad_ids(model.generation_config, trainer.processing_class, model=name)
        super().__init__(
            trainer.vllm_generation.llm,
            trainer.processing_class,
            model=name,
            eos_token_ids=eos,
            max_batch_size=max_batch_size,
        )
