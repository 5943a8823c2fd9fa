"""The ```python examples of a Markdown page, with the ones marked not to run.

A block preceded (on the line before its fence) by ``<!-- not run: REASON -->`` needs what a test
machine lacks (a GPU, the network, a release behind a registration): it is compiled, so that it
stays valid Python, but not run, and its reason is reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"(?:<!--\s*not run:\s*(?P<reason>.*?)\s*-->\n)?```python\n(?P<code>.*?)```", re.DOTALL)
_MARKER = re.compile(r"<!--\s*not run:")


@dataclass(frozen=True)
class Example:
    """One ```python block: its code, the line its fence opens on, and why it is not run (None: it runs)."""

    page: Path
    line: int
    code: str
    not_run: str | None

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def python_examples(page: Path) -> list[Example]:
    """Every ```python block of ``page``, in order."""
    text = page.read_text()
    return [Example(page, text.count("\n", 0, m.start("code")), m["code"], m["reason"])
            for m in _BLOCK.finditer(text)]


def stray_markers(page: Path) -> int:
    """Markers that are not right before a ```python fence (they would skip nothing)."""
    text = page.read_text()
    return len(_MARKER.findall(text)) - sum(e.not_run is not None for e in python_examples(page))


def run_examples(page: Path) -> tuple[int, list[str]]:
    """Run the page's examples in order, each in a namespace of its own; compile the ones not run.

    Returns how many ran and, for each one not run, ``"page:line (reason)"``.
    """
    ran, not_run = 0, []
    for example in python_examples(page):
        code = compile(example.code, example.name, "exec")  # a not-run example still has to be valid Python
        if example.not_run is not None:
            not_run.append(f"{example.name} ({example.not_run})")
            continue
        exec(code, {"__name__": "__docs_example__"})  # noqa: S102 (the page's own examples, run as a reader runs them)
        ran += 1
    return ran, not_run
