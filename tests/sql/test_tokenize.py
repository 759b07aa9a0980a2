"""The Spider-format tokenizer must give the official evaluator's tokens (NLTK ``word_tokenize`` based).

Every expected value below was produced by the official ``process_sql.tokenize`` (test-suite-sql-eval, with
NLTK 3.10 and its ``punkt_tab`` English model); the agreement on the dev sets and on random SQL-like text is
checked outside the test suite, against NLTK itself.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtsql.sql.tokenize import SQLTokenizeError, split_sentences, tokenize, word_tokenize

OFFICIAL_TOKENS = [
    # plain words are lower-cased; table.column stays one token
    ("SELECT T1.name FROM singer AS T1", ["select", "t1.name", "from", "singer", "as", "t1"]),
    # quoted literals are one token, case kept, single quotes turned into double quotes
    (
        "SELECT name FROM singer WHERE country = 'France'",
        ["select", "name", "from", "singer", "where", "country", "=", '"France"'],
    ),
    (
        'SELECT name FROM singer WHERE country = "New York"',
        ["select", "name", "from", "singer", "where", "country", "=", '"New York"'],
    ),
    (
        "SELECT name FROM singer WHERE name LIKE '%Smith%'",
        ["select", "name", "from", "singer", "where", "name", "like", '"%Smith%"'],
    ),
    # a literal glued to other text keeps its placeholder (named after the quote offsets)
    ('SELECT name FROM t WHERE name="x"', ["select", "name", "from", "t", "where", "name=__val_30_32__"]),
    # Treebank: brackets and '*' are split off
    ("SELECT count(*) FROM singer", ["select", "count", "(", "*", ")", "from", "singer"]),
    ("SELECT [a] , {b} , <c> FROM t", ["select", "[", "a", "]", ",", "{", "b", "}", ",", "<", "c", ">", "from", "t"]),
    # comparison operators are merged back, also when written with a space
    (
        "SELECT a FROM t WHERE b != 1 AND c >= 2 AND d <= 3",
        ["select", "a", "from", "t", "where", "b", "!=", "1", "and", "c", ">=", "2", "and", "d", "<=", "3"],
    ),
    (
        "SELECT a FROM t WHERE b ! = 1 AND c > = 2",
        ["select", "a", "from", "t", "where", "b", "!=", "1", "and", "c", ">=", "2"],
    ),
    # ... but '>' is split from '=1' when glued, so the merge does not see a lone '='
    ("SELECT a FROM t WHERE b>=1", ["select", "a", "from", "t", "where", "b", ">", "=1"]),
    # an '=' in first position looks at the last token (Python's index -1)
    ("= a !", ["=", "a", "!=", "a", "!"]),
    # the final period of a sentence is split off
    ("SELECT a FROM t WHERE b = 1.", ["select", "a", "from", "t", "where", "b", "=", "1", "."]),
    # Punkt ends a sentence after 'T1.' (followed by '*'), so its period is a token of its own
    ("SELECT T1.* FROM t AS T1", ["select", "t1", ".", "*", "from", "t", "as", "t1"]),
    # a number with a period: no sentence break before a lower-case word, a break before a capitalised one
    (
        "SELECT a FROM t WHERE b = 3. and c = 1",
        ["select", "a", "from", "t", "where", "b", "=", "3.", "and", "c", "=", "1"],
    ),
    (
        "SELECT a FROM t WHERE b = 3. AND c = 1",
        ["select", "a", "from", "t", "where", "b", "=", "3", ".", "and", "c", "=", "1"],
    ),
    # an initial followed by a word seen in lower case breaks; a known abbreviation does not
    ("SELECT a FROM t WHERE x = a. Name", ["select", "a", "from", "t", "where", "x", "=", "a", ".", "name"]),
    ("SELECT a FROM t AS st. WHERE b = 1", ["select", "a", "from", "t", "as", "st.", "where", "b", "=", "1"]),
    # '?' and '!' end sentences and are split off
    ("SELECT a FROM t? SELECT b", ["select", "a", "from", "t", "?", "select", "b"]),
    # ',' and ':' are split unless a digit follows; a run of commas keeps the second one glued
    ("SELECT a,b FROM t", ["select", "a", ",", "b", "from", "t"]),
    ("SELECT a FROM t WHERE b = 1,000", ["select", "a", "from", "t", "where", "b", "=", "1,000"]),
    ("x ,,a", ["x", ",", ",a"]),
    ("SELECT a: b FROM t:", ["select", "a", ":", "b", "from", "t", ":"]),
    # '--', '...', and ;@#$%& are split off
    ("SELECT a FROM t --comment", ["select", "a", "from", "t", "--", "comment"]),
    ("SELECT a FROM t WHERE b = 1 ... c", ["select", "a", "from", "t", "where", "b", "=", "1", "...", "c"]),
    ("a;b@c#d$e%f&g", ["a", ";", "b", "@", "c", "#", "d", "$", "e", "%", "f", "&", "g"]),
    # MacIntyre contractions are split
    (
        "SELECT cannot , gonna , wanna FROM t",
        ["select", "can", "not", ",", "gon", "na", ",", "wan", "na", "from", "t"],
    ),
    # backticks are split off; the information separator U+001C counts as whitespace
    ("SELECT `name` FROM t", ["select", "`", "name", "`", "from", "t"]),
    ("SELECT a\x1cFROM t", ["select", "a", "from", "t"]),
    ("", []),
]


@pytest.mark.parametrize(("sql", "expected"), OFFICIAL_TOKENS)
def test_official_tokens(sql: str, expected: list[str]) -> None:
    """Each rule of the official tokenizer (NLTK Treebank + Punkt + the quote/operator handling)."""
    assert tokenize(sql) == expected


@pytest.mark.parametrize("sql", ['SELECT "it\'s" FROM t', "SELECT 'a FROM t", 'a "b" "c'])
def test_odd_number_of_quotes_is_an_error(sql: str) -> None:
    """The official asserts an even number of quotes (after turning ' into ")."""
    with pytest.raises(SQLTokenizeError):
        tokenize(sql)
    assert issubclass(SQLTokenizeError, ValueError)


def test_results_are_fresh_lists() -> None:
    """The cache must not leak: mutating a result cannot change the next one."""
    first = tokenize("SELECT a FROM t")
    first.append("x")
    assert tokenize("SELECT a FROM t") == ["select", "a", "from", "t"]


def test_word_tokenize_keeps_case_and_splits_sentences() -> None:
    """The NLTK-equivalent layer is usable on its own (quote-free text)."""
    assert split_sentences("SELECT a FROM t? SELECT b") == ["SELECT a FROM t?", "SELECT b"]
    assert word_tokenize("SELECT T1.* FROM t") == ["SELECT", "T1", ".", "*", "FROM", "t"]
    assert split_sentences("  ") == []


SQL_PIECES = st.sampled_from(
    [
        "SELECT",
        "FROM",
        "WHERE",
        "T1.name",
        "count(*)",
        "(",
        ")",
        ",",
        ".",
        "'v'",
        '"w"',
        "=",
        "!=",
        ">=",
        "<",
        "AND",
        "1",
        "2.5",
        "3.",
        "T.",
        "St.",
        "Name",
        "name",
        "?",
        "!",
        "*",
        "--",
        ";",
        ":",
        "`",
        "cannot",
        "! =",
        "\n",
        "  ",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(SQL_PIECES, max_size=30).map(" ".join))
def test_tokens_are_lower_case_and_whitespace_free(sql: str) -> None:
    """Whatever the input, tokens carry no whitespace, and only quoted literals keep upper case."""
    try:
        tokens = tokenize(sql)
    except SQLTokenizeError:
        return
    for token in tokens:
        assert token and not any(char.isspace() for char in token)
        if '"' not in token:
            assert token == token.lower()
