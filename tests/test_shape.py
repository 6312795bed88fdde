"""The code's shape budgets: no module over 450 lines, no function over 80, cli.py at most 600
(it maps flags onto the library's stage functions, and nothing else); the code as ruff formats
it, with at most 20 lines kept out of the formatter (tables whose alignment is the point)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE_LINES, FUNCTION_LINES, CLI_LINES = 450, 80, 600
FORMAT_EXEMPT = 20  # `# fmt: skip` lines and `# fmt: off` blocks, in the whole repository


def sources() -> list[Path]:
    return [ROOT / "cli.py", ROOT / "cli_support.py", *sorted((ROOT / "vidcolor").rglob("*.py"))]


def test_no_module_is_over_its_budget() -> None:
    over = []
    for path in sources():
        lines = len(path.read_text().splitlines())
        limit = CLI_LINES if path.name == "cli.py" else MODULE_LINES
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


def test_few_lines_are_kept_out_of_the_formatter() -> None:
    """The budgets are met by splitting modules, not by packing lines the formatter would open."""
    kept = []
    for path in sorted(ROOT.rglob("*.py")):
        if {".git", ".venv", "venv"} & set(path.relative_to(ROOT).parts):
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.rstrip().endswith(("# fmt: skip", "# fmt: off")):
                kept.append(f"{path.relative_to(ROOT)}:{n}")
    assert len(kept) <= FORMAT_EXEMPT, "\n".join(kept)


def test_the_library_does_not_import_click() -> None:
    """Options are data (vidcolor.optspec): only cli.py and cli_support.py build click from it."""
    found = []
    for path in sorted((ROOT / "vidcolor").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n == "click" or n.startswith("click.") for n in names):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, "\n".join(found)
