"""The layering rule of DESIGN §3, checked by reading every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tutor"

# library -> the only places allowed to import it
ALLOWED = {
    "rich": ("ui/", "cli.py", "env.py"),
    "markdown_it": ("ui/",),
    "prompt_toolkit": ("ui/",),
    "typer": ("cli.py",),
    "click": ("cli.py",),
    "aiosmtpd": ("server/",),
}
STDLIB_ONLY = (
    "wire.py",
    "codes.py",
    "events.py",
    "textsafe.py",
    "envelope.py",
    "headers.py",
    "dnsdata.py",
    "session_state.py",
    "dashboard_model.py",
    "annotations.py",
    "transcript.py",
    "explain.py",
    "authcodec.py",
    "wiredump.py",
)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def modules() -> list[tuple[str, Path]]:
    return [(p.relative_to(PACKAGE).as_posix(), p) for p in sorted(PACKAGE.rglob("*.py"))]


def test_ui_libraries_stay_in_their_layers() -> None:
    offenders = []
    for name, path in modules():
        for library in imported_modules(path) & set(ALLOWED):
            if not name.startswith(ALLOWED[library]):
                offenders.append(f"{name} imports {library}")
    assert offenders == []


def test_core_modules_use_only_the_standard_library() -> None:
    import sys

    for name in STDLIB_ONLY:
        third_party = {
            m
            for m in imported_modules(PACKAGE / name)
            if m not in sys.stdlib_module_names and m not in {"tutor", "__future__"}
        }
        assert third_party == set(), f"{name} imports {third_party}"


def imported_tutor_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n for n in names if n.startswith("tutor.")}


def test_the_core_never_imports_the_ui() -> None:
    for name, path in modules():
        if name.startswith("ui/") or name in ("cli.py", "env.py", "__main__.py"):
            continue
        for module in imported_tutor_modules(path):
            top = ".".join(module.split(".")[:2])
            assert top not in ("tutor.ui", "tutor.cli"), f"{name} imports {module}"


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
    import sys

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
