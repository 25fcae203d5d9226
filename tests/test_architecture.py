"""The house rules of docs/architecture.md: imports point one way."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "edgecnn"


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path, module: str | None = None) -> set[str]:
    """Every edgecnn module ``path`` imports, anywhere in the file (function-local and
    TYPE_CHECKING imports included), relative imports resolved against ``module`` (by default
    the file's own dotted name)."""
    tree = ast.parse(path.read_text())
    package = (module or _module_name(path)).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n == "edgecnn" or n.startswith("edgecnn.")}


def _package_files(pkg: str) -> list[Path]:
    return sorted((SRC / pkg).rglob("*.py"))


@pytest.mark.parametrize(
    "pkg,forbidden",
    [
        ("graph", ("edgecnn.analysis", "edgecnn.hardware", "edgecnn.compress", "edgecnn.report")),
        # names, checkpoints and factories are resolved in models/, which imports graph/
        ("graph", ("edgecnn.models", "edgecnn.runtime", "edgecnn.studies", "edgecnn.cli")),
        # models/ needs only errors, io and the graph frontends (for load_graph)
        (
            "models",
            (
                "edgecnn.analysis",
                "edgecnn.hardware",
                "edgecnn.compress",
                "edgecnn.runtime",
                "edgecnn.report",
                "edgecnn.cli",
                "edgecnn.studies",
            ),
        ),
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
        if _matches(name, forbidden)
    ]
    assert not offenders, offenders


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_import_scanner_sees_local_relative_and_aliased_imports(tmp_path):
    """The rules above only hold if the scanner sees every form an import can take."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def f():\n"
        "    from edgecnn.models.zoo import build_zoo_model\n"
        "    import edgecnn.runtime.export as e\n"
        "    from ..studies import zoo\n"
        "    from . import ir\n"
    )
    found = _imports(probe, module="edgecnn.graph.probe")
    assert "edgecnn.models.zoo" in found
    assert "edgecnn.runtime.export" in found
    assert "edgecnn.studies.zoo" in found and "edgecnn.graph.ir" in found
    assert _matches("edgecnn.models.zoo", ("edgecnn.models",))
    assert not _matches("edgecnn.modelsx", ("edgecnn.models",))


def test_in_models_only_the_resolver_imports_graph():
    """The zoo, edge models and checkpoints stand alone; ``models/resolve.py`` (``load_graph``)
    is the one place that hands a module to the graph frontends."""
    offenders = [
        f"{path.relative_to(SRC)} imports {name}"
        for path in _package_files("models")
        if path.name != "resolve.py"
        for name in _imports(path)
        if _matches(name, ("edgecnn.graph",))
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
