"""The package's modules import each other without a cycle (module-level imports, read from the source)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'nni_proxyless'


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob('*.py'))}


def _top_level_imports(tree: ast.Module, type_checking: bool = False) -> list[ast.Import | ast.ImportFrom]:
    """Imports that run when the module runs: at module level or in its try/if blocks, not under TYPE_CHECKING
    (``type_checking``: those too, as a type checker reads them)."""
    found, pending = [], list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and (type_checking or 'TYPE_CHECKING' not in ast.unparse(node.test)):
            pending += node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody + [n for h in node.handlers for n in h.body]
    return found


def _targets(name: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """The package's modules this import runs: each imported module and the packages above it."""
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    if isinstance(node, ast.Import):
        imported = [alias.name for alias in node.names]
    else:
        base = node.module or ''
        if node.level:
            base = '.'.join(package.split('.')[:len(package.split('.')) - node.level + 1] + ([base] if base else []))
        imported = [f'{base}.{alias.name}' if f'{base}.{alias.name}' in modules else base for alias in node.names]
    targets = set()
    for module in imported:
        parts = module.split('.')
        for depth in range(1, len(parts) + 1):
            ancestor = '.'.join(parts[:depth])
            # the packages above the importer are already being imported when it runs
            if ancestor in modules and not name.startswith(ancestor + '.') and ancestor != name:
                targets.add(ancestor)
    return targets


def import_graph(type_checking: bool = False) -> dict[str, set[str]]:
    """Module -> the package's modules its module-level imports run (``type_checking``: and those it imports
    under ``TYPE_CHECKING``)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding='utf-8'))
        imports = _top_level_imports(tree, type_checking)
        graph[name] = set().union(*[_targets(name, path, node, modules) for node in imports])
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a closed path of modules, or ``None``."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 'open'
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 'open':
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[module] = 'done'
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_cycle_finder_finds_a_planted_cycle():
    """The checker itself: a three-module cycle is reported as a closed path, an acyclic graph as None."""
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b', 'c'}, 'b': {'c'}, 'c': set()}) is None


def test_graph_sees_relative_absolute_and_package_imports():
    """The graph has edges this package's source is known to have: relative, from a parent package, to a package."""
    graph = import_graph()
    assert 'nni_proxyless.routing' in graph['nni_proxyless.arch']                    # from .routing import ...
    assert 'nni_proxyless._checks' in graph['nni_proxyless.latency.loss']            # from .. import _checks
    assert 'nni_proxyless.ops' in graph['nni_proxyless.latency.protocol']            # from ..ops import MixedOp
    assert 'nni_proxyless.arch' not in graph['nni_proxyless.routing']                # under TYPE_CHECKING only


def test_package_has_no_import_cycle():
    """No module of nni_proxyless imports, through module-level imports, a module that imports it back."""
    cycle = find_cycle(import_graph())
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_package_has_no_import_cycle_under_type_checking_either():
    """Counting the imports under ``TYPE_CHECKING`` too, no module imports one that imports it back: shared types
    live upstream of both (as ``latency._term.Term`` does for the table and its expectation)."""
    graph = import_graph(type_checking=True)
    assert 'nni_proxyless.latency._term' in graph['nni_proxyless.latency._expectation']
    cycle = find_cycle(graph)
    assert cycle is None, 'import cycle (counting TYPE_CHECKING imports): ' + ' -> '.join(cycle)


def test_every_behaviour_around_the_loop_is_a_lightning_callback_of_its_own_module():
    """``nni_proxyless.callbacks`` exports Lightning callbacks only, each defined in a module of its own."""
    import pytorch_lightning as pl
    from nni_proxyless import callbacks
    homes = {}
    for name in callbacks.__all__:
        kind = getattr(callbacks, name)
        assert isinstance(kind, type) and issubclass(kind, pl.Callback), name
        assert kind.__module__.startswith('nni_proxyless.callbacks.'), (name, kind.__module__)
        homes.setdefault(kind.__module__, []).append(name)
    assert all(len(names) == 1 for names in homes.values()), homes


def test_callbacks_import_from_the_paths_documented_first():
    """``nni_proxyless.memory_format.ChannelsLast`` and ``nni_proxyless.batchnorm`` keep working."""
    from nni_proxyless import batchnorm, callbacks, memory_format
    assert memory_format.ChannelsLast is callbacks.ChannelsLast
    assert batchnorm.BatchNormRecalibration is callbacks.BatchNormRecalibration
    assert batchnorm.recalibrate is callbacks.batchnorm.recalibrate
