"""What NNI 2.x scripts import from ``nni.retiarii.nn.pytorch``, on NNI 3.0.

``import nni_proxyless.retiarii.nn.pytorch as nn`` gives:

* the choices: ``LayerChoice``, ``InputChoice`` and ``ValueChoice`` (NNI 2.x's signatures, NNI 3.0's classes),
  ``Repeat``, ``Cell`` and ``ChosenInputs`` (NNI 3.0's own);
* every public name of ``torch.nn`` (``Module``, ``Conv2d``, ``Linear``, ``ModuleList``, ``ReLU``,
  ``functional``, ...), unchanged: NNI 2.x wrapped them for its graph engine, which NNI 3.0 removed;
  ``Sequential`` also takes a plain dict of modules, as 2.x code passes ``self._modules`` (an ``OrderedDict`` in
  the torch of its time, a ``dict`` in recent ones).

What ``Proxyless`` searches: ``LayerChoice``, ``InputChoice``, ``Repeat`` with a choice of depth (a
``(min, max)`` tuple or a ``ValueChoice``), and ``Cell`` (a cell is built of layer and input choices).
NNI 2.x names with no NNI 3.0 equivalent here (``Placeholder``, ``ModelParameterChoice``, ``Mutable``, the
NAS-Bench cells, ``AutoActivation``) raise an error naming the replacement.
"""

from collections import OrderedDict as _OrderedDict

import torch.nn as _torch_nn
from nni.nas.nn.pytorch import Cell, ChosenInputs, Repeat

from ..._errors import removed_names
from .choice import InputChoice, LayerChoice, ValueChoice

_TORCH_NN = [name for name in dir(_torch_nn) if not name.startswith('_')]
globals().update({name: getattr(_torch_nn, name) for name in _TORCH_NN})


class Sequential(_torch_nn.Sequential):
    """``torch.nn.Sequential``; a single dict argument is taken as the ``OrderedDict`` of named modules."""

    def __init__(self, *args):
        if len(args) == 1 and isinstance(args[0], dict) and not isinstance(args[0], _OrderedDict):
            args = (_OrderedDict(args[0]),)
        super().__init__(*args)


__all__ = ['LayerChoice', 'InputChoice', 'ValueChoice', 'Repeat', 'Cell', 'ChosenInputs', *_TORCH_NN]

__getattr__ = removed_names(__name__, {
    'Placeholder': 'LayerChoice / InputChoice / Repeat (mutators are gone in NNI 3.0), or a custom '
                   'nni.nas.nn.pytorch.MutableModule',
    'ModelParameterChoice': 'nni.choice(label, values) registered with ModelSpace.add_mutable and read with '
                            'nni.mutable.ensure_frozen',
    'Mutable': 'nni.nas.nn.pytorch.MutableModule',
    'NasBench101Cell': 'nni.nas.hub.pytorch.modules.NasBench101Cell',
    'NasBench201Cell': 'nni.nas.hub.pytorch.modules.NasBench201Cell',
    'AutoActivation': 'nni.nas.hub.pytorch.modules.AutoActivation',
})
