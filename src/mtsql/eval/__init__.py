"""The official-compatible evaluator: hardness, exact set match, partial scores, execution match, driver."""
