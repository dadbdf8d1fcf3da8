"""Strategies registered under the ``nni.nas.strategies`` entry point group (ours is ``proxyless``)."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

__all__ = ['strategies']

GROUP = 'nni.nas.strategies'


def strategies() -> dict[str, Any]:
    """Every strategy class registered in the ``nni.nas.strategies`` entry point group, by name.

    Example::

        from nni_proxyless import strategies
        Proxyless = strategies()['proxyless']
    """
    return {entry.name: entry.load() for entry in entry_points(group=GROUP)}
