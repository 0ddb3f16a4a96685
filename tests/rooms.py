"""The rooms of the code and the imports between them, read from the source: the picture in
ARCHITECTURE.md is this, and ``python -m tests.rooms`` prints it to paste there."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "flows", "responses", "storage")
# Drawn top to bottom: who starts things first, the pure engine last.
ORDER = ("bot.cli", "bot.launch", "bot.channels", "bot.ops", "bot.core", "responses", "storage", "flows")


def room(module: str) -> str | None:
    """The room a module stands in: a package, a part of bot, or one channel."""
    parts = module.split(".")
    if parts[0] in ("flows", "responses", "storage"):
        return parts[0]
    if parts[0] != "bot" or len(parts) < 2:
        return None
    if parts[1] == "channels" and len(parts) > 2:
        return f"bot.channels.{parts[2]}"
    return f"bot.{parts[1]}" if parts[1] in ("cli", "launch", "ops", "core") else None


def _imported(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def edges() -> list[tuple[str, str]]:
    """Every (room, room it imports), in drawing order."""
    found: set[tuple[str, str]] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            source = room(module)
            if source is None:
                continue
            for name in _imported(ast.parse(path.read_text(encoding="utf-8"))):
                target = room(name)
                if target is not None and target != source:
                    found.add((source, target))

    def rank(name: str) -> tuple[int, str]:
        return next(i for i, prefix in enumerate(ORDER) if name.startswith(prefix)), name

    return sorted(found, key=lambda edge: (rank(edge[0]), rank(edge[1])))


def mermaid() -> str:
    lines = ["```mermaid", "flowchart TD", *(f"    {a} --> {b}" for a, b in edges()), "```"]
    return "\n".join(lines)


if __name__ == "__main__":
    print(mermaid())
