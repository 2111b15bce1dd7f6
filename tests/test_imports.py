"""How synth's modules import each other: no import loops, and a light start for `import synth` and
`synth --help` (torch is imported only when a command or an API name needs it)."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "synth"


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _target(name: str, modules: dict) -> str | None:
    """The synth module an imported dotted name lives in (`synth.run.run_evolve` -> synth.run)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _is_type_checking(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:`: imports there never run."""
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING")


def _imports(module: str, path: Path, modules: dict) -> tuple[set, set]:
    """(modules imported at import time, modules imported inside functions) by `module`."""
    top, inside = set(), set()

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = [f"{child.module}.{alias.name}" for alias in child.names]
            for name in names:
                target = _target(name, modules) if name.split(".")[0] == "synth" else None
                if target and target != module:
                    (inside if in_function else top).add(target)
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(path.read_text()), False)
    return top, inside


def import_graph(with_function_imports: bool) -> dict[str, set]:
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        top, inside = _imports(module, path, modules)
        graph[module] = top | inside if with_function_imports else top
    return graph


def loops(graph: dict[str, set]) -> list[set]:
    """The strongly connected components of more than one module (Tarjan): each is an import loop."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def connect(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_the_graph_sees_top_level_and_function_level_imports():
    """Edges read off the source by hand: run.py imports evolve at its top; stats imports the runtime (and
    torch) only inside a function; programs imports grammar only for type checking."""
    top, every = import_graph(False), import_graph(True)
    assert "synth.evolve" in top["synth.run"]
    assert "synth.runtime" not in top["synth.stats"] and "synth.runtime" in every["synth.stats"]  # torch only when computing
    assert "synth.grammar" not in every["synth.programs"]


def test_loop_finder_finds_a_loop_and_no_false_one():
    assert loops({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert loops({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) == []


def test_no_import_loop_at_import_time():
    assert loops(import_graph(with_function_imports=False)) == []


def test_imports_inside_functions_close_no_loop():
    assert loops(import_graph(with_function_imports=True)) == []


def _modules_loaded_by(code: str) -> set[str]:
    """The heavy libraries in sys.modules after running `code` in a fresh interpreter."""
    probe = code + "\nimport sys\nprint(*(m for m in ('torch', 'sympy', 'deap', 'scipy', 'timm') if m in sys.modules), file=sys.stderr)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return set(done.stderr.split())


def test_import_synth_and_synth_help_do_not_import_torch():
    assert _modules_loaded_by("import synth; synth.__all__; synth.EvolveConfig()") == set()
    help_code = ("from synth.cli import main\n"
                 "for argv in (['--help'], ['evolve', '--help'], ['search', '--help'], ['zoo', '--help'], ['bench', 'build', '--help']):\n"
                 "    try:\n        main(argv)\n    except SystemExit:\n        pass")
    assert "torch" not in _modules_loaded_by(help_code)


def test_help_synth_lists_the_api():
    """What `python -c "import synth; help(synth)"` prints: the API's classes and functions by name."""
    done = subprocess.run([sys.executable, "-c", "import pydoc, synth; print(pydoc.render_doc(synth, renderer=pydoc.plaintext))"],
                          capture_output=True, text=True, timeout=300, check=True)
    sections = done.stdout.split("\nCLASSES\n")[1]
    for name in ("class Evolution", "class Proxy", "class RunRecord", "class SearchResult", "class ConfigError",
                 "load_grammar(", "load_space(", "load_benchmark("):
        assert name in sections, name
    assert "search(proxy, space, out=" in done.stdout and "zoo.score(" in done.stdout  # the docstring's table
