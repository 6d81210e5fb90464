"""Every "RFC NNNN §X.Y" the product cites, checked against the RFCs' tables of contents.

    python tools/citations.py          # rewrite docs/citations.md
    python tools/citations.py --check  # exit 1 on a section that does not exist

Sources: tutor/smtp/codes.py, tutor/explain/annotate/*.py, tutor/server/replies.py (their
string literals, adjacent literals joined and `{R5321}`-style module constants filled in),
lessons/*.toml and challenges/*.toml (the text as written, line breaks as spaces).
"RFC 5321 §4.1.1.1, §4.1.4" cites two sections of RFC 5321. The tables of contents are
in tests/data/rfc-toc/rfcNNNN.txt, one "section title" per line (README there).
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOC_DIR = ROOT / "tests" / "data" / "rfc-toc"
DOC = ROOT / "docs" / "citations.md"
PYTHON_SOURCES = ("tutor/smtp/codes.py", "tutor/explain/annotate/*.py", "tutor/server/replies.py")
TOML_GLOBS = ("lessons/*.toml", "challenges/*.toml")

_SECTION = r"§\s*(\d+(?:\.\d+)*)"
CITATION = re.compile(rf"RFC\s*(\d{{3,4}})\s*{_SECTION}((?:\s*,\s*{_SECTION})*)")
_MORE = re.compile(_SECTION)


@dataclass(frozen=True)
class Citation:
    path: str
    line: int
    rfc: str
    section: str
    context: str  # the sentence around it, one line


def _constants(tree: ast.Module) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    names[target.id] = node.value.value
    return names


def _text_of(node: ast.AST, constants: dict[str, str]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue) and isinstance(value.value, ast.Name):
                parts.append(constants.get(value.value.id, "{…}"))
            else:
                parts.append("{…}")
        return "".join(parts)
    return None


def _python_texts(path: Path) -> list[tuple[int, int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    constants = _constants(tree)
    texts = []
    inside_fstrings = {
        id(part)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for part in node.values
    }
    strings = []
    for node in ast.walk(tree):
        if id(node) in inside_fstrings:
            continue
        if isinstance(node, ast.JoinedStr | ast.Constant):
            text = _text_of(node, constants)
            if text:
                strings.append((node.lineno, node.col_offset, node.end_lineno or node.lineno, text))
    strings.sort()
    for index, (first, _col, last, text) in enumerate(strings):
        if "§" not in text:
            continue
        if _is_bare_reference(text):  # a `rfc` field: the claim is the entry's prose before it
            prose = [t for _, _, _, t in strings[:index] if not _is_bare_reference(t)]
            text = f"{prose[-1] if prose else ''} ({text})"
        texts.append((first, last, text))
    return texts


def _is_bare_reference(text: str) -> bool:
    return text.startswith("RFC") and len(text) < 80 and ". " not in text


def _line_of(lines: list[str], first: int, last: int, section: str) -> int:
    """The source line (1-based) in [first, last] that holds §section, else first."""
    for number in range(first, last + 1):
        if re.search(rf"§\s*{re.escape(section)}(?![\d.]*\d)", lines[number - 1]):
            return number
    return first


_STOPS = (". ", ".\n", "\n\n", '"""', '"\n', '", ', '= "')


def _context(text: str, start: int, end: int) -> str:
    """The sentence around a citation, never crossing a TOML string's quotes."""
    lefts = [text.rfind(stop, 0, start) for stop in _STOPS]
    left = max([i + len(stop) for i, stop in zip(lefts, _STOPS, strict=True) if i >= 0] or [0])
    rights = [i for i in (text.find(stop, end) for stop in _STOPS) if i >= 0]
    right = min(rights) if rights else len(text)
    return " ".join(text[left : right + 1].strip('"').split())


def _cite(text: str) -> list[tuple[int, str, str, str]]:
    """(offset, rfc, section, context) for every section cited in text."""
    found = []
    for match in CITATION.finditer(text):
        context = _context(text, match.start(), match.end())
        found.append((match.start(2), match.group(1), match.group(2), context))
        for more in _MORE.finditer(match.group(3)):
            offset = match.start(3) + more.start(1)
            found.append((offset, match.group(1), more.group(1), context))
    return found


def _python_sources(root: Path) -> list[Path]:
    sources = []
    for pattern in PYTHON_SOURCES:
        found = sorted(root.glob(pattern))
        if not found:  # a source that moved must not drop its citations silently
            raise FileNotFoundError(root / pattern)
        sources += found
    return sources


def collect(root: Path = ROOT) -> list[Citation]:
    citations = []
    for path in _python_sources(root):
        name = path.relative_to(root).as_posix()
        lines = path.read_text(encoding="utf-8").splitlines()
        for first, last, text in _python_texts(path):
            whole = " ".join(text.split())
            for _offset, rfc, section, context in _cite(text):
                line = _line_of(lines, first, last, section)
                claim = whole if len(whole) <= 300 else context
                citations.append(Citation(name, line, rfc, section, claim))
    for pattern in TOML_GLOBS:
        for path in sorted(root.glob(pattern)):
            text = path.read_text(encoding="utf-8")
            name = path.relative_to(root).as_posix()
            for offset, rfc, section, context in _cite(text):
                line = text.count("\n", 0, offset) + 1
                citations.append(Citation(name, line, rfc, section, context))
    return sorted(citations, key=lambda c: (int(c.rfc), _key(c.section), c.path, c.line))


def _key(section: str) -> tuple[int, ...]:
    return tuple(int(part) for part in section.split("."))


def load_toc(rfc: str) -> dict[str, str] | None:
    path = TOC_DIR / f"rfc{rfc}.txt"
    if not path.exists():
        return None
    toc = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            number, _, title = line.partition(" ")
            toc[number] = title.strip()
    return toc


def problems(citations: list[Citation]) -> list[str]:
    found = []
    for c in citations:
        toc = load_toc(c.rfc)
        if toc is None:
            found.append(f"{c.path}:{c.line}: RFC {c.rfc} §{c.section}: no table of contents")
        elif c.section not in toc:
            found.append(f"{c.path}:{c.line}: RFC {c.rfc} has no §{c.section}")
    return found


def render(citations: list[Citation]) -> str:
    out = [
        "# Citations",
        "",
        "Every section of an RFC that the catalogue (tutor/smtp/codes.py), the annotations",
        "(tutor/explain/annotate/), the reply table (tutor/server/replies.py), the",
        "lessons and the challenges cite, beside the title that section has in the RFC's table of",
        "contents (tests/data/rfc-toc, where they come from is in its README). Generated by",
        "`python tools/citations.py`; tests/test_citations.py fails when a cited section does",
        "not exist or this file is not current.",
        "",
    ]
    current = None
    for c in citations:
        heading = f"RFC {c.rfc} §{c.section}"
        if heading != current:
            current = heading
            title = (load_toc(c.rfc) or {}).get(c.section, "(NOT IN THE TABLE OF CONTENTS)")
            out += ["", f"## {heading}: {title}", ""]
        claim = c.context.replace("|", "\\|")
        out.append(f"- {c.path}:{c.line}: {claim}")
    return "\n".join(out).replace("\n\n\n", "\n\n") + "\n"


def main(argv: list[str]) -> int:
    citations = collect()
    if "--check" in argv:
        for problem in problems(citations):
            print(problem)
        return 1 if problems(citations) else 0
    DOC.write_text(render(citations), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
