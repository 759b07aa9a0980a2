"""Execution match, with the verdicts of the official test-suite evaluator (``exec_eval.py``).

The default mode reproduces the official ``eval_exec_match`` verdict for verdict, with or without value plugging:

1. ``postprocess``: ``> =``, ``< =`` and ``! =`` become ``>=``, ``<=`` and ``!=`` in both queries.
2. Unless ``keep_distinct``: :func:`remove_distinct` on both, i.e. sqlparse's tokens of the *first* statement
   with every token whose lower-cased text is ``distinct`` dropped. Later statements are silently dropped,
   ``distinct`` inside a string literal or a quoted identifier is kept, an unquoted column named ``distinct``
   is removed.
3. Rows are compared in order only when ``'order by'`` (exactly, one space, any case) occurs in the processed
   gold; otherwise as bags of rows.
4. Every entry of the database's folder whose name *contains* ``.sqlite`` is a database; the gold and then the
   prediction run on each (``YEAR(CURDATE())`` replaced by ``2020`` first), and all must agree.
5. With ``plug_value`` (the official ``--plug_value``), when the prediction itself does not match, each way of
   plugging the gold's values into its value slots (:mod:`mtsql.eval.plug_value`, computed from the queries of
   step 2) is tried in turn on every database; the first that matches makes the verdict a match. The official
   code tries all ``len(gold values) ** len(slots)`` of them; here at most ``plug_value_limit`` (default
   :data:`PLUG_VALUE_LIMIT`), most plausible first, and a turn that reaches the limit without a match gets the
   status ``plug_value_limit`` (score 0) so that it can be reported.
6. Results are equal when both are empty, or they have the same numbers of rows and columns, pass the
   official quick rejection (each row's values sorted by ``str(value) + str(type(value))``, compared as
   lists when order matters and as sets otherwise) and some permutation of the prediction's columns makes
   the rows equal (as lists when order matters, as bags otherwise). Python equality applies: ``1 == 1.0 ==
   True``; text is decoded from UTF-8 with invalid bytes ignored, as the official connection does.

The official code finds column permutations by sampling 20 random rows; that is only a pruning that can never
remove a permutation that works. Here every row prunes (a column of the prediction can only stand for a gold
column with the same multiset of values), identical prediction columns are tried once, and the final check is
the official one, so the verdict is the same, deterministically and faster.

Where the official evaluator crashes or cannot run, this module returns a verdict with a status instead:

========================  ============================================  ==================================
case                      official                                      here
========================  ============================================  ==================================
gold fails on a database  ``AssertionError``, the whole run stops       ``gold_error``, score 0
folder missing            ``FileNotFoundError``                         ``db_missing``, score 0
folder without databases  score 1 (nothing to disagree)                 ``db_missing``, score 0
blank prediction          ``IndexError`` in ``remove_distinct``         ``pred_error``, score 0
runaway prediction        runs forever (its 60 s timeout cannot fire)   ``pred_timeout`` after ``timeout``
prediction that writes    runs it on the database (DDL is committed)    ``pred_error``, score 0
plug_value, no statement  ``IndexError`` (only ``;``, tabs, spaces)      the prediction's own verdict
========================  ============================================  ==================================

Other deviations: queries run read-only through :mod:`mtsql.sql.executor` (so also no ``PRAGMA`` besides its
few introspection pragmas, no ``ATTACH``, one statement, no statement without result columns); a value larger
than the executor's value limit (1 MiB) is an error; where sqlparse's grouping step would refuse a query (its
anti-DoS limits: more than 10,000 tokens, grouping depth above 100) the official run crashes, while the DISTINCT
removal here needs no grouping and goes on. A blank or comment-only prediction with ``keep_distinct`` (and a
comment-only one without) is executed by the official code as a query without rows; so it is here.

Speed: gold results are cached per (database file, its size/mtime/inode, gold SQL); a prediction identical to
the gold (after the preprocessing) is not run again unless it calls a function such as ``random()`` or ``now``;
a prediction's rows are fetched only up to one more than the gold's (more rows is a mismatch whatever they are);
connections are cached per thread by the executor; the DISTINCT removal needs sqlparse only for queries with
several statements or unusual characters (see :func:`remove_distinct`).

``strict=True`` fixes a few quirks of the official evaluator:

- every statement is kept (DISTINCT removed from all of them), so a prediction with a second statement is an
  error (``only one statement is allowed``) instead of being cut to its first statement;
- the quick rejection, whose type-dependent sort can reject equal results (``(1, 1.5)`` against ``(1.0,
  1.5)``), is skipped: the result comparison is exactly "some column permutation makes the rows equal";
- only regular files whose name ends with ``.sqlite`` are databases (not ``x.sqlite-journal``, ``x.sqlite.bak``
  or folders), and the named database file itself must exist (``db_missing`` otherwise);
- a prediction without any statement (blank, comments only) is an error rather than an empty result.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from mtsql.sql.executor import ExecResult, executor
from mtsql.sql.preprocess import postprocess, replace_cur_year

__all__ = [
    "PLUG_VALUE_LIMIT",
    "TIMEOUT",
    "ExecVerdict",
    "clear_gold_cache",
    "database_paths",
    "exec_match",
    "order_matters",
    "remove_distinct",
    "result_eq",
]

# The official TIMEOUT constant (seconds). There it never fires: the query runs synchronously inside the
# coroutine given to asyncio.wait_for. Here it is a real time limit.
TIMEOUT = 60.0

#: The most plugged predictions that ``plug_value`` executes for one turn. The official code has no limit and
#: tries ``len(gold values) ** len(slots)``: billions for a long prediction against a gold with many values.
PLUG_VALUE_LIMIT = 10_000

MATCH = "match"
MISMATCH = "mismatch"
PRED_ERROR = "pred_error"
PRED_TIMEOUT = "pred_timeout"
GOLD_ERROR = "gold_error"
DB_MISSING = "db_missing"
PLUG_VALUE_LIMITED = "plug_value_limit"


@dataclass(frozen=True, slots=True)
class ExecVerdict:
    """The verdict of :func:`exec_match`.

    ``score`` is 1 for ``status == "match"`` and 0 otherwise. ``status`` is one of ``match``, ``mismatch``,
    ``pred_error``, ``pred_timeout``, ``gold_error``, ``db_missing``, ``plug_value_limit``; ``message`` explains
    every status but ``match`` (the error message for errors; for a match found with ``plug_value``, the plugged
    prediction that matched); ``db`` is the database on which the verdict was decided.
    """

    score: int
    status: str
    message: str | None = None
    db: str | None = None

    @property
    def reason(self) -> str:
        return self.status if self.message is None else f"{self.status}: {self.message}"


# ---------------------------------------------------------------------------------------------------------
# Query preprocessing
# ---------------------------------------------------------------------------------------------------------


def remove_distinct(query: str, *, all_statements: bool = False) -> str:
    """The official DISTINCT removal: sqlparse's tokens of the first statement without any ``distinct`` token.

    Raises ``IndexError`` for a query without any statement (blank), as the official code does.
    ``all_statements=True`` (strict mode) keeps the whole query, every statement and all whitespace, and only
    drops the ``distinct`` tokens.

    The official code takes the leaves (``flatten()``) of ``sqlparse.parse(query)[0]``. Parsing is lexing,
    splitting into statements, then grouping tokens into a tree; grouping only nests tokens and never changes
    their text, so the leaves are the tokens of sqlparse's own lexer and statement splitter, used here without
    the (slow) grouping step. Grouping can also raise (sqlparse's anti-DoS limits: more than 10,000 tokens,
    grouping depth above 100), which crashes the official run; here such queries are simply processed.

    Fast paths, equal to the sqlparse result (``tests/eval/test_exec_match.py`` compares them on random
    queries). sqlparse splits statements only at a ``;`` token or an upper-case ``GO`` keyword, and keeps the
    spaces after the ``;`` in its statement; so a query with no ``GO`` and no ``;`` but possibly a final one
    followed by spaces is a single statement, returned whole. Its lexer loses no character, and a token whose
    lower-cased text is ``distinct`` implies that substring in the lower-cased query: without it, the query comes
    back unchanged. With it, when the query has none of the characters that start sqlparse's other token kinds
    (comments, placeholders, quoted names, dollar quotes, escapes), its tokens are quoted strings, runs of word
    characters and single other characters; a ``distinct`` token is then exactly a run equal to ``distinct``
    (a run merely containing it, as in ``1e5distinct``, is left to sqlparse).
    """
    if all_statements or ("GO" not in query and (";" not in query or _FINAL_SEMICOLON.fullmatch(query))):
        if not query.strip():
            return _remove_distinct_tokens(query, all_statements)
        if "distinct" not in query.lower():
            return query
        simple = _remove_distinct_simple(query)
        if simple is not None:
            return simple
    return _remove_distinct_tokens(query, all_statements)


_FINAL_SEMICOLON = re.compile(r"[^;]*; *")
_NOT_SIMPLE = re.compile(r"[\\`\[\]$#@:?%]|--|/\*")
_SIMPLE_TOKEN = re.compile(r"'(?:''|[^'])*'|\"(?:\"\"|[^\"])*\"|\w+|.", re.DOTALL)


def _remove_distinct_simple(query: str) -> str | None:
    """The DISTINCT removal of a single statement made of strings, words and punctuation; None otherwise."""
    if _NOT_SIMPLE.search(query):
        return None
    tokens = _SIMPLE_TOKEN.findall(query)
    kept = []
    for token in tokens:
        lowered = token.lower()
        if lowered == "distinct":
            continue
        if token in ("'", '"') or (token[0] not in "'\"" and "distinct" in lowered):
            return None  # an unterminated literal, or a word run that sqlparse might split
        kept.append(token)
    return "".join(kept)


@lru_cache(maxsize=16384)
def _remove_distinct_tokens(query: str, all_statements: bool) -> str:
    from sqlparse import lexer
    from sqlparse.engine.statement_splitter import StatementSplitter

    if all_statements:  # every token of the query, nothing else dropped
        return "".join(value for _, value in lexer.tokenize(query) if value.lower() != "distinct")
    for statement in StatementSplitter().process(lexer.tokenize(query)):
        return "".join(token.value for token in statement.tokens if token.value.lower() != "distinct")
    raise IndexError("tuple index out of range")  # what sqlparse.parse(query)[0] raises


def order_matters(gold: str) -> bool:
    """The official rule: rows are compared in order when the (processed) gold contains ``order by``."""
    return "order by" in gold.lower()


# ---------------------------------------------------------------------------------------------------------
# Result comparison
# ---------------------------------------------------------------------------------------------------------

_TYPE_TEXT = {t: str(t) for t in (int, float, str, bytes, type(None), bool)}


def _sort_key(value: Any) -> str:
    kind = type(value)
    return str(value) + (_TYPE_TEXT.get(kind) or str(kind))


def _unordered_row(row: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(sorted(row, key=_sort_key))


def _quick_rejection_passes(result1: Sequence[tuple], result2: Sequence[tuple], ordered: bool, num_cols: int) -> bool:
    if num_cols == 1:  # sorting one value changes nothing
        return list(result1) == list(result2) if ordered else set(result1) == set(result2)
    rows1 = [_unordered_row(row) for row in result1]
    rows2 = [_unordered_row(row) for row in result2]
    if ordered:
        return rows1 == rows2
    return set(rows1) == set(rows2)


def _column_permutations(result1: Sequence[tuple], result2: Sequence[tuple], num_cols: int) -> Iterator[list[int]]:
    """Every assignment ``perm`` (gold column i <- prediction column perm[i]) that could make the rows equal.

    Sound pruning: equal bags (or lists) of rows imply that gold column i and prediction column perm[i] hold
    the same multiset of values. Prediction columns that are identical value by value give the same permuted
    rows whichever of them is used, so only the first unused one of each such group is tried.
    """
    cols1 = [[row[i] for row in result1] for i in range(num_cols)]
    cols2 = [[row[j] for row in result2] for j in range(num_cols)]
    sig1 = [frozenset(Counter(col).items()) for col in cols1]
    sig2 = [frozenset(Counter(col).items()) for col in cols2]
    # twin[j]: the first prediction column identical to column j (j itself when none is).
    twin = list(range(num_cols))
    for j in range(num_cols):
        for k in range(j):
            if twin[k] == k and sig2[k] == sig2[j] and cols2[k] == cols2[j]:
                twin[j] = k
                break
    candidates = [[j for j in range(num_cols) if sig2[j] == sig1[i]] for i in range(num_cols)]
    if any(not c for c in candidates):
        return
    # Try the identity first: it is by far the most common answer.
    candidates = [sorted(c, key=lambda j, i=i: j != i) for i, c in enumerate(candidates)]
    used = [False] * num_cols
    perm = [0] * num_cols

    def assign(i: int) -> Iterator[list[int]]:
        if i == num_cols:
            yield perm
            return
        for j in candidates[i]:
            if used[j]:
                continue
            # among identical columns, only the first unused one
            if twin[j] != j and any(not used[k] and twin[k] == twin[j] for k in range(j)):
                continue
            used[j] = True
            perm[i] = j
            yield from assign(i + 1)
            used[j] = False

    yield from assign(0)


def result_eq(result1: Sequence[tuple], result2: Sequence[tuple], order_matters: bool, *, strict: bool = False) -> bool:
    """Whether two results are the same denotation, with the official ``result_eq`` verdict (gold first).

    The official verdict is "the quick rejection passes and some column permutation makes the rows equal"; both
    parts are pure, so the permutation search runs first (it rejects most different results at once, from the
    columns' multisets of values) and the quick rejection only when the search succeeds.
    ``strict=True`` skips the official quick rejection (whose type-dependent sort can reject equal rows).
    """
    if len(result1) == 0 and len(result2) == 0:
        return True
    if len(result1) != len(result2):
        return False
    num_cols = len(result1[0])
    if len(result2[0]) != num_cols:
        return False
    if not _some_permutation_matches(result1, result2, num_cols, order_matters):
        return False
    return strict or _quick_rejection_passes(result1, result2, order_matters, num_cols)


def _some_permutation_matches(result1: Sequence[tuple], result2: Sequence[tuple], num_cols: int, ordered: bool) -> bool:
    if list(result1) == list(result2):  # the identity permutation works
        return True
    if num_cols == 1:
        return (not ordered) and Counter(result1) == Counter(result2)
    rows1 = list(result1) if ordered else None
    bag1 = None if ordered else Counter(result1)
    identity = list(range(num_cols))
    for perm in _column_permutations(result1, result2, num_cols):
        permuted = list(result2) if perm == identity else [tuple([row[j] for j in perm]) for row in result2]
        if ordered:
            if rows1 == permuted:
                return True
        elif bag1 == Counter(permuted):
            return True
    return False


# ---------------------------------------------------------------------------------------------------------
# Databases and the gold cache
# ---------------------------------------------------------------------------------------------------------


def database_paths(db_file: str | os.PathLike[str], *, strict: bool = False) -> list[str]:
    """The databases an execution match checks: the entries of ``db_file``'s folder named like ``*.sqlite*``.

    ``db_file`` need not exist (the official code only uses its folder). The official rule takes every entry
    whose name contains ``.sqlite`` (in ``os.listdir`` order, which does not change the verdict); here
    ``db_file`` comes first when present, then the others sorted by name. ``strict=True`` keeps only regular
    files whose name ends with ``.sqlite``. Raises ``FileNotFoundError`` when the folder does not exist.
    Listings are cached per folder and refreshed when the folder's modification time changes.
    """
    db_file = os.fspath(db_file)
    folder, name = os.path.split(db_file)
    folder = folder or "."
    names = _folder_databases(folder, strict)
    if name in names:
        names = [name, *(n for n in names if n != name)]
    return [os.path.join(folder, n) for n in names]


_listing_cache: dict[tuple[str, bool], tuple[int, tuple[str, ...]]] = {}


def _folder_databases(folder: str, strict: bool) -> tuple[str, ...]:
    stamp = os.stat(folder).st_mtime_ns
    cached = _listing_cache.get((folder, strict))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    names = sorted(os.listdir(folder))
    if strict:
        names = [n for n in names if n.endswith(".sqlite") and os.path.isfile(os.path.join(folder, n))]
    else:
        names = [n for n in names if ".sqlite" in n]
    _listing_cache[(folder, strict)] = (stamp, tuple(names))
    return tuple(names)


_GOLD_CACHE_MAX = 50_000
_gold_cache: dict[tuple[Any, ...], ExecResult] = {}
_gold_lock = threading.Lock()


def clear_gold_cache() -> None:
    """Forget the cached gold results."""
    with _gold_lock:
        _gold_cache.clear()


def _gold_result(db: str, gold: str, timeout: float, immutable: bool, isolate: bool) -> ExecResult:
    try:
        st = os.stat(db)
        key: tuple[Any, ...] = (db, gold, immutable, st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError:
        key = ()
    if key:
        cached = _gold_cache.get(key)
        if cached is not None:
            return cached
    result = executor(isolate)(
        db, gold, timeout=timeout, max_rows=None, max_chars=None, text_errors="ignore", immutable=immutable
    )
    if key and result.error_kind != "timeout":
        with _gold_lock:
            if len(_gold_cache) >= _GOLD_CACHE_MAX:
                # drop the oldest tenth (dicts keep insertion order)
                for old in list(_gold_cache)[: _GOLD_CACHE_MAX // 10]:
                    del _gold_cache[old]
            _gold_cache[key] = result
    return result


# ---------------------------------------------------------------------------------------------------------
# The verdict
# ---------------------------------------------------------------------------------------------------------


def exec_match(
    db_folder: str | os.PathLike[str],
    db_file: str | os.PathLike[str],
    pred: str,
    gold: str,
    *,
    keep_distinct: bool = False,
    strict: bool = False,
    timeout: float = TIMEOUT,
    immutable: bool = False,
    isolate: bool = True,
    plug_value: bool = False,
    plug_value_limit: int = PLUG_VALUE_LIMIT,
) -> ExecVerdict:
    """Execution match of ``pred`` against ``gold`` on every database of ``db_folder``.

    ``db_file`` is what the official evaluator passes (``db_dir/db_id/db_id.sqlite``, see
    :func:`mtsql.data.resolve_database_path`) and ``db_folder`` its folder (the official code takes
    ``os.path.dirname(db_file)``; only the name of ``db_file`` is used, inside ``db_folder``). ``keep_distinct`` is
    the official ``--keep_distinct``; ``strict`` fixes the quirks listed in the module's documentation; ``timeout``
    limits each execution (seconds); ``immutable`` opens the databases with ``immutable=1`` (faster, only for files
    nothing writes to); ``isolate`` runs each query in a worker process killed when it overruns ``timeout``
    (:func:`~mtsql.sql.executor.execute_isolated`: a hard limit also for a single slow built-in function; off, such
    a call can overrun). ``plug_value`` is the official ``--plug_value`` (step 5), trying at most
    ``plug_value_limit`` plugged predictions. Never raises for a problem of the queries or the databases.
    """
    folder = os.fspath(db_folder)
    db_path = os.path.join(folder, os.path.basename(os.fspath(db_file)))
    pred, gold = postprocess(pred), postprocess(gold)
    if not keep_distinct:
        # strict mode removes DISTINCT from every statement and keeps them all
        try:
            pred = remove_distinct(pred, all_statements=strict)
        except IndexError:
            return ExecVerdict(0, PRED_ERROR, "empty query: there is no SQL statement to execute")
        except Exception as exc:  # sqlparse refused the query (the official run crashes)
            return ExecVerdict(0, PRED_ERROR, f"cannot parse the query: {exc}")
        try:
            gold = remove_distinct(gold, all_statements=strict)
        except IndexError:
            return ExecVerdict(0, GOLD_ERROR, "empty gold query")
        except Exception as exc:
            return ExecVerdict(0, GOLD_ERROR, f"cannot parse the gold query: {exc}")
    ordered = order_matters(gold)

    try:
        dbs = database_paths(db_path, strict=strict)
    except OSError:
        return ExecVerdict(0, DB_MISSING, f"database folder not found: {folder}", db_path)
    if strict and not os.path.isfile(db_path):
        return ExecVerdict(0, DB_MISSING, f"database not found: {db_path}", db_path)
    if not dbs:
        return ExecVerdict(0, DB_MISSING, f"no .sqlite database in {folder}", db_path)

    gold_sql, pred_sql = replace_cur_year(gold), replace_cur_year(pred)
    verdict = _compare_on_databases(dbs, gold_sql, pred_sql, ordered, strict, timeout, immutable, isolate)
    if not plug_value or verdict.status in (MATCH, GOLD_ERROR):
        return verdict
    return _plug_values(
        verdict, dbs, gold, pred, gold_sql, pred_sql, ordered, strict, timeout, immutable, isolate, plug_value_limit
    )


def _compare_on_databases(
    dbs: Sequence[str],
    gold_sql: str,
    pred_sql: str,
    ordered: bool,
    strict: bool,
    timeout: float,
    immutable: bool,
    isolate: bool,
) -> ExecVerdict:
    """The official per-database loop: the gold (cached) and then the prediction on each database, all must agree."""
    for db in dbs:
        gold_result = _gold_result(db, gold_sql, timeout, immutable, isolate)
        if not gold_result.ok and not (gold_result.error_kind == "empty" and not strict):
            return ExecVerdict(0, GOLD_ERROR, gold_result.error, db)
        gold_rows = gold_result.rows
        if pred_sql == gold_sql and not _NONDETERMINISTIC.search(gold_sql):
            continue  # the same deterministic query on the same database returns the same rows
        # A prediction with more rows than the gold is a mismatch whatever its rows are: fetch one more at most.
        pred_result = executor(isolate)(
            db,
            pred_sql,
            timeout=timeout,
            max_rows=len(gold_rows),
            max_chars=None,
            text_errors="ignore",
            immutable=immutable,
        )
        if not pred_result.ok:
            if pred_result.error_kind == "timeout":
                return ExecVerdict(0, PRED_TIMEOUT, pred_result.error, db)
            if pred_result.error_kind != "empty" or strict:
                return ExecVerdict(0, PRED_ERROR, pred_result.error, db)
        if pred_result.truncated:
            return ExecVerdict(0, MISMATCH, f"the prediction returns more than {len(gold_rows)} rows", db)
        if not result_eq(gold_rows, pred_result.rows, ordered, strict=strict):
            return ExecVerdict(0, MISMATCH, _mismatch_message(gold_rows, pred_result.rows, ordered), db)
    return ExecVerdict(1, MATCH, None, dbs[0])


def _plug_values(
    unplugged: ExecVerdict,
    dbs: Sequence[str],
    gold: str,
    pred: str,
    gold_sql: str,
    pred_sql: str,
    ordered: bool,
    strict: bool,
    timeout: float,
    immutable: bool,
    isolate: bool,
    limit: int,
) -> ExecVerdict:
    """The official ``plug_value`` step, after the prediction itself did not match: the plugged predictions in turn.

    The first that matches gives a ``match`` naming it; when none does, the unplugged prediction's verdict stands,
    unless the limit cut the enumeration short (``plug_value_limit``: the official script would have gone on).
    """
    from mtsql.eval.plug_value import plugged_predictions

    try:
        total, candidates = plugged_predictions(gold, pred)
    except IndexError:  # no statement once `;` and tabs are removed: the official run crashes here
        return unplugged
    deterministic = not _NONDETERMINISTIC.search(pred_sql)
    for rank, candidate in enumerate(itertools.islice(candidates, limit), 1):
        candidate_sql = replace_cur_year(candidate)
        if candidate_sql == pred_sql and deterministic:
            continue
        verdict = _compare_on_databases(dbs, gold_sql, candidate_sql, ordered, strict, timeout, immutable, isolate)
        if verdict.status == MATCH:
            return ExecVerdict(1, MATCH, f"the gold's values plugged in ({rank} of {total}): {candidate}", verdict.db)
        if verdict.status == GOLD_ERROR:
            return verdict
    if total > limit:
        message = (
            f"none of the first {limit} of {total} plugged predictions matches (the official script tries them all)"
        )
        return ExecVerdict(0, PLUG_VALUE_LIMITED, message, unplugged.db)
    note = f"none of the {total} predictions with the gold's values plugged in matches"
    return ExecVerdict(0, unplugged.status, f"{unplugged.message}; {note}", unplugged.db)


# Functions whose result can differ between two runs of the same query, which the official runs twice.
_NONDETERMINISTIC = re.compile(r"random|now|current_", re.IGNORECASE)


def _mismatch_message(gold: Sequence[tuple], pred: Sequence[tuple], ordered: bool) -> str:
    if len(gold) != len(pred):
        return f"{len(pred)} rows instead of {len(gold)}"
    if gold and len(gold[0]) != len(pred[0]):
        return f"{len(pred[0])} columns instead of {len(gold[0])}"
    return "different rows in order" if ordered else "different rows"
