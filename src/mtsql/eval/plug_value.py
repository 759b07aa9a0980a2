"""The official ``--plug_value``: the gold's values plugged into the prediction's value slots, every way.

With ``--plug_value`` the official test-suite evaluator (``parse.get_all_preds_for_execution``) lets a prediction
match when it would match with the gold's values: it extracts the values of the gold and the value slots of the
prediction, and tries every way of filling each slot with one of the gold's values. :func:`plugged_predictions`
yields the same strings. Both queries go in as execution match has them (after
:func:`~mtsql.sql.preprocess.postprocess` and, unless ``keep_distinct``,
:func:`~mtsql.eval.exec_match.remove_distinct`), and each step below is the official one:

1. *Reformat*: strip the query, delete every ``;`` and tab (inside literals too, so later statements join the
   first), take sqlparse's tokens of the first statement (none: ``IndexError``, where the official run crashes),
   drop the ``Whitespace`` tokens (newlines and comments stay) and join the rest with single spaces; ``t1.*`` to
   ``T3.*`` become ``*`` (in practice never: the tokens are already apart).
2. *Keyword case*: ``sqlparse.format(..., keyword_case="upper")``; ``T<digits>.`` followed by a space loses it.
3. *Strings*: every single-quoted string and double-quoted name (quotes kept) of the first statement is a value,
   in token order, and each occurrence of its text anywhere in the query becomes the slot ``VALUERARE``.
4. *Numbers*: split at whitespace; a word equal to a match of ``[-+]?\\d*\\.\\d+`` in the query is a float value;
   then a word equal to a stripped match of ``[^tT]\\d+`` in the words joined by spaces is an integer value: a
   word of digits or of one character but ``t``/``T`` and digits (``LIMIT 3``, ``-3``, a column ``c1``; not
   ``t1``, ``col2`` nor a one-digit number that starts the query). Both become slots, wherever they stand
   (``SELECT 1``, ``count(*) > 2``).
5. *Words*: every word is lower-cased (a word equal to ``valuerare`` is a slot); a word with a ``.`` and
   ``T<digits>.`` in it is split around its dots.

The prediction's words are the template; the gold's values, as a set, are the choices. There are
``len(values) ** len(slots)`` plugged predictions, each the template's words joined by single spaces with one
value in each slot: lower-case SQL with the gold's literals as written (quotes kept). A prediction without slots
gives one (itself, reformatted); slots without gold values give none. The official code does not limit the
number; :func:`~mtsql.eval.exec_match.exec_match` stops at ``plug_value_limit`` executions.

Order. The official code enumerates ``itertools.product`` over a Python ``set``, whose order depends on string
hashing, so it has no fixed order; the verdict (does any plugged prediction match) does not depend on it. Here the
most plausible come first, so that a match is found after few executions: for each slot the values are ranked (the
prediction's own value in that slot if the gold has it, then the gold's value in the slot of the same rank, then
the gold's values in the gold's slot order) and the assignments come by increasing sum of ranks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["SLOT", "ValueTemplate", "plugged_predictions", "value_template"]

#: The official slot marker; it is recognised lower-cased, as ``valuerare``.
SLOT = "VALUERARE"
_SLOT_WORD = SLOT.lower()

_STARS = ("t1.*", "t2.*", "t3.*", "T1.*", "T2.*", "T3.*")
_ALIAS_DOT_SPACE = re.compile(r"(T\d+\.)\s")
_FLOAT = re.compile(r"[-+]?\d*\.\d+")
_INT = re.compile(r"[^tT]\d+")
_ALIAS_DOT = re.compile(r"[Tt]\d+\.")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class ValueTemplate:
    """A query as the official extraction sees it.

    ``words``: its lower-cased words, ``valuerare`` at each slot; ``slot_texts``: the text each slot stands for,
    in order (the string or number it replaced); ``values``: its values in the official extraction order
    (strings, then floats, then integers), repetitions kept.
    """

    words: tuple[str, ...]
    slot_texts: tuple[str, ...]
    values: tuple[str, ...]


def _first_statement(query: str) -> list[tuple[object, str]]:
    """``(ttype, text)`` of the leaves of ``sqlparse.parse(query)[0]``: the lexer's tokens of the first statement.

    Grouping only nests tokens (the one type it rewrites, wildcard to operator, plays no part here), so it is
    skipped. Raises ``IndexError`` when the query holds no statement, as ``sqlparse.parse(query)[0]`` does.
    """
    from sqlparse import lexer
    from sqlparse.engine.statement_splitter import StatementSplitter

    for statement in StatementSplitter().process(lexer.tokenize(query)):
        return [(token.ttype, token.value) for token in statement.tokens]
    raise IndexError("tuple index out of range")


def _replace_strings(text: str, strings: Sequence[str]) -> tuple[str, dict[int, str]]:
    """``text`` with each occurrence of each string (in turn) replaced by :data:`SLOT`, and the replaced string
    at the offset of each slot, for :attr:`ValueTemplate.slot_texts`.

    Splitting the pieces not yet replaced is the official sequential ``str.replace`` as long as no string can
    overlap a slot, i.e. the query does not contain ``VALUERARE`` itself; then plain ``str.replace`` runs and the
    slots' texts are unknown.
    """
    if SLOT in text:
        for string in strings:
            text = text.replace(string.strip(), SLOT)
        return text, {}
    pieces: list[tuple[str, str | None]] = [(text, None)]
    for string in strings:
        needle = string.strip()
        split: list[tuple[str, str | None]] = []
        for piece, replaced in pieces:
            if replaced is not None:
                split.append((piece, replaced))
                continue
            for index, part in enumerate(piece.split(needle)):
                if index:
                    split.append((SLOT, string))
                split.append((part, None))
        pieces = split
    offsets, offset = {}, 0
    for piece, replaced in pieces:
        if replaced is not None:
            offsets[offset] = replaced
        offset += len(piece)
    return "".join(piece for piece, _ in pieces), offsets


def value_template(query: str) -> ValueTemplate:
    """The official extraction of ``query``'s words, value slots and values (steps 1 to 5 of the module doc).

    Raises ``IndexError`` for a query without any statement once ``;`` and tabs are removed.
    """
    import sqlparse
    from sqlparse import tokens

    query = query.strip().replace(";", "").replace("\t", "")
    text = " ".join(value for ttype, value in _first_statement(query) if ttype != tokens.Whitespace)
    for star in _STARS:
        text = text.replace(star, "*")
    text = _ALIAS_DOT_SPACE.sub(r"\1", sqlparse.format(text, reindent=False, keyword_case="upper"))
    strings = [
        value
        for ttype, value in _first_statement(text)
        if ttype == tokens.Literal.String.Single or ttype == tokens.Literal.String.Symbol
    ]
    text, replaced = _replace_strings(text, strings)

    matches = list(_WORD.finditer(text))
    words = [match.group() for match in matches]
    texts = [replaced.get(match.start(), match.group()) for match in matches]
    floats = set(_FLOAT.findall(text))
    float_values = [word for word in words if word in floats]
    words = [SLOT if word in floats else word for word in words]
    ints = {match.strip() for match in _INT.findall(" ".join(words))}
    int_values = [word for word in words if word in ints]
    words = [SLOT if word in ints else word for word in words]

    template: list[str] = []
    slot_texts: list[str] = []
    for word, source in zip(words, texts, strict=True):
        parts = word.replace(".", " . ").split() if "." in word and _ALIAS_DOT.search(word) else [word]
        for part in parts:
            template.append(part.lower())
            if template[-1] == _SLOT_WORD:
                slot_texts.append(source if len(parts) == 1 else part)
    return ValueTemplate(tuple(template), tuple(slot_texts), (*strings, *float_values, *int_values))


def plugged_predictions(gold: str, pred: str) -> tuple[int, Iterator[str]]:
    """How many plugged predictions the official ``--plug_value`` tries for ``pred``, and all of them, lazily.

    The same count and the same strings as the official ``get_all_preds_for_execution(gold, pred)``, most
    plausible first (see the module's doc). Raises ``IndexError`` when either query has no statement once ``;``
    and tabs are removed (the official run crashes there).
    """
    gold_template, pred_template = value_template(gold), value_template(pred)
    choices = set(gold_template.values)
    base = list(dict.fromkeys([t for t in gold_template.slot_texts if t in choices] + list(gold_template.values)))
    ranked = []
    for index, own in enumerate(pred_template.slot_texts):
        preferred = [own, *gold_template.slot_texts[index : index + 1]]
        ranked.append(list(dict.fromkeys([v for v in preferred if v in choices] + base)))
    slots = [index for index, word in enumerate(pred_template.words) if word == _SLOT_WORD]
    return len(base) ** len(slots), _plug(pred_template.words, slots, ranked, len(base))


def _plug(words: Sequence[str], slots: Sequence[int], ranked: Sequence[Sequence[str]], k: int) -> Iterator[str]:
    filled = list(words)
    for ranks in _rank_tuples(k, len(slots)):
        for slot, choices, rank in zip(slots, ranked, ranks, strict=True):
            filled[slot] = choices[rank]
        yield " ".join(filled)


def _rank_tuples(k: int, n: int) -> Iterator[list[int]]:
    """Every ``n``-tuple over ``range(k)`` once, by increasing sum, lexicographically within a sum (one list,
    updated in place). ``n == 0`` gives the empty tuple; ``k == 0 < n`` gives nothing."""
    if n == 0:
        yield []
        return
    if k == 0:
        return
    top = k - 1
    for total in range(n * top + 1):
        # the lexicographically smallest tuple with this sum: everything pushed to the right
        ranks = [0] * n
        rest = total
        for i in range(n - 1, -1, -1):
            ranks[i] = min(top, rest)
            rest -= ranks[i]
        while True:
            yield ranks
            # next: raise the rightmost position that can take one from the positions after it
            suffix = 0
            for i in range(n - 1, -1, -1):
                if suffix > 0 and ranks[i] < top:
                    break
                suffix += ranks[i]
            else:
                break
            ranks[i] += 1
            rest = suffix - 1
            for j in range(n - 1, i, -1):
                ranks[j] = min(top, rest)
                rest -= ranks[j]
