#!/usr/bin/env python3
"""Fails when a module of a crate imports back up: an import cycle between the modules of
its src/ (`scripts/check-cycles.py server/src app/src protocol/src`).

A module is a file; an edge is a `crate::a::b` or `super::x` path in it (in a `use` or
inline), a root re-export followed to the module that defines the name. A parent naming
its own child (`mod x; x::y`) is not an edge: a directory module and its children are one
room. Prints each cycle with its edges, so the import to move is named.
"""
import os, re, sys
from collections import defaultdict


def check(src):
    files = {}
    for root, _, names in os.walk(src):
        for n in names:
            if n.endswith('.rs'):
                p = os.path.join(root, n)
                rel = os.path.relpath(p, src)[:-3]
                parts = rel.split(os.sep)
                if parts[-1] in ('mod', 'lib', 'main'):
                    parts = parts[:-1]
                files[tuple(parts)] = p

    def strip(text):
        text = re.sub(r'//[^\n]*', '', text)
        text = re.sub(r'/\*.*?\*/', '', text, flags=re.S)
        text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
        return text

    # inline modules (mod x { ... }) are counted as part of their file
    def resolve(path):
        """Longest prefix of path that is a module file."""
        for i in range(len(path), -1, -1):
            if tuple(path[:i]) in files:
                return tuple(path[:i])
        return ()

    root_text = strip(open(files[()]).read())
    reexport = {}
    for m in re.finditer(r'pub\s+use\s+([\w:]+)::\{([^}]*)\}', root_text):
        for name in m.group(2).split(','):
            name = name.strip().split(' as ')[-1].strip()
            if name: reexport[name] = m.group(1).split('::')
    for m in re.finditer(r'pub\s+use\s+([\w:]+)::(\w+)\s*;', root_text):
        reexport[m.group(2)] = m.group(1).split('::')

    edges = defaultdict(set)
    count = 0
    for mod, p in files.items():
        text = strip(open(p).read())
        # expand grouped uses: use crate::{a::b, c};
        refs = []
        for m in re.finditer(r'\b(crate|super)((?:::\w+)*)::\{([^;]*?)\};', text, flags=re.S):
            base = m.group(2).strip(':').split('::') if m.group(2) else []
            kind = m.group(1)
            for part in re.split(r',(?![^{]*\})', m.group(3)):
                part = part.strip()
                if not part: continue
                first = re.match(r'[\w:]+', part)
                if first:
                    refs.append((kind, [x for x in base + first.group(0).strip(':').split('::') if x]))
        text2 = re.sub(r'\b(crate|super)((?:::\w+)*)::\{([^;]*?)\};', '', text, flags=re.S)
        for m in re.finditer(r'\b(crate|super)((?:::\w+)+)', text2):
            refs.append((m.group(1), m.group(2).strip(':').split('::')))
        for kind, path in refs:
            if kind == 'self':
                full = list(mod) + path
                target = resolve(full)
                if target != mod:
                    edges[mod].add(target)
                continue
            if kind == 'super':
                # super from file module: parent module
                is_dir_mod = os.path.basename(p) in ('mod.rs',)
                parent = list(mod[:-1])
                while path and path[0] == 'super':
                    parent = parent[:-1]; path = path[1:]
                full = parent + path
            else:
                full = path
            if full and not tuple(full[:1]) in files and full[0] in reexport:
                full = reexport[full[0]] + full[1:]
                if full[0] == 'crate': full = full[1:]
            target = resolve(full)
            if target != mod:
                edges[mod].add(target)

    # Tarjan
    index = {}; low = {}; stack = []; on = set(); sccs = []; i = [0]
    def strong(v):
        index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            sccs.append(comp)
    sys.setrecursionlimit(10000)
    for v in list(files):
        if v not in index: strong(v)
    name = lambda m: '::'.join(m) or 'lib'
    bad = [c for c in sccs if len(c) > 1]
    total = sum(len(e) for e in edges.values())
    print(f"{src}: {len(files)} modules, {total} module edges, {len(bad)} cycles")
    for c in bad:
        members = set(c)
        print('  cycle:', ', '.join(sorted(name(m) for m in c)))
        for a in sorted(c):
            for b in sorted(edges[a]):
                if b in members:
                    print(f'     {name(a)} -> {name(b)}')
    return len(bad)


if __name__ == "__main__":
    sys.setrecursionlimit(10000)
    failed = sum(check(src) for src in sys.argv[1:])
    sys.exit(1 if failed else 0)
