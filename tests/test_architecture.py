"""The house rules of docs/architecture.md: imports point one way."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "edgecnn"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n.startswith("edgecnn")}


def _package_files(pkg: str) -> list[Path]:
    return sorted((SRC / pkg).rglob("*.py"))


@pytest.mark.parametrize(
    "pkg,forbidden",
    [
        ("graph", ("edgecnn.analysis", "edgecnn.hardware", "edgecnn.compress", "edgecnn.report")),
        ("analysis", ("edgecnn.graph.from_torch", "edgecnn.graph.from_onnx", "edgecnn.hardware")),
        ("analysis", ("edgecnn.report", "edgecnn.cli", "edgecnn.compress", "edgecnn.runtime")),
        ("hardware", ("edgecnn.report", "edgecnn.cli", "edgecnn.compress", "edgecnn.studies")),
        ("kernels", ("edgecnn.report", "edgecnn.cli", "edgecnn.compress", "edgecnn.analysis")),
        ("compress", ("edgecnn.report", "edgecnn.cli", "edgecnn.studies")),
        ("runtime", ("edgecnn.report", "edgecnn.cli", "edgecnn.compress", "edgecnn.studies")),
        ("data", ("edgecnn.report", "edgecnn.cli", "edgecnn.analysis", "edgecnn.hardware")),
    ],
)
def test_imports_point_down(pkg, forbidden):
    offenders = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in _package_files(pkg)
        for name in _imports(path)
        if name.startswith(forbidden)
    ]
    assert not offenders, offenders


def test_only_the_cli_imports_the_cli():
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if "cli" not in path.relative_to(SRC).parts[:1]
        and path.name != "__main__.py"
        and any(n.startswith("edgecnn.cli") for n in _imports(path))
    ]
    assert not offenders, offenders


def test_only_studies_and_the_cli_import_the_report():
    offenders = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in SRC.rglob("*.py")
        if path.relative_to(SRC).parts[0] not in ("report", "studies", "cli")
        for name in _imports(path)
        if name.startswith("edgecnn.report")
    ]
    assert not offenders, offenders


def test_the_schema_imports_nothing_of_the_package():
    assert _imports(SRC / "schema.py") == set()


def test_no_import_error_fallbacks_to_the_package():
    """``try: from edgecnn.x import y / except ImportError`` hides a broken install: forbidden."""
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Try):
                continue
            own = any(
                isinstance(n, ast.ImportFrom) and (n.module or "").startswith("edgecnn")
                for stmt in node.body
                for n in ast.walk(stmt)
            )
            catches = any(
                h.type is not None
                and any(
                    isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError")
                    for n in ast.walk(h.type)
                )
                for h in node.handlers
            )
            if own and catches:
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not offenders, offenders
