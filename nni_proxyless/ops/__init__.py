"""Mixed ops: the supernet modules that replace NNI's ``LayerChoice``, ``InputChoice`` and ``Repeat``."""

from .base import MixedOp, record_occurrences
from .input import MixedInput
from .layer import MixedLayer
from .repeat import MixedRepeat
from .shapes import check_shapes_on_first_batch

__all__ = ['MixedOp', 'record_occurrences', 'MixedLayer', 'MixedInput', 'MixedRepeat', 'MUTATION_HOOKS',
           'check_shapes_on_first_batch']

MUTATION_HOOKS = [MixedLayer.mutate, MixedInput.mutate, MixedRepeat.mutate]
"""The hooks :class:`~nni_proxyless.Proxyless` runs on every module of a model space, in this order."""
