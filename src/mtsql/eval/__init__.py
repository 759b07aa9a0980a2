"""The official-compatible evaluator: exact set match, partial scores, execution match, one turn's verdicts, the
session driver and its reports (the hardness rules are :mod:`mtsql.sql.hardness`)."""
