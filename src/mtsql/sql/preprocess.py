"""How the official execution evaluator prepares a query before running it, shared by every part that runs
dataset SQL: the evaluation, the environment's oracle memory, the reward scorer and the data statistics.

The datasets' gold queries are tokenized (``! =``, ``> =``, ``< =``), which SQLite rejects as they are, and a
few use MySQL's ``YEAR(CURDATE())``, which the official evaluator replaces by 2020.
"""

from __future__ import annotations

import os
import re

from mtsql.sql.executor import DEFAULT_TIMEOUT, ExecResult, executor

__all__ = ["postprocess", "replace_cur_year", "run_gold_once"]


def postprocess(query: str) -> str:
    """Join the comparison operators that models sometimes split: ``> =``, ``< =``, ``! =``."""
    return query.replace("> =", ">=").replace("< =", "<=").replace("! =", "!=")


_CUR_YEAR = re.compile(r"YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*", re.IGNORECASE)


def replace_cur_year(query: str) -> str:
    """``YEAR(CURDATE())`` (any spacing and case, with the whitespace after it) becomes ``2020``."""
    return _CUR_YEAR.sub("2020", query)


def run_gold_once(
    db_file: str | os.PathLike[str], gold: str, *, timeout: float = DEFAULT_TIMEOUT, isolate: bool = True
) -> ExecResult:
    """The gold query as the execution match runs it (post-processed, current year replaced), one row fetched.

    What a question's gold does on its database: whether it executes, and whether it returns any row (any empty
    prediction execution-matches a gold without rows). Data statistics and the reward scorer both ask this.
    """
    return executor(isolate)(db_file, replace_cur_year(postprocess(gold)), timeout=timeout, max_rows=1)
