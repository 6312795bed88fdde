"""The code's shape budgets: no module over 450 lines, no function over 80, cli.py at most 600.
cli.py is not there yet (issue 13): until it is, it may not grow past where it stands."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE_LINES, FUNCTION_LINES, CLI_LINES = 450, 80, 600
CLI_LINES_TODAY = 1110  # only ever lowered, down to CLI_LINES


def sources() -> list[Path]:
    return [ROOT / "cli.py", *sorted((ROOT / "vidcolor").rglob("*.py"))]


def test_no_module_is_over_its_budget() -> None:
    over = []
    for path in sources():
        lines = len(path.read_text().splitlines())
        limit = max(CLI_LINES, CLI_LINES_TODAY) if path.name == "cli.py" else MODULE_LINES
        if lines > limit:
            over.append(f"{path.relative_to(ROOT)}: {lines} lines (at most {limit})")
    assert not over, "\n".join(over)


def test_no_function_is_over_its_budget() -> None:
    over = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > FUNCTION_LINES:
                    over.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines}")
    assert not over, "\n".join(over)
