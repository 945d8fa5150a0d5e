"""The house: the science imports nothing from the run machinery or the reporting, and no module imports itself
back through others, at module level or inside a function."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "initlab"
MACHINERY = ("initlab.run", "initlab.report")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every initlab module a file imports, wherever in the file (function bodies too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("initlab")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("initlab"):
            found |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports(p) if m in modules and m != name} for name, p in modules.items()}


def test_the_science_imports_nothing_from_the_machinery() -> None:
    science = {m: deps for m, deps in graph().items() if not m.startswith(MACHINERY)}
    assert {"initlab.module", "initlab.theory", "initlab.data.datamodule", "initlab.activations"} <= set(science)
    leaks = {m: sorted(d for d in deps if d.startswith(MACHINERY)) for m, deps in science.items()}
    assert not {m: d for m, d in leaks.items() if d}


def test_there_is_no_import_cycle() -> None:
    edges = graph()
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in edges[m]:
            assert state.get(d) != 1, " -> ".join([*path, m, d])
            if d not in state:
                visit(d, [*path, m])
        state[m] = 2

    for m in edges:
        if m not in state:
            visit(m, [])


def test_the_run_machinery_imports_no_reporting() -> None:
    """Reporting reads what runs wrote; a run never needs it (a broken sweep gets its writer from the callback)."""
    machinery = {m: deps for m, deps in graph().items() if m.startswith("initlab.run")}
    assert {"initlab.run.cli", "initlab.run.job"} <= set(machinery)
    assert not {m: sorted(d for d in deps if d.startswith("initlab.report")) for m, deps in machinery.items()
                if any(d.startswith("initlab.report") for d in deps)}  # fmt: skip
