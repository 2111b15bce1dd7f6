"""Typed program trees over a grammar: DEAP primitive set, random generation, mutation, parsing.

DEAP's `PrimitiveSetTyped` holds the grammar's primitives and terminals; trees
are DEAP `PrimitiveTree`s. Generation and mutation are written here rather than
taken from `deap.gp` because they must respect the grammar's limits and know
which types can be completed at which depth (the grammar's `min_height`), so a
generated program is always well formed and never hits DEAP's IndexError.
"""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING

from deap import gp

from synth.errors import GrammarError

if TYPE_CHECKING:  # a type only: synth.grammar imports this module to check a grammar's named programs
    from synth.grammar import Grammar

__all__ = ["ProgramSpace"]


def _not_compiled(*_args):
    raise NotImplementedError("synth programs are evaluated through sympy and torch, not compiled by DEAP")


class ProgramSpace:
    """The DEAP primitive set of a grammar plus typed generation and mutation."""

    def __init__(self, grammar: Grammar):
        self.grammar = grammar
        self.type_class = {name: type(name, (), {}) for name in grammar.types}
        self.pset = gp.PrimitiveSetTyped(grammar.name, [], self.type_class[grammar.root])
        for p in grammar.primitives.values():
            self.pset.addPrimitive(_not_compiled, [self.type_class[a] for a in p.args], self.type_class[p.ret], name=p.name)
        for t in grammar.terminals.values():
            self.pset.addTerminal(t.name, self.type_class[t.type], name=t.name)
        self.primitives_of = {name: [] for name in grammar.types}
        self.terminals_of = {name: [] for name in grammar.types}
        for p in grammar.primitives.values():
            self.primitives_of[p.ret].append(p)
        for t in grammar.terminals.values():
            self.terminals_of[t.type].append(t)

    # ------------------------------------------------------------ generation

    def _grow(self, rng: random.Random, type_name: str, depth: int, min_depth: int, max_depth: int) -> list:
        """Prefix node list of a random subtree of `type_name` rooted at `depth`."""
        mh = self.grammar.min_height
        fitting = [p for p in self.primitives_of[type_name] if depth + 1 + max(mh[a] for a in p.args) <= max_depth]
        terminals = self.terminals_of[type_name]
        use_terminal = terminals and (not fitting or (depth >= min_depth and rng.random() < 0.5))
        if use_terminal:
            return [self.pset.mapping[rng.choice(terminals).name]]
        if not fitting:
            raise ValueError(f"no program of type {type_name!r} fits in depth {max_depth - depth}")
        p = rng.choice(fitting)
        nodes = [self.pset.mapping[p.name]]
        for arg in p.args:
            nodes += self._grow(rng, arg, depth + 1, min_depth, max_depth)
        return nodes

    def random_tree(self, rng: random.Random) -> gp.PrimitiveTree:
        """A random program within the grammar's limits, depth drawn from `limits.init_depth`."""
        lo, hi = self.grammar.limits.init_depth
        lo = max(lo, self.grammar.min_height[self.grammar.root])  # the loader checked hi >= this
        for _ in range(1000):
            tree = gp.PrimitiveTree(self._grow(rng, self.grammar.root, 0, lo, rng.randint(lo, hi)))
            if self.within_limits(tree):
                return tree
        raise ValueError("could not generate a program within the grammar's max_size; raise limits.max_size")

    def within_limits(self, tree: gp.PrimitiveTree) -> bool:
        limits = self.grammar.limits
        return len(tree) <= limits.max_size and tree.height <= limits.max_depth

    # ------------------------------------------------------------ mutation

    def _same_signature(self, node):
        if node.arity == 0:
            return [self.pset.mapping[t.name] for t in self.terminals_of[node.ret.__name__]]
        p = self.grammar.primitives[node.name]
        return [self.pset.mapping[q.name] for q in self.primitives_of[p.ret] if q.args == p.args]

    def mutate(self, tree: gp.PrimitiveTree, rng: random.Random, node_prob: float, subtree_prob: float) -> gp.PrimitiveTree:
        """A mutated copy: each node resampled with probability `node_prob` among nodes of its
        signature (Auto-Prox's node mutation); with probability `subtree_prob` a random subtree is
        first regrown, so the tree's shape can change too. Types are preserved by construction."""
        nodes = list(tree)
        if rng.random() < subtree_prob:
            index = rng.randrange(len(nodes))
            end = gp.PrimitiveTree(nodes).searchSubtree(index).stop
            depth, type_name = _depth_of(nodes, index), nodes[index].ret.__name__
            deepest = rng.randint(depth + self.grammar.min_height[type_name], self.grammar.limits.max_depth)
            nodes[index:end] = self._grow(rng, type_name, depth, depth + 1, deepest)
        for i, node in enumerate(nodes):
            if rng.random() < node_prob:
                nodes[i] = rng.choice(self._same_signature(node))
        return gp.PrimitiveTree(nodes)

    def crossover(self, tree: gp.PrimitiveTree, donor: gp.PrimitiveTree, rng: random.Random) -> gp.PrimitiveTree:
        """`tree` with one random non-root subtree replaced by a random subtree of `donor` of the same
        type (typed one-point crossover, one child): what lets a size term found in one program meet a
        gradient term found in another, which node mutation alone almost never assembles. `tree`
        unchanged when no non-root node's type occurs in `donor`."""
        nodes, other = list(tree), list(donor)
        donor_slots: dict = {}
        for j, node in enumerate(other):
            donor_slots.setdefault(node.ret, []).append(j)
        slots = [i for i in range(1, len(nodes)) if nodes[i].ret in donor_slots]
        if not slots:
            return gp.PrimitiveTree(nodes)
        i = rng.choice(slots)
        j = rng.choice(donor_slots[nodes[i].ret])
        end = gp.PrimitiveTree(nodes).searchSubtree(i).stop
        nodes[i:end] = other[gp.PrimitiveTree(other).searchSubtree(j)]
        return gp.PrimitiveTree(nodes)

    def insert(self, tree: gp.PrimitiveTree, rng: random.Random) -> gp.PrimitiveTree:
        """`tree` with a new node inserted above a random subtree (as PySR's insert mutation): a
        primitive that returns the subtree's type and takes it as one argument, its other arguments
        grown at random. The rest of the tree is kept whole, so a good program can gain a factor or
        a transform without the per-node resampling that rewrites half of it. `tree` unchanged when
        no primitive of the grammar can sit above any of its nodes."""
        nodes = list(tree)
        wrappers = {name: [(p, k) for p in self.primitives_of[name] for k, arg in enumerate(p.args) if arg == name]
                    for name in {node.ret.__name__ for node in nodes}}
        places = [i for i, node in enumerate(nodes) if wrappers[node.ret.__name__]]
        if not places:
            return gp.PrimitiveTree(nodes)
        i = rng.choice(places)
        end = gp.PrimitiveTree(nodes).searchSubtree(i).stop
        depth = _depth_of(nodes, i)
        p, k = rng.choice(wrappers[nodes[i].ret.__name__])
        new = [self.pset.mapping[p.name]]
        for m, arg in enumerate(p.args):
            if m == k:
                new += nodes[i:end]
                continue
            lowest = depth + 1 + self.grammar.min_height[arg]
            new += self._grow(rng, arg, depth + 1, depth + 1, rng.randint(lowest, max(lowest, self.grammar.limits.max_depth)))
        nodes[i:end] = new
        return gp.PrimitiveTree(nodes)

    # ------------------------------------------------------------ serialisation

    def parse(self, text: str, where: str = "program") -> gp.PrimitiveTree:
        """A tree from its `str()`; every token must be one of the grammar's names (no eval).
        GrammarError naming `where` (the program) when the text is not a program of the grammar:
        the text may come from a grammar's named programs, a checkpoint or a run record."""
        nodes = []
        for token in re.split(r"[\s(),]+", text.strip()):
            if not token:
                continue
            if token not in self.pset.mapping:
                raise GrammarError(f"{where}: {token!r} is not a name of grammar {self.grammar.name!r}")
            nodes.append(self.pset.mapping[token])
        tree = gp.PrimitiveTree(nodes)
        _check_types(tree, self.type_class[self.grammar.root], where)
        return tree


def _depth_of(nodes, index: int) -> int:
    """Depth of node `index` in a prefix list (root at 0)."""
    open_slots: list[int] = []  # children still expected by each open ancestor
    for i, node in enumerate(nodes):
        while open_slots and open_slots[-1] == 0:
            open_slots.pop()
        if i == index:
            return len(open_slots)
        if open_slots:
            open_slots[-1] -= 1
        if node.arity:
            open_slots.append(node.arity)
    raise IndexError(index)


def _check_types(tree, root_type, where):
    expected = [root_type]
    for node in tree:
        if not expected:
            raise GrammarError(f"{where}: too many nodes")
        want = expected.pop()
        if node.ret is not want:
            raise GrammarError(f"{where}: {node.name!r} returns {node.ret.__name__}, expected {want.__name__}")
        expected.extend(reversed(getattr(node, "args", ())))
    if expected:
        raise GrammarError(f"{where}: program ends early")
