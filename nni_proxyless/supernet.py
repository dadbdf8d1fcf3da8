"""Building the supernet: mutation hooks turn every choice of an NNI model space into a mixed op.

:func:`build_supernet` is what :class:`~nni_proxyless.Proxyless` does to the user's space, and what
:func:`~nni_proxyless.latency.build_latency_table` does to a copy of a space it is given unmutated.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from torch import nn
from nni.mutable import frozen_context
from nni.nas.nn.pytorch import ModelSpace

from ._nni_internals import BaseSuperNetModule
from .arch import ArchParameters
from .ops import MUTATION_HOOKS, MixedOp, record_occurrences

__all__ = ['build_supernet', 'model_defined_hooks']

_logger = logging.getLogger('nni.proxyless')

MutationHook = Callable[[nn.Module, str, dict, dict], Any]


def model_defined_hooks(model_space: nn.Module, strategy: Any) -> list[MutationHook]:
    """The space's own ``extra_oneshot_hooks(strategy)``, without those building NNI's own supermodules.

    NNI's hub spaces hand NNI's DARTS and random one-shot strategies mixed ops of NNI's (AutoFormer's class token
    and position embedding, NDS stages); they depend on NNI's samplers, so Proxyless's own ops replace them.
    """
    hooks = getattr(model_space, 'extra_oneshot_hooks', None)
    if hooks is None:
        return []
    kept = []
    for hook in hooks(strategy):
        owner = getattr(hook, '__self__', None)
        if isinstance(owner, type) and issubclass(owner, BaseSuperNetModule) and not issubclass(owner, MixedOp):
            _logger.debug('Skipping %s.%s from the space: Proxyless has its own mixed op for it.',
                          owner.__name__, getattr(hook, '__name__', 'hook'))
            continue
        kept.append(hook)
    return kept


def build_supernet(model_space: ModelSpace, arch: ArchParameters, hooks: list[MutationHook] | None = None,
                   finish: list[MutationHook] | None = None) -> ModelSpace:
    """Replace every choice of ``model_space`` (in place) by a mixed op registered with ``arch``.

    Args:
        model_space: the space; mutated in place and returned.
        arch: receives every label; its routing is what the mixed ops read.
        hooks: hooks to run before Proxyless's own (``Proxyless(mutation_hooks=...)``, the space's own).
        finish: hooks to run after Proxyless's own (NNI's ``no_default_hook`` refuses what nobody replaced).

    Raises:
        TypeError: ``model_space`` is not an NNI ``ModelSpace``.
    """
    if not isinstance(model_space, ModelSpace):
        raise TypeError(f'The model space must be an NNI ModelSpace (nni.nas.nn.pytorch.ModelSpace), got '
                        f'{type(model_space).__name__}.')
    chain = [*(hooks or []), *MUTATION_HOOKS, *(finish or [])]
    memo: dict[str, Any] = {}
    with frozen_context():  # NNI builds choices inside a frozen context; hooks that build modules need one too
        _map_children('', model_space, lambda name, module: _run_hooks(chain, name, module, memo, arch))
    record_occurrences(model_space, arch)
    return model_space


def _map_children(prefix: str, module: nn.Module, replace: Callable[[str, nn.Module], nn.Module | None]) -> None:
    """Top-down: offer every child to ``replace``, then walk into what is there afterwards."""
    for name, child in list(module.named_children()):
        qualified = f'{prefix}.{name}' if prefix else name
        replacement = replace(qualified, child)
        if replacement is not None:
            setattr(module, name, replacement)
            child = replacement
        _map_children(qualified, child, replace)


def _run_hooks(hooks: list[MutationHook], name: str, module: nn.Module, memo: dict, arch: ArchParameters
               ) -> nn.Module | None:
    """NNI's hook protocol: a hook returns a module, ``None``, a ``suppress`` flag, or both as a tuple."""
    replaced = None
    for hook in hooks:
        result = hook(module, name, memo, {'arch': arch})
        if isinstance(result, tuple):
            result, suppress = result
        elif isinstance(result, nn.Module):
            suppress = True
        else:  # True: keep the module, stop here; None or False: keep it, ask the next hook
            result, suppress = None, result is True
        if result is not None:
            module = replaced = result
        if suppress:
            break
    return replaced
