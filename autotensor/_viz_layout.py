"""What `autotensor.viz` draws of a walked graph: units of ops (one op, one collapsed module,
or an elided run of ops), chosen so that the picture fits `max_nodes`.
"""

from __future__ import annotations

import collections


class _Layout:
    """Groups ops into drawn units: one op, one collapsed module, or an elided run of ops."""

    def __init__(self, walk, depth):
        self.w = walk
        n = len(walk.ops)
        self.unit_of = list(range(n))
        self.units = {i: ("op", [i], None) for i in range(n)}
        self.folded = [False] * len(walk.leaves)     # parameter listed inside a module node
        if depth is not None:
            self._collapse(depth)
        self.elided = [False] * n
        self.uses = [0] * len(walk.leaves)         # uses by ops that are not elided
        for ins in walk.inputs:
            for k in ins:
                if k < 0:
                    self.uses[~k] += 1
        self.shown_leaves = sum(1 for j, u in enumerate(self.uses) if u and not self.folded[j])

    def _collapse(self, depth):
        """Merge the ops of each module into one unit; fold parameters only it uses."""
        groups = {}
        for i, node in enumerate(self.w.ops):
            path = _module_key(node.scope, depth, self.w.containers)
            if path is not None:
                groups.setdefault(path, []).append(i)
        for path, ops in groups.items():
            self._merge([self.unit_of[i] for i in ops], "module", path)
        consumers = collections.defaultdict(set)
        for i, ins in enumerate(self.w.inputs):
            for k in ins:
                if k < 0:
                    consumers[~k].add(self.unit_of[i])
        for j, us in consumers.items():
            (u,) = us if len(us) == 1 else (None,)
            self.folded[j] = (u is not None and self.units[u][0] == "module"
                              and self.w.kinds[j] == "param")

    def _merge(self, unit_ids, kind, path):
        ops = sorted(i for u in dict.fromkeys(unit_ids) for i in self.units.pop(u)[1])
        uid = ops[0]
        for i in ops:
            self.unit_of[i] = uid
        self.units[uid] = (kind, ops, path)
        return uid

    def count(self):
        return len(self.units) + self.shown_leaves + 1          # + the output node

    def elide(self, unit_ids):
        """Replace these units by one "… N more ops" unit; hide leaves only they used."""
        for u in unit_ids:
            for i in self.units[u][1]:
                if self.elided[i]:
                    continue
                self.elided[i] = True
                for k in self.w.inputs[i]:
                    if k < 0:
                        self.uses[~k] -= 1
                        if self.uses[~k] == 0 and not self.folded[~k]:
                            self.shown_leaves -= 1
        self._merge(unit_ids, "elided", None)

    def unit_links(self):
        """Distinct producer and consumer units of each unit (op-to-op edges only)."""
        preds, succs = collections.defaultdict(set), collections.defaultdict(set)
        for i, ins in enumerate(self.w.inputs):
            u = self.unit_of[i]
            for k in ins:
                if k >= 0 and self.unit_of[k] != u:
                    preds[u].add(self.unit_of[k])
                    succs[self.unit_of[k]].add(u)
        return preds, succs

    def chains(self):
        """Maximal runs u0 -> u1 -> ... where each link is the only way in and out."""
        preds, succs = self.unit_links()
        nxt = {}
        for u, ps in preds.items():
            if len(ps) == 1:
                (p,) = ps
                if len(succs[p]) == 1:
                    nxt[p] = u
        starts = sorted(set(self.units) - set(nxt.values()))
        out = []
        for u in starts:
            run = [u]
            while run[-1] in nxt:
                run.append(nxt[run[-1]])
            out.append(run)
        return out

    def fit(self, max_nodes):
        """Elide until at most `max_nodes` nodes remain: long chains first, then the middle."""
        for keep in (2, 1):
            for run in sorted(self.chains(), key=lambda r: (-len(r), r[0])):
                excess = self.count() - max_nodes
                if excess <= 0:
                    return
                # Elide no more than needed, from the middle of the run: the ends stay readable.
                m = min(len(run) - 2 * keep, excess + 1)
                if m >= 2:
                    start = keep + (len(run) - 2 * keep - m) // 2
                    self.elide(run[start:start + m])
        if self.count() > max_nodes:
            self._elide_middle(max_nodes)

    def _elide_middle(self, max_nodes):
        # Keep units from both ends of the recording order (the output end first) while
        # they and their leaves fit; everything between becomes one elided unit.
        order = sorted(self.units)
        budget, seen, keep = max_nodes - 2, set(), set()
        lo, hi, take_tail = 0, len(order) - 1, True
        while lo <= hi:
            u = order[hi] if take_tail else order[lo]
            new = {~k for i in self.units[u][1] if not self.elided[i] for k in self.w.inputs[i]
                   if k < 0 and not self.folded[~k] and ~k not in seen}
            if 1 + len(new) > budget:
                break
            budget -= 1 + len(new)
            seen |= new
            keep.add(u)
            hi, lo = (hi - 1, lo) if take_tail else (hi, lo + 1)
            take_tail = not take_tail
        rest = [u for u in order if u not in keep]
        if rest:
            self.elide(rest)


def _module_key(scope, depth, containers):
    """The collapsed module an op belongs to, or None when the op stays a node of its own.

    depth True: the innermost module, unless it contains other modules (a container's own
    ops, e.g. a residual add, stay visible). depth d: the module path cut to d parts; ops of
    shallower modules stay visible. depth 0: the whole root module.
    """
    if scope is None:
        return None
    if depth is True:
        return None if scope in containers else scope
    parts = scope.split(".") if scope else []
    return ".".join(parts[:depth]) if len(parts) >= depth else None


def _choose_layout(walk, collapse_modules, max_nodes):
    depths = [len(n.scope.split(".")) if n.scope else 0 for n in walk.ops if n.scope is not None]
    layout = _Layout(walk, None if collapse_modules is False else collapse_modules)
    if max_nodes is None or layout.count() <= max_nodes:
        return layout
    if collapse_modules is False and depths:
        # The most detailed module collapse that fits; else the coarsest, then elide. Never
        # fold the whole model into one box while it has submodules: 60 layers with the
        # middle elided say more than one "Sequential: 180 ops" node.
        for d in range(max(depths), 0 if max(depths) else -1, -1):
            layout = _Layout(walk, d)
            if layout.count() <= max_nodes:
                return layout
    layout.fit(max_nodes)
    return layout
