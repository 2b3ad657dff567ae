"""The house rule (CONTRIBUTING.md): imports flow one way and never in a circle.

    app.py, wsi_llava_cli.py -> ui/ -> training/, evaluation/, curation/ (peers) -> modeling/, wsi_bench/
    -> llm/, common/

Every import statement of the project's code is read (also those inside functions), so a lazy import
cannot dodge the rule. Tests and benchmarks may import anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ui", "training", "evaluation", "curation", "modeling", "wsi_bench", "llm", "common")
ROOTS = ("app", "wsi_llava_cli")                      # composition roots: may import everything
ALLOWED: dict[str, set[str]] = {
    "ui": {"training", "evaluation", "curation", "modeling", "wsi_bench", "llm", "common"},
    "training": {"modeling", "wsi_bench", "llm", "common"},
    "evaluation": {"modeling", "wsi_bench", "llm", "common"},
    "curation": {"modeling", "wsi_bench", "llm", "common"},
    "modeling": {"llm", "common"},
    "wsi_bench": {"common"},
    "llm": {"common"},
    "common": set(),
}


def project_files() -> list[Path]:
    files = [ROOT / f"{name}.py" for name in ROOTS]
    for package in PACKAGES:
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every project module `path` imports (`from pkg import module` counts as importing pkg.module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in known)
    return {name for name in found if name.split(".")[0] in PACKAGES + ROOTS}


def import_graph() -> dict[str, set[str]]:
    files = project_files()
    known = {module_name(path) for path in files}
    return {module_name(path): imported_modules(path, known) for path in files}


def test_imports_flow_one_way():
    wrong = []
    for module, imports in import_graph().items():
        room = module.split(".")[0]
        if room in ROOTS:
            continue
        for target in sorted(imports):
            other = target.split(".")[0]
            if other != room and other not in ALLOWED[room]:
                wrong.append(f"{module} imports {target} ({room} may import only {sorted(ALLOWED[room])})")
    assert not wrong, "imports against the house rule (CONTRIBUTING.md):\n" + "\n".join(wrong)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; the components of more than one module are the import circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_no_import_circles():
    graph = {module: {t for t in imports if t != module} for module, imports in import_graph().items()}
    assert strongly_connected(graph) == []


def test_the_circle_finder_finds_circles():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_space_card_folder_is_not_a_package():
    assert not (ROOT / "spaces" / "__init__.py").exists()     # `import spaces` must find Hugging Face's package


def test_every_package_says_what_it_is_for():
    for package in PACKAGES:
        for init in (ROOT / package).rglob("__init__.py"):
            doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
            assert len(doc) > 40, f"{init.relative_to(ROOT)}: say what the room is for and what it may import"


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 100


def test_modules_and_functions_stay_small():
    too_big = []
    for path in project_files():
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_big.append(f"{where}: {len(text.splitlines())} lines (split it by responsibility)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_big.append(f"{where}:{node.lineno} {node.name}: {length} lines")
    assert not too_big, "\n".join(too_big)


def _files_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme[readme.index("## Files"):]


def test_the_readme_file_list_names_every_module_and_nothing_gone():
    """README's Files section (or, for a package with its own README.md, that one) names every module and
    benchmark; every `*.py` it names exists. A new or moved module without its line fails here."""
    import re

    section = _files_section()
    unlisted = []
    for path in project_files()[len(ROOTS):] + sorted((ROOT / "benchmarks").glob("*.py")):
        if path.name == "__init__.py":
            continue
        local = next((p / "README.md" for p in path.parents if (p / "README.md").is_file() and p != ROOT), None)
        if path.name not in section + (local.read_text(encoding="utf-8") if local else ""):
            unlisted.append(str(path.relative_to(ROOT)))
    assert not unlisted, f"not in README.md's Files section: {unlisted}"
    existing = {path.name for path in ROOT.rglob("*.py") if ".venv" not in path.parts}
    gone = sorted(set(re.findall(r"\b([a-z_0-9]+\.py)\b", section)) - existing)
    assert not gone, f"README.md's Files section names modules that do not exist: {gone}"
