"""TOML recipes: inputs, a work folder, and one section of options per stage.

    inputs = ["episodes/*.mkv"]     # globs, relative to the recipe's folder
    work = "work/cartoon"

    [dataset]
    preset = "spongebob"            # the same option names as `vidcolor dataset build`
    split-by = "episode"

A stage's options are checked against the metadata its command's options are built from
(vidcolor.options: names, types, bounds, choices), so a recipe can hold nothing a command would
refuse. Errors name the file, line and key.
"""

from __future__ import annotations

import glob
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidcolor.errors import UserError
from vidcolor.files import read_regular

MAX_RECIPE_BYTES = 1 << 20  # a recipe is a page of TOML; anything this long is not one


class RecipeError(UserError):
    """The recipe cannot be used as written."""


@dataclass
class Recipe:
    path: Path
    text: str
    data: dict[str, Any]
    overrides: set[tuple[str | None, str]] = field(default_factory=set)  # from --set

    def line_of(self, section: str | None, key: str) -> int | None:
        """The line where ``key`` is set (inside ``[section]`` when given), for messages."""
        inside = section is None
        pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for n, line in enumerate(self.text.splitlines(), 1):
            header = re.match(r"^\s*\[([^\]]+)\]", line)
            if header and section is None and header.group(1).strip() == key:
                return n  # a table at the top level
            if header:
                inside = header.group(1).strip() == section
            elif inside and pattern.match(line):
                return n
        return None

    def where(self, section: str | None, key: str) -> str:
        """Where a value was set, for messages: the file and line, or the --set that set it."""
        if (section, key) in self.overrides:
            return f"--set {section + '.' if section else ''}{key}"
        line = self.line_of(section, key)
        name = f"[{section}] {key}" if section else key
        return f"{self.path}:{line}: {name}" if line else f"{self.path}: {name}"

    def base(self, section: str | None, key: str) -> Path:
        """What a relative path in this value is relative to: the recipe's folder, or the
        current folder for a value given with --set."""
        return Path.cwd() if (section, key) in self.overrides else self.path.parent

    def set(self, assignment: str) -> None:
        """Apply ``--set section.key=value`` (or ``key=value`` at the top level). The value is
        read as TOML (``3``, ``true``, ``[\"a\", \"b\"]``), else taken as text."""
        name, sep, raw = assignment.partition("=")
        if not sep or not name.strip():
            raise RecipeError(f"--set {assignment}: expected KEY=VALUE (e.g. train.epochs=3)")
        section, _, key = name.strip().rpartition(".")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        if section:
            table = self.data.setdefault(section, {})
            if not isinstance(table, dict):
                raise RecipeError(f"--set {name}: {section} is not a table")
            table[key] = value
        else:
            self.data[key] = value
        self.overrides.add((section or None, key))

    def globs(self, section: str | None, key: str) -> list[Path]:
        """The files a list of globs matches, sorted, each glob matching at least one."""
        table = self.data if section is None else self.section(section)
        where = self.where(section, key)
        patterns = table[key]
        if isinstance(patterns, str):
            patterns = [patterns]
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise RecipeError(f"{where}: expected a list of globs")
        if not patterns:
            raise RecipeError(f"{where}: the list is empty")
        files: list[Path] = []
        root = self.base(section, key)
        for pattern in patterns:
            # root_dir, not the folder pasted into the pattern: its name may hold [ ] * ?
            matched = glob.glob(pattern, root_dir=root, recursive=True)
            found = sorted(p for p in (root / m for m in matched) if p.is_file())
            if not found:
                raise RecipeError(f"{where}: '{pattern}' matches no file")
            files += [f for f in found if f not in files]
        return files

    def inputs(self) -> list[Path]:
        """The files the top-level ``inputs`` globs match (relative to the recipe's folder)."""
        if "inputs" not in self.data:
            raise RecipeError(f'{self.path}: no inputs (e.g. inputs = ["episodes/*.mp4"])')
        return self.globs(None, "inputs")

    def section(self, name: str) -> dict[str, Any]:
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise RecipeError(f"{self.where(None, name)}: expected a [{name}] table")
        return value


TOP_LEVEL = ("inputs", "work", "extract", "dataset", "train", "render")


def load(path: Path) -> Recipe:
    if not path.exists():
        raise RecipeError(f"{path}: no such recipe")
    try:  # a regular file of a sane size: /dev/zero as a recipe would fill the memory
        text = read_regular(path, "recipes", limit=MAX_RECIPE_BYTES).decode("utf-8")
    except UserError as e:
        raise RecipeError(str(e)) from None
    except UnicodeDecodeError as e:
        raise RecipeError(f"{path}: cannot read the recipe ({e})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path}: not valid TOML: {e}") from None
    recipe = Recipe(path, text, data)
    for key in data:
        if key not in TOP_LEVEL:
            known = ", ".join(TOP_LEVEL)
            raise RecipeError(f"{recipe.where(None, key)}: unknown key (known: {known})")
    return recipe
