"""The house's rules (DESIGN.md, "The house, next"), read from the source with ``ast``.

Every import, including those inside functions, is an edge.  Rooms are ranked and an import
may only go down (or stay in its room); modules import no cycle; argparse is known only to
``comparator/cli/``; ``architectures`` never imports ``comparator``; ``kernels`` imports
neither.
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# lowest first: a room may import the rooms before it, never those after it
RANKS = ["errors", "count", "cost", "measure", "run", "claims", "report", "cli", "front door"]


def modules(pkg):
    for path in sorted((ROOT / pkg).rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def imports(name, path):
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    is_pkg = path.name == "__init__.py"
    pkg = name.split(".") if is_pkg else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(pkg[: len(pkg) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)  # `from pkg import module`
    return out


def room(mod):
    parts = mod.split(".")
    if parts[0] != "comparator":
        return None
    if len(parts) == 1 or parts[1] == "__main__":
        return "front door"
    return parts[1]


def graph():
    mods = dict(modules("comparator"))
    return {m: {i for i in imports(m, p) if i in mods and i != m} for m, p in mods.items()}


def test_every_module_is_in_a_room():
    assert {room(m) for m in graph()} <= set(RANKS)


def test_imports_go_down_between_rooms():
    up = [(m, i) for m, deps in graph().items() for i in deps
          if RANKS.index(room(i)) > RANKS.index(room(m))]
    assert up == []


def test_report_and_claims_stand_side_by_side():
    """Renderers and claim checks share what is below them, not each other."""
    g = graph()
    assert [(m, i) for m, deps in g.items() for i in deps
            if {room(m), room(i)} == {"report", "claims"}] == []


def test_no_import_cycles():
    g = graph()
    state, cycle = {}, []

    def visit(m, stack):
        state[m] = "open"
        for d in sorted(g[m]):
            if state.get(d) == "open":
                cycle.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = "done"

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert cycle == []


def test_only_the_cli_knows_argparse():
    users = [m for m, p in modules("comparator") if "argparse" in imports(m, p)]
    assert users and all(room(m) == "cli" for m in users)


@pytest.mark.parametrize("pkg,forbidden", [("architectures", {"comparator"}),
                                           ("kernels", {"comparator", "architectures"})])
def test_models_and_kernels_stay_below_comparator(pkg, forbidden):
    bad = [(m, i) for m, p in modules(pkg) for i in imports(m, p)
           if i.split(".")[0] in forbidden]
    assert bad == []


def test_the_rules_see_a_violation(tmp_path):
    """The checker itself: an upward import and a cycle are found."""
    a = tmp_path / "a.py"
    a.write_text("from comparator.cli.app import main\nimport comparator.count.trace\n")
    assert "comparator.cli.app" in imports("comparator.count.x", a)
    assert RANKS.index(room("comparator.cli.app")) > RANKS.index(room("comparator.count.x"))
