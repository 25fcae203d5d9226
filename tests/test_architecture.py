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
        ("hardware", ("edgecnn.report", "edgecnn.cli", "edgecnn.compress")),
        ("kernels", ("edgecnn.report", "edgecnn.cli", "edgecnn.compress", "edgecnn.analysis")),
        ("compress", ("edgecnn.report", "edgecnn.cli")),
        ("runtime", ("edgecnn.report", "edgecnn.cli")),
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
