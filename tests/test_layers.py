"""The layering of docs/architecture.md holds: imports run one way —
frontend -> runtime -> passes -> dialect — with no circles among modules.

Read from the source with ``ast`` (imports inside functions count too), over
the folders pyproject.toml maps into the ``ferrule`` package.
"""

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = (("ferrule.dialect", 0), ("ferrule.passes", 1), ("ferrule.runtime", 2))


def _modules():
    """Module name -> source file, following pyproject's package-dir."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mods = {}
    for pkg in cfg["packages"]:
        folder = ROOT / cfg["package-dir"].get(pkg, "")
        if pkg not in cfg["package-dir"]:   # a subpackage mapped through its parent
            parent, _, leaf = pkg.rpartition(".")
            folder = ROOT / cfg["package-dir"][parent] / leaf
        for f in folder.glob("*.py"):
            mods[pkg if f.name == "__init__.py" else f"{pkg}.{f.stem}"] = f
    return mods


def _layer(module: str) -> int:
    for prefix, level in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return level
    return 3   # the frontend


def _imports(mods):
    """Module -> the ferrule modules it imports (its own ancestors excluded)."""
    edges = {}
    for name, path in mods.items():
        pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = pkg.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):
                    found.add(t)
        edges[name] = found
    return edges


def test_no_module_imports_a_higher_layer():
    edges = _imports(_modules())
    upward = sorted(f"{a} -> {b}" for a, bs in edges.items() for b in bs if _layer(b) > _layer(a))
    assert not upward, "imports against the layers (frontend > runtime > passes > dialect):\n" + \
        "\n".join(upward)


def test_no_import_circles():
    edges = _imports(_modules())
    state, stack, circles = {}, [], []

    def visit(v):
        state[v] = "open"
        stack.append(v)
        for w in sorted(edges[v]):
            if state.get(w) == "open":
                circles.append(" -> ".join(stack[stack.index(w):] + [w]))
            elif w not in state:
                visit(w)
        stack.pop()
        state[v] = "done"

    for v in sorted(edges):
        if v not in state:
            visit(v)
    assert not circles, "import circles:\n" + "\n".join(circles)
