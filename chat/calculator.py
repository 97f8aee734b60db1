"""The policy agent's calculator: plain arithmetic, evaluated safely, never with eval()."""

from __future__ import annotations

import ast
import operator
import re

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

CALCULATOR_TOOL = "calculate"
MAX_EXPRESSION_CHARS = 200
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
# Numbers with an operator between them, as a question writes them: "120 - 15%", "3 x 4.99", "$80 * 2".
EXPRESSION = re.compile(r"\$?\d+(?:\.\d+)?%?(?:\s*(?:[-+*/×x])\s*\$?\d+(?:\.\d+)?%?)+")


class CalculationRefused(ValueError):
    """The expression is not plain arithmetic; the message says what is accepted."""


class CalculateInput(BaseModel):
    expression: str = Field(min_length=1, max_length=MAX_EXPRESSION_CHARS,
                            description="Arithmetic with + - * / and parentheses, e.g. '120 * 0.85'. "
                                        "'15%' means 0.15; '120 - 15%' takes 15% off 120.")


def calculate(expression: str) -> str:
    """Return `expression = result`; raise CalculationRefused for anything but arithmetic."""
    text = expression.replace("×", "*").replace("$", "").replace(",", "")
    text = re.sub(r"(?<=\d)\s*x\s*(?=\d)", "*", text)
    text = re.sub(r"([-+])\s*(\d+(?:\.\d+)?)%", r"\1(\2/100)*_base_", text)  # "120 - 15%": 15% of 120
    text = re.sub(r"(\d+(?:\.\d+)?)%", r"(\1/100)", text)
    try:
        tree = ast.parse(text.strip(), mode="eval")
        value = _value(tree.body, None)
    except (SyntaxError, RecursionError, ZeroDivisionError, OverflowError) as error:
        raise CalculationRefused(f"“{expression[:60]}” is not arithmetic this calculator can work out "
                                 "(use numbers, + - * / and parentheses).") from error
    shown = f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{expression.strip()} = {shown}"


def _value(node: ast.AST, base: float | None) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return float(node.value)
    if isinstance(node, ast.Name) and node.id == "_base_" and base is not None:
        return base
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _value(node.operand, base)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left = _value(node.left, base)
        # "120 - 15%" reads as 120 - 15% of 120: a percentage added or taken off is of the left side.
        right = _value(node.right, left if isinstance(node.op, ast.Add | ast.Sub) else base)
        result = _OPERATORS[type(node.op)](left, right)
        if abs(result) > 1e15:
            raise OverflowError
        return result
    raise SyntaxError("not arithmetic")


def expressions_in(text: str) -> list[str]:
    """Return the arithmetic a question writes out, e.g. "2 x 4.99" in "what do 2 x 4.99 cost?"."""
    return [match.group(0).strip() for match in EXPRESSION.finditer(text)][:3]


def build_calculator() -> BaseTool:
    """Return the calculator as a tool the policy agent may call."""

    def run(expression: str) -> str:
        return calculate(expression)

    return StructuredTool.from_function(
        run, name=CALCULATOR_TOOL, args_schema=CalculateInput,
        description="Work out an amount: refunds, fees, shipping costs, totals. Arithmetic only.")
