"""Project rules that no linter checks: the docs against the code, and what the import
contracts cannot express."""

from __future__ import annotations

import ast
import functools
import sys
import tomllib
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent.parent / "tutor"

# Which module may import which library, and that the core never imports the user interface,
# are import-linter contracts ([tool.importlinter] in pyproject.toml, `lint-imports` in
# .ci/run). What a contract cannot say by itself is checked here.


@functools.cache
def _tree(path: Path) -> ast.Module:
    """A tutor module's syntax tree, parsed once for all the tests here (read only)."""
    return ast.parse(path.read_text(encoding="utf-8"))


def _contract(contract_id: str) -> dict[str, Any]:
    with (PACKAGE.parent / "pyproject.toml").open("rb") as file:
        contracts = tomllib.load(file)["tool"]["importlinter"]["contracts"]
    [contract] = [c for c in contracts if c.get("id") == contract_id]
    return contract


def test_the_stdlib_only_contract_forbids_every_third_party_package() -> None:
    """A forbidden contract lists packages; the rule is "nothing outside the standard library",
    so every third-party package tutor imports anywhere must be on the list."""
    third_party: set[str] = set()
    for path in PACKAGE.rglob("*.py"):  # every import statement, anywhere in a file
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            third_party |= {name.split(".")[0] for name in names}
    third_party -= {"tutor", "__future__", *sys.stdlib_module_names}
    forbidden = set(_contract("stdlib-only")["forbidden_modules"])
    assert sorted(third_party - forbidden) == [], "add them to the stdlib-only contract"


def test_docs_list_every_reply_of_the_table() -> None:
    from tutor.server.replies import markdown_table

    doc = (PACKAGE.parent / "docs" / "server.md").read_text(encoding="utf-8")
    assert markdown_table() in doc, "regenerate the table in docs/server.md"


def test_the_lesson_format_doc_matches_the_loader() -> None:
    """docs/lessons.md names every step kind, step key, check and fact the loader knows."""
    import re

    from tutor.engine import loader
    from tutor.engine.checks import CHECK_KINDS
    from tutor.engine.model import STEP_KINDS
    from tutor.engine.questions import FACTS

    doc = (PACKAGE.parent / "docs" / "lessons.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z_]+)`", doc))
    source = (PACKAGE / "engine" / "loader.py").read_text()
    known_block = source[source.index("known = {") : source.index("}", source.index("known = {"))]
    step_keys = set(re.findall(r'"([a-z_]+)"', known_block))
    for names, what in (
        (STEP_KINDS, "step kind"),
        (CHECK_KINDS, "check"),
        (FACTS, "fact"),
        (step_keys, "step key"),
        (loader._PERSONA_KEYS, "persona key"),
    ):
        missing = sorted(set(names) - documented)
        assert missing == [], f"docs/lessons.md does not describe {what}(s): {missing}"


def test_the_robot_sees_only_the_screen() -> None:
    """tutor/robot knows the tutor only through the screen: no tutor module but its own,
    no lesson file, and no library but the standard one and the terminal emulator."""
    for path in sorted((PACKAGE / "robot").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.name}: relative import"
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                allowed = top in sys.stdlib_module_names or top in ("__future__", "pyte")
                assert allowed or name.startswith("tutor.robot"), f"{path.name} imports {name}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports_of(path: Path, modules: set[str]) -> set[str]:
    """The tutor modules one file imports, by any import statement anywhere in it
    (TYPE_CHECKING blocks and function-level imports included)."""
    found: set[str] = set()
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path.parent)
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            # `from pkg import sub` imports the submodule; `from pkg import name`, pkg itself
            names_only = any(sub not in modules for sub in submodules)
            targets = submodules + ([base] if names_only else [])
        else:
            continue
        found |= {target for target in targets if target in modules}
    return found


def test_no_import_cycles_in_tutor() -> None:
    files = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {name: _imports_of(path, set(files)) - {name} for name, path in files.items()}
    cycles: list[list[str]] = []

    def visit(name: str, trail: list[str]) -> None:
        for target in sorted(graph[name]):
            if target in trail:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in done:
                visit(target, [*trail, target])
        done.add(name)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_every_module_says_what_it_does() -> None:
    """docs/architecture.md lists packages only: the module docstrings are the module index."""
    silent = [
        str(path.relative_to(PACKAGE.parent))
        for path in sorted(PACKAGE.rglob("*.py"))
        if not ast.get_docstring(_tree(path))
    ]
    assert silent == []


def test_lines_are_split_at_cr_and_lf_only() -> None:
    """str.splitlines() also ends a line at VT, FF, FS-RS, NEL, U+2028 and U+2029, so a
    header holding `a\\u2028Injected: yes` looked like two fields. Text from
    the wire or a file is cut into lines by textsafe.wire_lines, which knows CR and LF only."""
    allowed = {PACKAGE / "smtp" / "textsafe.py"}  # wire_lines itself, on bytes
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in allowed
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.Attribute) and node.attr == "splitlines"
    ]
    assert found == [], "use tutor.smtp.textsafe.wire_lines"
