"""DAX expressions parsed by pbi-parsers, and what they refer to.

A DAX syntax error must fail the checks, not surface the first time Power BI Desktop opens
the model, so every expression goes through pbi-parsers' DAX parser here. The parser stops
at the first expression it recognises; a trailing remainder (a stray parenthesis, two
expressions side by side) is checked here explicitly, not left to its assert.

pbi-parsers 0.9.5 consumes tokens inside `assert` statements (its function-argument and
RETURN parsing), so under `python -O` it loops forever: `require_asserts()` refuses to start.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pbi_parsers.dax import Lexer, Parser, TokenType, exprs
from pbi_parsers.dax.main import remove_non_executing_tokens


class DaxSyntaxError(ValueError):
    """A DAX expression pbi-parsers cannot parse in full."""


def require_asserts() -> None:
    """Fail fast under `python -O`, where pbi-parsers would hang (see the module docstring)."""
    if not __debug__:
        raise RuntimeError("pbi-parsers needs its assert statements: run without python -O")


def _table_name(raw: str) -> str:
    return raw[1:-1].replace("''", "'") if raw.startswith("'") else raw


def _bracketed(raw: str) -> str:
    return raw[1:-1].replace("]]", "]")


@dataclass(frozen=True)
class Dax:
    """One parsed expression: its text and the names it uses.

    `columns`: 'table'[column] references (qualified), `bracketed`: bare [name] references
    (a measure, or an unqualified column), `tables`: quoted table references ('dim_operator'),
    `divisions`: how many `/` operators it has.
    """

    text: str
    columns: tuple[tuple[str, str], ...]
    bracketed: tuple[str, ...]
    tables: tuple[str, ...]
    divisions: int


@lru_cache(maxsize=1024)
def parse_dax(text: str) -> Dax:
    """Parse `text` in full with pbi-parsers, or raise DaxSyntaxError."""
    require_asserts()
    try:
        parser = Parser(remove_non_executing_tokens(Lexer(text).scan()))
        tree = parser.to_ast()
        complete = parser.peek().tok_type == TokenType.EOF
    except (ValueError, AssertionError, IndexError, KeyError, TypeError, AttributeError) as exc:
        # the parser signals a syntax error with ValueError or a failed assert, or trips on it
        raise DaxSyntaxError(f"DAX does not parse: {exc or type(exc).__name__}") from exc
    if tree is None or not complete:
        raise DaxSyntaxError("DAX does not parse in full: text is left after the expression")
    return Dax(
        text=text,
        columns=tuple(
            (_table_name(c.table.text), _bracketed(c.column.text)) for c in tree.find_all(exprs.ColumnExpression)
        ),
        bracketed=tuple(_bracketed(m.name.text) for m in tree.find_all(exprs.MeasureExpression)),
        tables=tuple(
            _table_name(t.name.text)
            for t in tree.find_all(exprs.TableExpression)
            if t.name.tok_type == TokenType.SINGLE_QUOTED_IDENTIFIER
        ),
        divisions=sum(1 for d in tree.find_all(exprs.DivMulExpression) if d.operator.tok_type == TokenType.DIVIDE_SIGN),
    )
