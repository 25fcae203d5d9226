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
    """``try: from edgecnn.x import y / except ImportError`` (or ``Exception``) hides a broken
    install or a failing analysis behind a fallback: forbidden."""
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
                    isinstance(n, ast.Name)
                    and n.id in ("ImportError", "ModuleNotFoundError", "Exception")
                    for n in ast.walk(h.type)
                )
                for h in node.handlers
            )
            if own and catches:
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not offenders, offenders


def _package_import_graph(pkg: str) -> dict[str, set[str]]:
    """``{module: modules of pkg it imports}`` over every import statement, function-local ones
    included (``from edgecnn.pkg import mod``, ``from edgecnn.pkg.mod import x``,
    ``import edgecnn.pkg.mod``, relative imports)."""
    root = SRC / pkg
    mods = {p.stem for p in root.glob("*.py") if p.stem != "__init__"}
    base = f"edgecnn.{pkg}"
    graph: dict[str, set[str]] = {}
    for path in sorted(root.glob("*.py")):
        me = path.stem
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    target = ".".join(filter(None, [base, node.module or ""]))
                else:
                    target = node.module or ""
                if target == base:
                    deps.update(a.name for a in node.names if a.name in mods)
                elif target.startswith(base + "."):
                    deps.add(target[len(base) + 1 :].split(".")[0])
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith(base + "."):
                        deps.add(a.name[len(base) + 1 :].split(".")[0])
        graph[me] = {d for d in deps if d != me and (d in mods or d == "__init__")}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                return stack[stack.index(d) :] + [d]
            if d not in state and (c := visit(d)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_find_cycle_detects_lazy_import_cycles():
    assert _find_cycle({"recipe": {"steps"}, "steps": {"recipe"}}) == ["recipe", "steps", "recipe"]
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_compress_import_graph_is_acyclic():
    graph = _package_import_graph("compress")
    assert {"recipe", "steps", "quantize"} <= set(graph) and "steps" in graph["recipe"]
    assert _find_cycle(graph) is None, _find_cycle(graph)
