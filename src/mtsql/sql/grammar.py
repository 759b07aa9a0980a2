"""The operator tables of the Spider SQL structure: a parsed query stores each operator as its index here.

Kept apart from the parser so that code reading parsed queries (hardness, exact match) imports only these.
"""

__all__ = ["AGG_OPS", "COND_OPS", "ORDER_OPS", "SQL_OPS", "UNIT_OPS", "WHERE_OPS"]

AGG_OPS = ("none", "max", "min", "count", "sum", "avg")
UNIT_OPS = ("none", "-", "+", "*", "/")
WHERE_OPS = ("not", "between", "=", ">", "<", ">=", "<=", "!=", "in", "like", "is", "exists")
COND_OPS = ("and", "or")
SQL_OPS = ("intersect", "union", "except")
ORDER_OPS = ("desc", "asc")
