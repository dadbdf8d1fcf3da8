"""The subnet of one architecture, cut out of the supernet with its trained weights.

NNI's ``freeze(sample)`` builds a fresh module for every parametrized layer it meets (``MutableConv2d``...) and some
spaces rebuild themselves entirely (the NDS spaces), so the weights a search trained would be lost. :func:`subnet_of`
instead copies the supernet: every mixed op becomes its frozen choice (the sliced layer, the chosen candidate...),
every other module is copied with its parameters and buffers, then rid of what NNI left in it (:func:`.plain.plain`:
choices and expressions in its attributes resolved, NNI's bookkeeping dropped, ``Mutable<X>`` layers made torch
layers), so the subnet pickles and scripts as a plain ``nn.Module`` would. The subnet computes exactly what the
supernet computes on that architecture, and shares no tensor with it.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from .base import MixedOp
from .plain import plain

__all__ = ['subnet_of']


def subnet_of(module: nn.Module, sample: dict[str, Any]) -> nn.Module:
    """``module`` with every mixed op under it frozen to ``sample``, all else copied (weights included) and made
    plain (:func:`.plain.plain`).

    Args:
        module: a supernet (or a part of one) built by :func:`~nni_proxyless.supernet.build_supernet`.
        sample: an architecture (NNI sample) giving every label the module's mixed ops read.
    """
    if isinstance(module, MixedOp):  # a sliced layer may be built as an NNI class (AutoFormer's class token)
        return plain(module.freeze(sample), sample)
    clone = copy.copy(module)
    for name, value in vars(module).items():
        if name.startswith('_') and isinstance(value, (dict, set)):
            setattr(clone, name, copy.copy(value))  # hooks and the like: not shared with the supernet
    clone._parameters = {name: None if p is None else nn.Parameter(p.detach().clone(), p.requires_grad)
                         for name, p in module._parameters.items()}
    clone._buffers = {name: None if b is None else b.detach().clone() for name, b in module._buffers.items()}
    clone._modules = {name: None if child is None else subnet_of(child, sample)
                      for name, child in module._modules.items()}
    return plain(clone, sample)
