"""Mixed ops: the supernet modules that replace NNI's choices (``LayerChoice``, ``InputChoice``, ``Repeat``,
``Cell``, and layers whose arguments are choices)."""

from nni.nas.nn.pytorch import ParametrizedModule

from .base import MixedOp, SpaceError, record_occurrences
from .cell import FrozenCell, MixedCell
from .fallback import FALLBACK_LIMIT, CombinationChoice
from .input import MixedInput
from .layer import MixedLayer
from .repeat import MixedRepeat
from .shapes import check_shapes_on_first_batch
from .space_check import check_space, check_space_on_first_batch
from .widths import check_widening_on_first_batch
from .sliced import SlicedOp
from .sliced_layers import SLICED_LAYERS
from .sliced_transformer import SlicedClassToken, SlicedMultiheadAttention, SlicedPositionEmbedding

__all__ = ['MixedOp', 'SpaceError', 'record_occurrences', 'MixedLayer', 'MixedInput', 'MixedRepeat', 'MixedCell',
           'FrozenCell', 'SlicedOp', 'CombinationChoice', 'FALLBACK_LIMIT', 'MUTATION_HOOKS',
           'check_shapes_on_first_batch', 'check_space', 'check_space_on_first_batch',
           'check_widening_on_first_batch']

SLICING_RULES = [*SLICED_LAYERS, SlicedMultiheadAttention, SlicedClassToken, SlicedPositionEmbedding]
"""Every layer with a slicing rule, in the order they are tried."""


def _sliced(module, name: str, memo: dict, mutate_kwargs: dict):
    """Mutation hook: the first slicing rule that covers a parametrized layer whose arguments hold choices."""
    if not isinstance(module, ParametrizedModule) or not module.mutables:
        return None
    for rule in SLICING_RULES:
        op = rule.mutate(module, name, memo, mutate_kwargs)
        if op is not None:
            return op
    return None


MUTATION_HOOKS = [MixedCell.mutate, MixedLayer.mutate, MixedInput.mutate, MixedRepeat.mutate, _sliced,
                  CombinationChoice.mutate]
"""The hooks :class:`~nni_proxyless.Proxyless` runs on every module of a model space, in this order."""
