"""Controlled wrong (and right) predictions, for testing evaluators against each other.

An evaluator is only trustworthy if it agrees with the reference on the mistakes real models make, not just on
gold-vs-gold. Each perturbation below imitates one such mistake (a wrong aggregate, a flipped sort order, the
previous turn's query, a truncated generation, ...) or a harmless rewrite (renamed aliases, reordered select
columns) that a good evaluator must still accept. Everything is a pure function of the gold queries and a seed,
so a prediction file can be regenerated bit for bit instead of being stored.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: A gold session as read from an official gold file: ``(sql, db_id)`` per turn.
GoldSession = Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Context:
    """What a perturbation may draw on besides the gold query itself."""

    previous: str | None
    same_db: Sequence[str]


Perturbation = Callable[[str, random.Random, Context], str | None]

_AGGREGATES = ("count", "max", "min", "avg", "sum")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")
_STRING = re.compile(r"(\"[^\"]*\"|'[^']*')")
_ALIAS = re.compile(r"\b[Tt](\d)\b")


def _sub_random(pattern: re.Pattern[str], sql: str, rng: random.Random, repl: Callable[[str], str]) -> str | None:
    """Replace one randomly chosen match of ``pattern`` (case-insensitive patterns keep their own flags)."""
    matches = list(pattern.finditer(sql))
    if not matches:
        return None
    m = rng.choice(matches)
    return sql[: m.start()] + repl(m.group(0)) + sql[m.end() :]


def _swap_aggregate(sql: str, rng: random.Random, _: Context) -> str | None:
    pattern = re.compile(r"\b(" + "|".join(_AGGREGATES) + r")\s*\(", re.IGNORECASE)

    def repl(text: str) -> str:
        name = text.rstrip("( ").lower()
        other = rng.choice([a for a in _AGGREGATES if a != name])
        return other.upper() + "("

    return _sub_random(pattern, sql, rng, repl)


def _flip_order(sql: str, rng: random.Random, _: Context) -> str | None:
    if re.search(r"\bDESC\b", sql, re.IGNORECASE):
        return re.sub(r"\bDESC\b", "ASC", sql, count=1, flags=re.IGNORECASE)
    if re.search(r"\bASC\b", sql, re.IGNORECASE):
        return re.sub(r"\bASC\b", "DESC", sql, count=1, flags=re.IGNORECASE)
    m = re.search(r"\bORDER\s+BY\s+[\w.()*]+", sql, re.IGNORECASE)
    return None if m is None else sql[: m.end()] + " DESC" + sql[m.end() :]


def _drop_order(sql: str, rng: random.Random, _: Context) -> str | None:
    m = re.search(r"\s+ORDER\s+BY\s+[\w.()*]+(\s+(ASC|DESC))?", sql, re.IGNORECASE)
    return None if m is None else sql[: m.start()] + sql[m.end() :]


def _change_number(sql: str, rng: random.Random, _: Context) -> str | None:
    return _sub_random(_NUMBER, sql, rng, lambda t: str(int(float(t)) + rng.choice((1, 2, 10))))


def _change_string(sql: str, rng: random.Random, _: Context) -> str | None:
    return _sub_random(_STRING, sql, rng, lambda t: t[0] + t[1:-1] + rng.choice(("x", " ", "%")) + t[-1])


def _value_placeholder(sql: str, rng: random.Random, _: Context) -> str | None:
    """Models trained on value-less SQL write ``value``; the official evaluator turns it into ``1``."""
    out = _STRING.sub('"value"', sql)
    out = _NUMBER.sub("value", out)
    return None if out == sql else out


def _toggle_distinct(sql: str, rng: random.Random, _: Context) -> str | None:
    if re.search(r"\bDISTINCT\b", sql, re.IGNORECASE):
        return re.sub(r"\s*\bDISTINCT\b", "", sql, count=1, flags=re.IGNORECASE)
    return re.sub(r"\bSELECT\b", "SELECT DISTINCT", sql, count=1, flags=re.IGNORECASE)


def _truncate(sql: str, rng: random.Random, _: Context) -> str | None:
    tokens = sql.split()
    if len(tokens) < 3:
        return None
    return " ".join(tokens[: rng.randrange(1, len(tokens))])


def _previous_turn(sql: str, rng: random.Random, ctx: Context) -> str | None:
    return ctx.previous if ctx.previous and ctx.previous != sql else None


def _other_query(sql: str, rng: random.Random, ctx: Context) -> str | None:
    others = [q for q in ctx.same_db if q != sql]
    return rng.choice(others) if others else None


def _rename_aliases(sql: str, rng: random.Random, _: Context) -> str | None:
    """An equivalent rewrite: ``T1``/``T2`` become ``a1``/``a2``."""
    out = _ALIAS.sub(lambda m: "a" + m.group(1), sql)
    return None if out == sql else out


def _reorder_select(sql: str, rng: random.Random, _: Context) -> str | None:
    """Swap the first two select items: execution match accepts column permutations."""
    m = re.match(r"(\s*SELECT\s+)(.*?)(\s+FROM\b.*)", sql, re.IGNORECASE | re.DOTALL)
    if m is None or "(" in m.group(2):
        return None
    items = [i.strip() for i in m.group(2).split(",")]
    if len(items) < 2:
        return None
    items[0], items[1] = items[1], items[0]
    return m.group(1) + " , ".join(items) + m.group(3)


def _drop_where(sql: str, rng: random.Random, _: Context) -> str | None:
    m = re.search(
        r"\s+WHERE\s+.*?(?=\s+(GROUP|ORDER|LIMIT|INTERSECT|UNION|EXCEPT)\b|\)|$)",
        sql,
        re.IGNORECASE | re.DOTALL,
    )
    return None if m is None else sql[: m.start()] + sql[m.end() :]


def _negate_comparison(sql: str, rng: random.Random, _: Context) -> str | None:
    swaps = {"=": "!=", ">": "<", "<": ">", ">=": "<", "<=": ">", "!=": "="}
    pattern = re.compile(r"(?<![<>!=])(>=|<=|!=|=|>|<)(?![=])")
    return _sub_random(pattern, sql, rng, lambda t: swaps[t])


def _spaced_operators(sql: str, rng: random.Random, _: Context) -> str | None:
    out = sql.replace(">=", "> =").replace("<=", "< =").replace("!=", "! =")
    if out == sql:
        out = re.sub(r"(?<![<>!])=", "> =", sql, count=1)
    return None if out == sql else out


def _change_case(sql: str, rng: random.Random, _: Context) -> str | None:
    return sql.lower() if rng.random() < 0.5 else sql.upper()


def _change_limit(sql: str, rng: random.Random, _: Context) -> str | None:
    m = re.search(r"\bLIMIT\s+(\d+)", sql, re.IGNORECASE)
    if m is None:
        return sql.rstrip(" ;") + " LIMIT 1"
    return sql[: m.start(1)] + str(int(m.group(1)) + 1) + sql[m.end(1) :]


def _select_star(sql: str, rng: random.Random, _: Context) -> str | None:
    m = re.match(r"(\s*SELECT\s+)(.*?)(\s+FROM\b.*)", sql, re.IGNORECASE | re.DOTALL)
    return None if m is None or m.group(2).strip() == "*" else m.group(1) + "*" + m.group(3)


def _extra_statement(sql: str, rng: random.Random, _: Context) -> str | None:
    return sql.rstrip(" ;") + rng.choice(("; SELECT 1", " ;", "; DROP TABLE x"))


def _garbage(sql: str, rng: random.Random, _: Context) -> str | None:
    return rng.choice(("SELECT", "I don't know", "SELECT * FROM", "SELECT 1", 'SELECT "unterminated'))


#: Every perturbation by name; ``identity`` keeps the gold query.
PERTURBATIONS: dict[str, Perturbation] = {
    "identity": lambda sql, rng, ctx: sql,
    "swap_aggregate": _swap_aggregate,
    "flip_order": _flip_order,
    "drop_order": _drop_order,
    "change_number": _change_number,
    "change_string": _change_string,
    "value_placeholder": _value_placeholder,
    "toggle_distinct": _toggle_distinct,
    "truncate": _truncate,
    "previous_turn": _previous_turn,
    "other_query": _other_query,
    "rename_aliases": _rename_aliases,
    "reorder_select": _reorder_select,
    "drop_where": _drop_where,
    "negate_comparison": _negate_comparison,
    "spaced_operators": _spaced_operators,
    "change_case": _change_case,
    "change_limit": _change_limit,
    "select_star": _select_star,
    "extra_statement": _extra_statement,
    "garbage": _garbage,
}


def perturb_sessions(
    gold: Sequence[GoldSession], seed: int, kinds: Sequence[str] | None = None
) -> tuple[list[list[str]], list[list[str]]]:
    """One prediction per gold turn, each from a randomly chosen applicable perturbation.

    Returns the predictions and the name of the perturbation used for each turn. Newlines are flattened so the
    result can be written to an official one-query-a-line prediction file.
    """
    names = list(kinds or PERTURBATIONS)
    rng = random.Random(seed)
    by_db: dict[str, list[str]] = {}
    for session in gold:
        for sql, db_id in session:
            by_db.setdefault(db_id, []).append(sql)
    predictions: list[list[str]] = []
    used: list[list[str]] = []
    for session in gold:
        preds: list[str] = []
        kinds_used: list[str] = []
        for index, (sql, db_id) in enumerate(session):
            ctx = Context(previous=session[index - 1][0] if index else None, same_db=by_db[db_id])
            order = rng.sample(names, len(names))
            for name in order:
                out = PERTURBATIONS[name](sql, rng, ctx)
                if out is not None and out.strip():
                    break
            else:
                name, out = "identity", sql
            preds.append(" ".join(out.split()))
            kinds_used.append(name)
        predictions.append(preds)
        used.append(kinds_used)
    return predictions, used
