"""No import circles: the module-level imports between ``signals`` modules form no cycle (issue 7).

Imports inside functions (the lazy torch imports of the CLI handlers) and ``TYPE_CHECKING`` blocks are
not module level and are left out; importing ``a.b.c`` also runs ``a`` and ``a.b``'s ``__init__``.
"""

from __future__ import annotations

import ast

from signals.paths import REPO_ROOT


def module_graph() -> dict[str, set[str]]:
    files = {}
    for f in sorted((REPO_ROOT / "signals").rglob("*.py")):
        parts = list(f.relative_to(REPO_ROOT).with_suffix("").parts)
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f

    def ours(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    def imports(stmts: list[ast.stmt], mod: str, is_pkg: bool) -> set[str | None]:
        found: set[str | None] = set()
        for n in stmts:
            if isinstance(n, ast.If) and "TYPE_CHECKING" not in ast.unparse(n.test):
                found |= imports(n.body + n.orelse, mod, is_pkg)
            elif isinstance(n, ast.Try):
                found |= imports(n.body + n.orelse + n.finalbody + [s for h in n.handlers for s in h.body], mod, is_pkg)
            elif isinstance(n, ast.Import):
                found |= {ours(a.name) for a in n.names if a.name.startswith("signals")}
            elif isinstance(n, ast.ImportFrom):
                base = n.module or ""
                if n.level:
                    pkg = mod if is_pkg else mod.rpartition(".")[0]
                    for _ in range(n.level - 1):
                        pkg = pkg.rpartition(".")[0]
                    base = f"{pkg}.{base}".rstrip(".")
                if base.startswith("signals"):
                    found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in files else ours(base) for a in n.names}
        return found

    graph = {}
    for mod, f in files.items():
        direct = {m for m in imports(ast.parse(f.read_text()).body, mod, f.name == "__init__.py") if m}
        parents = {".".join(m.split(".")[:i]) for m in direct for i in range(1, m.count(".") + 1)}
        graph[mod] = (direct | parents) - {mod}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        state[m] = 2
        path.pop()
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_the_checker_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_level_import_cycle():
    graph = module_graph()
    assert "signals.speech.sr.config" in graph["signals.speech.sr.model"]  # the graph sees real imports
    cycle = find_cycle(graph)
    assert cycle is None, "module-level import circle: " + " -> ".join(cycle)
