"""Slicing rules for transformer layers: ``MutableMultiheadAttention``, and AutoFormer's class token and
position embedding (``nni.nas.hub.pytorch.autoformer``).

Attention mixes its embedding, so an architecture step gates ``embed_dim`` on the prefix of its inputs and pads the
output back to the widest gated width; ``num_heads`` and ``dropout`` keep shapes and are gated at the output. The
class token and the position embedding act on each feature alone (the prefix of their parameter).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._nni_internals import AUTOFORMER_MODULE
from ._expressions import Arguments
from .sliced import SlicedOp, pad_to, sliced_parameter

__all__ = ['SlicedMultiheadAttention', 'SlicedClassToken', 'SlicedPositionEmbedding']


class SlicedMultiheadAttention(SlicedOp):
    """``MultiheadAttention``: prefix slices of the q, k, v and output projections; heads split the prefix."""

    bound_type = nn.MultiheadAttention
    largest_arguments = ('embed_dim', 'kdim', 'vdim')
    fixed_arguments = ('bias', 'add_bias_kv', 'add_zero_attn', 'batch_first', 'kdim', 'vdim', 'device', 'dtype')
    input_width_argument = output_width_argument = 'embed_dim'
    width_inputs = ('query', 'key', 'value')
    output_dim = -1

    @classmethod
    def width_roles(cls, arguments: Arguments):
        return ('embed_dim',), ()

    def run(self, args: dict[str, Any], query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
            **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        mha, dim = self.layer, args['embed_dim']
        if args['num_heads'] <= 0 or dim % args['num_heads']:
            raise ValueError(f'{self.where}: embed_dim {dim} is not divisible by num_heads {args["num_heads"]}.')
        if mha.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        state = self._projections(dim)
        output, weights = F.multi_head_attention_forward(
            query, key, value, dim, args['num_heads'], None, state['in_proj_bias'],
            state.get('bias_k'), state.get('bias_v'), mha.add_zero_attn, args['dropout'],
            state['out_proj.weight'], state['out_proj.bias'], training=self.training,
            use_separate_proj_weight=True, q_proj_weight=state['q'], k_proj_weight=state['k'],
            v_proj_weight=state['v'], **kwargs)
        return (output.transpose(0, 1) if mha.batch_first else output), weights

    def output_width(self, args: dict[str, Any]) -> int | None:
        return args['embed_dim']

    def widen_output(self, output: Any, width: int) -> Any:
        return (pad_to(output[0], width, -1), output[1])

    def _projections(self, dim: int) -> dict[str, torch.Tensor | None]:
        """The slices of the max-size layer's parameters at ``embed_dim = dim``."""
        mha, full, prefix = self.layer, self.layer.embed_dim, slice(dim)
        if mha._qkv_same_embed_dim:
            q, k, v = (mha.in_proj_weight[i * full:i * full + dim, :dim] for i in range(3))
        else:
            q, k, v = mha.q_proj_weight[:dim, :dim], mha.k_proj_weight[:dim], mha.v_proj_weight[:dim]
        bias = None if mha.in_proj_bias is None else \
            torch.cat([mha.in_proj_bias[i * full:i * full + dim] for i in range(3)])
        return {'q': q, 'k': k, 'v': v, 'in_proj_bias': bias,
                'bias_k': sliced_parameter(mha.bias_k, (..., prefix)),
                'bias_v': sliced_parameter(mha.bias_v, (..., prefix)),
                'out_proj.weight': mha.out_proj.weight[:dim, :dim],
                'out_proj.bias': sliced_parameter(mha.out_proj.bias, (prefix,))}

    def sliced_state(self, args: dict[str, Any]) -> dict[str, torch.Tensor]:
        state = self._projections(args['embed_dim'])
        if self.layer._qkv_same_embed_dim:
            found = {'in_proj_weight': torch.cat([state['q'], state['k'], state['v']])}
        else:
            found = {'q_proj_weight': state['q'], 'k_proj_weight': state['k'], 'v_proj_weight': state['v']}
        found.update({name: state[name] for name in ('in_proj_bias', 'bias_k', 'bias_v', 'out_proj.weight',
                                                     'out_proj.bias') if state[name] is not None})
        return {name: tensor.detach().clone() for name, tensor in found.items()}


class _SlicedFeatureParameter(SlicedOp):
    """A hub module with one parameter whose last dimension is ``embed_dim`` (the prefix is used)."""

    largest_arguments = ('embed_dim',)
    input_width_argument = output_width_argument = 'embed_dim'
    output_dim = -1
    hub_class = ''
    parameter = ''

    @classmethod
    def width_roles(cls, arguments: Arguments):
        return (), ('embed_dim',)

    @classmethod
    def layer_type_of(cls, module: nn.Module) -> type[nn.Module] | None:
        found = type(module)
        is_hub = found.__name__ == cls.hub_class and found.__module__ == AUTOFORMER_MODULE
        return found if is_hub else None

    def _sliced(self, dim: int) -> torch.Tensor:
        return getattr(self.layer, self.parameter)[..., :dim]

    def sliced_state(self, args: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {self.parameter: self._sliced(args['embed_dim']).detach().clone()}


class SlicedClassToken(_SlicedFeatureParameter):
    """AutoFormer's ``ClassToken``: the token's first ``embed_dim`` features, concatenated before the patches."""

    bound_type, hub_class, parameter = nn.Module, 'ClassToken', 'cls_token'

    def run(self, args: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
        dim = args['embed_dim']
        return torch.cat((self._sliced(dim).expand(x.shape[0], -1, -1), x), dim=1)


class SlicedPositionEmbedding(_SlicedFeatureParameter):
    """AutoFormer's ``AbsolutePositionEmbedding``: the first ``embed_dim`` features of the embedding, added."""

    bound_type, hub_class, parameter = nn.Module, 'AbsolutePositionEmbedding', 'pos_embed'

    def run(self, args: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
        dim = args['embed_dim']
        return x + self._sliced(dim)
