"""The layers of DESIGN.md hold: imports point only downwards, no package cycle, the engine and
the archive stay free of front-end and SSH libraries, the agent never imports laptop code."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

OPS = Path(__file__).resolve().parents[1] / "ops"

# Higher imports lower (or equal, within the same row). Shared small modules are level 0.
LEVELS = {
    "cli": 9, "web": 9, "fleet": 9,
    "jobs": 8,
    "transport": 7,
    "ssh": 6, "provision": 6, "agent": 6, "config": 6,
    "steps": 5, "sandbox": 5, "schedule": 5,
    "policy": 4,
    "repository": 3, "crypto": 3, "interop": 3, "notify": 3,
    "engine": 2,
    "archive": 1,
    "errors": 0, "dburl": 0, "process": 0, "aio": 0, "_version": 0, "package_identity": 0,
    "__init__": 10,  # ops/__init__.py: the public API re-exports from below
}
LAPTOP_ONLY = {"cli", "web", "fleet", "jobs", "transport", "ssh", "provision", "config"}
FORBIDDEN_LIBS = {
    "engine": {"click", "fabric", "invoke", "paramiko", "rich"},
    "archive": {"click", "fabric", "invoke", "paramiko", "rich", "asyncpg"},
    "agent": {"click", "fabric", "invoke", "paramiko", "rich"},
    "steps": {"click", "fabric", "invoke", "paramiko", "rich"},
    "policy": {"click", "fabric", "invoke", "paramiko", "rich", "asyncpg"},
    "schedule": {"click", "fabric", "invoke", "paramiko", "rich"},
    "fleet": {"click", "fabric", "invoke", "paramiko", "rich", "asyncpg"},
    "notify": {"click", "fabric", "invoke", "paramiko", "rich", "asyncpg"},
}


def _part(path: Path) -> str:
    rel = path.relative_to(OPS)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[tuple[str, int]]:
    """(absolute module, line) of every import in ``path`` (function-level imports too)."""
    tree = ast.parse(path.read_text(), str(path))
    rel = path.relative_to(OPS.parent).with_suffix("")
    package = list(rel.parts[:-1])  # a module's package; an __init__'s own package
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
                if not node.module:
                    found += [(f"{name}.{alias.name}", node.lineno) for alias in node.names]
                    continue
            else:
                name = node.module or ""
            found.append((name, node.lineno))
    return found


def _target(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "ops":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _edges() -> list[tuple[str, str, str]]:
    edges = []
    for path in sorted(OPS.rglob("*.py")):
        src = _part(path)
        for module, line in _imports(path):
            dst = _target(module)
            if dst is not None and dst != src:
                edges.append((src, dst, f"{path.relative_to(OPS.parent)}:{line} imports {module}"))
    return edges


def test_every_ops_module_has_a_layer_and_the_import_graph_is_read() -> None:
    assert {_part(p) for p in OPS.rglob("*.py")} <= set(LEVELS)
    pairs = {(src, dst) for src, dst, _why in _edges()}
    # relative imports at every depth are resolved (a sanity check of this test itself)
    assert {("cli", "jobs"), ("jobs", "transport"), ("transport", "steps"),
            ("agent", "steps"), ("steps", "engine"), ("engine", "archive")} <= pairs


def test_no_relative_import_climbs_out_of_the_package() -> None:
    bad = []
    for path in sorted(OPS.rglob("*.py")):
        depth = len(path.relative_to(OPS).parts)  # 1: a module at the top of ops/
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level > depth:
                bad.append(f"{path.relative_to(OPS.parent)}:{node.lineno}")
    assert bad == []


def test_imports_point_only_downwards() -> None:
    upward = [why for src, dst, why in _edges() if LEVELS[dst] > LEVELS[src]]
    assert upward == []


def test_the_agent_never_imports_laptop_side_code() -> None:
    assert [why for src, dst, why in _edges() if src == "agent" and dst in LAPTOP_ONLY] == []


def test_no_import_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst, _why in _edges():
        if dst != "__init__":
            graph[src].add(dst)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start]:
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    assert [p for p in list(graph) if reaches(p, p, {p})] == []


def test_engine_archive_agent_and_policy_stay_free_of_front_end_and_ssh_libraries() -> None:
    bad = []
    for path in sorted(OPS.rglob("*.py")):
        banned = FORBIDDEN_LIBS.get(_part(path), set())
        for module, line in _imports(path):
            if module.split(".")[0] in banned:
                bad.append(f"{path.relative_to(OPS.parent)}:{line} imports {module}")
    assert bad == []
