"""Order pre-data objects so each is created after what it depends on (pg_depend, topologically).

Objects are graph nodes keyed by ``(catalog, oid)`` — e.g. ``("pg_class", 16384)``. Catalog rows
that are not nodes themselves (a view's rewrite rule, a column default, a table's row type, an
array type, a CHECK constraint, an extension's member objects) are mapped onto the node that
creates them, so every pg_depend edge becomes an edge between two nodes. Ties are broken like
pg_dump: by object kind, then schema and name, so the output is stable.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg

NodeKey = tuple[str, int]

# Kind ranks used when several objects are ready at once (pg_dump_sort.c's idea, simplified).
RANK_SCHEMA = 1
RANK_EXTENSION = 2
RANK_TYPE = 3
RANK_FUNCTION = 4
RANK_DOMAIN = 5
RANK_SEQUENCE = 6
RANK_TABLE = 7
RANK_VIEW = 8
RANK_MATVIEW = 9


@dataclass
class Node:
    key: NodeKey
    rank: int
    schema: str
    name: str
    statements: list[str] = field(default_factory=list)

    def sort_key(self) -> tuple[int, str, str, int]:
        return (self.rank, self.schema, self.name, self.key[1])


@dataclass
class DependencyGraph:
    nodes: dict[NodeKey, Node] = field(default_factory=dict)
    aliases: dict[NodeKey, NodeKey] = field(default_factory=dict)
    edges: set[tuple[NodeKey, NodeKey]] = field(default_factory=set)
    ignored: set[tuple[NodeKey, NodeKey]] = field(default_factory=set)

    def add(self, node: Node) -> Node:
        self.nodes[node.key] = node
        return node

    def alias(self, key: NodeKey, target: NodeKey) -> None:
        """Treat dependencies of/on ``key`` as dependencies of/on node ``target``."""
        self.aliases[key] = target

    def ignore(self, dependent: NodeKey, referenced: NodeKey) -> None:
        """Drop one edge (e.g. an owned sequence's dependency on its table: OWNED BY comes last)."""
        self.ignored.add((dependent, referenced))

    def resolve(self, key: NodeKey) -> NodeKey | None:
        seen = 0
        while key not in self.nodes:
            nxt = self.aliases.get(key)
            if nxt is None or seen > 10:
                return None
            key, seen = nxt, seen + 1
        return key

    async def load_edges(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(
            """
            SELECT classid::regclass::text AS cls, objid, refclassid::regclass::text AS refcls,
                   refobjid
            FROM pg_catalog.pg_depend
            WHERE deptype IN ('n', 'a', 'i') AND objid >= 16384 AND refobjid >= 16384
            """
        )
        for r in rows:
            raw = ((r["cls"], int(r["objid"])), (r["refcls"], int(r["refobjid"])))
            if raw in self.ignored:
                continue
            a, b = self.resolve(raw[0]), self.resolve(raw[1])
            if a is not None and b is not None and a != b and (a, b) not in self.ignored:
                self.edges.add((a, b))

    def ordered(self) -> list[Node]:
        """Kahn's algorithm; on a cycle, emit the smallest remaining node and carry on."""
        deps: dict[NodeKey, set[NodeKey]] = {k: set() for k in self.nodes}
        users: dict[NodeKey, set[NodeKey]] = {k: set() for k in self.nodes}
        for a, b in self.edges:
            deps[a].add(b)
            users[b].add(a)
        ready = [(n.sort_key(), n.key) for n in self.nodes.values() if not deps[n.key]]
        heapq.heapify(ready)
        out: list[Node] = []
        done: set[NodeKey] = set()
        while len(done) < len(self.nodes):
            if not ready:
                stuck = min(
                    (n for k, n in self.nodes.items() if k not in done), key=Node.sort_key
                )
                ready.append((stuck.sort_key(), stuck.key))
            _, key = heapq.heappop(ready)
            if key in done:
                continue
            done.add(key)
            out.append(self.nodes[key])
            for user in users[key]:
                deps[user].discard(key)
                if not deps[user] and user not in done:
                    heapq.heappush(ready, (self.nodes[user].sort_key(), user))
        return out


def topo_order(keys: Iterable[NodeKey], graph: DependencyGraph) -> list[NodeKey]:
    """The subset ``keys`` in the graph's order (used for the matview refresh list)."""
    wanted = set(keys)
    return [n.key for n in graph.ordered() if n.key in wanted]
