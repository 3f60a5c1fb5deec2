"""Extract and run the Python code blocks of README.md and docs/*.md (issue 20: the docs stay true).

A block is a fenced ```python (or ```py) block. The blocks of one page run in order in one namespace,
as a reader pasting them one after the other would run them, with the working directory set to a
private temporary directory and examples/ importable (pages import `reference` etc. from it).

An HTML comment on the line right before a block's fence says how it runs (docs/testing.md):
  <!-- guest: REASON -->     needs the Linux 7.x guest (io_uring_bpf_ops, filters, bcc): the guest tier
                             (tests/guest/test_docs_guest.py) runs it, with the page's other blocks
  <!-- fragment: REASON -->  part of a program, not meant to run alone: not run (keep these rare)
Any other block runs on the host (tests/unit/test_docs_blocks.py).

Each block is compiled from a file whose line numbers are the page's: a traceback's line is the
Markdown line. The file holds every runnable block of the page, so `inspect` finds the source of the
programs and structs a block defines (the compiler reads it), as it would in a reader's script.
"""
from __future__ import annotations

import os
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^```(python|py)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
_MARKER = re.compile(r"<!--\s*(guest|fragment)\s*(?::\s*(.*?))?\s*-->\s*$")
KINDS = ("host", "guest", "fragment")


@dataclass(frozen=True)
class Block:
    """One fenced Python block: its page, the Markdown line of its first code line, its code."""
    page: Path
    line: int
    code: str
    kind: str      # "host", "guest" or "fragment"
    reason: str    # the marker's reason ("" for host blocks)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    """Every Python block of a page, in order, with the kind its marker (if any) gives it."""
    text = page.read_text()
    found = []
    for m in _FENCE.finditer(text):
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _MARKER.search(before)
        kind, reason = (marker.group(1), marker.group(2) or "") if marker else ("host", "")
        line = text.count("\n", 0, m.start(2)) + 1
        found.append(Block(page, line, m.group(2), kind, reason))
    return found


def all_blocks() -> list[Block]:
    return [b for page in PAGES for b in blocks_of(page)]


def pages_with(kind: str) -> list[Path]:
    """The pages that have at least one block of this kind."""
    return [p for p in PAGES if any(b.kind == kind for b in blocks_of(p))]


def _padded(block: Block) -> str:
    """The block's code at its Markdown line numbers (blank lines before it)."""
    return "\n" * (block.line - 1) + block.code


def _page_source(blocks: list[Block]) -> str:
    """Every block at its line, blank lines between: one Python file with the page's line numbers."""
    lines: list[str] = []
    for b in blocks:
        code = b.code.splitlines()
        lines.extend([""] * (b.line - 1 - len(lines)))
        lines.extend(code)
    return "\n".join(lines) + "\n"


# A program shown on a page must compile even where the page only defines it (the README's, the
# language page's): the target each kind of program is written for.
_TARGETS = {"iouring": "op_bpf", "loop_step": "bpf_ops"}


def compile_defined(namespace: dict, module_name: str) -> int:
    """Compile every program and filter the page defined (not those it imported); returns how many."""
    from pybpfuring.filters import IouringFilter
    from pybpfuring.lang import BpfFunction
    count = 0
    for value in list(namespace.values()):
        if isinstance(value, BpfFunction) and value.kind in _TARGETS and value.__module__ == module_name:
            value.compile(_TARGETS[value.kind])
        elif isinstance(value, IouringFilter) and value.fn.__module__ == module_name:
            value.compiled  # noqa: B018  (compiles on first use)
        else:
            continue
        count += 1
    return count


def run_page(page: Path, kinds: tuple[str, ...], workdir: Path, *, until: str | None = None) -> int:
    """Run the page's blocks of these kinds in order in one namespace; returns how many ran.

    `until`: stop after the last block of this kind (the guest runs a page's guest blocks and the
    blocks before them, which they may need; those after them already ran on the host, and every
    block costs minutes under the guest's TCG). The working directory is `workdir/cwd` while they
    run. A failing block's exception carries a note naming the page and line."""
    blocks = [b for b in blocks_of(page) if b.kind in kinds]
    if until is not None:
        last = max((i for i, b in enumerate(blocks) if b.kind == until), default=len(blocks) - 1)
        blocks = blocks[:last + 1]
    src_dir, cwd = workdir / "src", workdir / "cwd"
    src_dir.mkdir()
    cwd.mkdir()
    source = src_dir / f"{page.stem.lower()}_md.py"
    source.write_text(_page_source(blocks))
    name = f"docs_{page.stem.lower()}_md"
    module = types.ModuleType(name)
    module.__file__ = str(source)
    sys.modules[name] = module
    examples = str(ROOT / "examples")
    sys.path.insert(0, examples)
    old_cwd = os.getcwd()
    os.chdir(cwd)
    try:
        for b in blocks:
            try:
                exec(compile(_padded(b), str(source), "exec"), module.__dict__)
            except BaseException as exc:
                exc.add_note(f"in the Python block at {b.where} (run with the page's earlier blocks)")
                raise
        compile_defined(module.__dict__, name)
    finally:
        os.chdir(old_cwd)
        sys.path.remove(examples)
        del sys.modules[name]
    return len(blocks)
