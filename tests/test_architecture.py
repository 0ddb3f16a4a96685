"""ARCHITECTURE.md stays true: its picture of the rooms is the code's imports, every module,
name and file it points a newcomer to exists, and the import rules refuse a channel that
imports another."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.rooms import PACKAGES, ROOT, mermaid

PAGE = ROOT / "ARCHITECTURE.md"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_the_picture_of_the_rooms_is_what_the_code_imports() -> None:
    drawn = re.search(r"<!-- rooms:start -->\n(.*?)\n<!-- rooms:end -->", PAGE.read_text(encoding="utf-8"), re.S)
    assert drawn is not None, "ARCHITECTURE.md has lost its rooms picture"
    assert drawn.group(1) == mermaid(), "imports between rooms changed: paste `python -m tests.rooms` there"


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


def test_every_module_name_and_file_the_page_names_exists() -> None:
    named = re.findall(r"`([^`\s]+)`", PAGE.read_text(encoding="utf-8"))
    dotted = [n for n in named if re.fullmatch(r"(bot|flows|responses|storage)(\.\w+)+", n)]
    paths = [n.split("<")[0] for n in named if "/" in n and n.split("/")[0] in PACKAGES]
    assert dotted and paths
    assert [n for n in dotted if not _resolves(n)] == []
    assert [p for p in paths if not (ROOT / p).exists()] == []


def test_a_channel_that_imports_another_channel_is_refused(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    checked = [str(LINT_IMPORTS), "--no-logo", "--no-cache"]
    kept = subprocess.run(checked, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120)
    assert kept.returncode == 0, kept.stdout
    with (tmp_path / "bot" / "channels" / "web" / "run.py").open("a", encoding="utf-8") as source:
        source.write("\nfrom bot.channels.telegram import serving  # noqa: E402\n")
    broken = subprocess.run(checked, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120)
    assert broken.returncode == 1
    assert "bot.channels.web.run -> bot.channels.telegram.serving" in broken.stdout
