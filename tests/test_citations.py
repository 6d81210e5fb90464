"""Every "RFC NNNN §X.Y" the catalogue, annotations, reply table, lessons and challenges cite
exists in that RFC's table of contents (tests/data/rfc-toc), and docs/citations.md, which
lists each claim beside its section's title, is current (tools/citations.py writes it)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("citations_tool", ROOT / "tools" / "citations.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_every_cited_section_exists() -> None:
    tool = load_tool()
    citations = tool.collect()
    assert len(citations) > 100, "the scanner found too few citations: is it broken?"
    problems = tool.problems(citations)
    assert not problems, "sections cited that their RFC does not have:\n" + "\n".join(problems)


def test_the_scanner_reads_lists_constants_and_wrapped_lines(tmp_path: Path) -> None:
    tool = load_tool()
    for package in ("server", "smtp", "explain"):
        (tmp_path / "tutor" / package).mkdir(parents=True)
    (tmp_path / "lessons").mkdir()
    (tmp_path / "challenges").mkdir()
    (tmp_path / "tutor" / "smtp" / "codes.py").write_text('X = "RFC 5321 §4.2.3, §9.9.9"\n')
    (tmp_path / "tutor" / "explain" / "annotate").mkdir()
    (tmp_path / "tutor" / "explain" / "annotate" / "stage.py").write_text(
        'R = "RFC 5321"\nY = (\n    f"{R} §4.1.4"\n    "and RFC "\n    "4954 §6"\n)\n'
    )
    (tmp_path / "tutor" / "server" / "replies.py").write_text("")
    (tmp_path / "lessons" / "01.toml").write_text('text = """\nsee RFC 1234\n§5 here"""\n')
    found = {(c.path, c.line, c.rfc, c.section) for c in tool.collect(tmp_path)}
    assert found == {
        ("tutor/smtp/codes.py", 1, "5321", "4.2.3"),
        ("tutor/smtp/codes.py", 1, "5321", "9.9.9"),
        ("tutor/explain/annotate/stage.py", 3, "5321", "4.1.4"),
        ("tutor/explain/annotate/stage.py", 5, "4954", "6"),
        ("lessons/01.toml", 3, "1234", "5"),
    }
    problems = tool.problems(tool.collect(tmp_path))
    assert problems == [
        "lessons/01.toml:3: RFC 1234 §5: no table of contents",
        "tutor/smtp/codes.py:1: RFC 5321 has no §9.9.9",
    ]


def test_docs_citations_is_current() -> None:
    tool = load_tool()
    current = (ROOT / "docs" / "citations.md").read_text(encoding="utf-8")
    assert current == tool.render(tool.collect()), "run: python tools/citations.py"
