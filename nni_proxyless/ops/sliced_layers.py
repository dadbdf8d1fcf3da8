"""Slicing rules for NNI's ``Mutable<X>`` layers: convolutions, linear layers, norms, dropout, class tokens.

Each class says which arguments are widths of a mixed input, which are output or per-channel widths, what the
max-size layer is built with, and runs a slice of it (see :mod:`.sliced` for how steps use them).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from ._expressions import Arguments, is_choice
from .sliced import SlicedOp, sliced_parameter

__all__ = ['SlicedConv1d', 'SlicedConv2d', 'SlicedConv3d', 'SlicedLinear', 'SlicedBatchNorm1d', 'SlicedBatchNorm2d',
           'SlicedBatchNorm3d', 'SlicedLayerNorm', 'SlicedDropout', 'SLICED_LAYERS', 'trim_to_input']

_FACTORY = ('device', 'dtype')


class _SlicedConv(SlicedOp):
    """``Conv{1,2,3}d``: weight ``[:out, :in // groups]``, kernel as the centre crop, ``groups`` 1 or depthwise."""

    largest_arguments = ('in_channels', 'out_channels', 'kernel_size', 'groups')
    fixed_arguments = ('stride', 'bias', 'padding_mode', *_FACTORY)
    input_width_argument, output_width_argument = 'in_channels', 'out_channels'
    convolution: Any = None

    @classmethod
    def accepts(cls, arguments: dict[str, Any]) -> bool:
        if not super().accepts(arguments) or arguments.get('padding_mode', 'zeros') != 'zeros':
            return False
        groups = arguments.get('groups', 1)
        return (not is_choice(groups) and groups == 1) or _depthwise(arguments)

    @classmethod
    def width_roles(cls, arguments: Arguments):
        if _depthwise(arguments.values):
            return (), ('in_channels', 'out_channels', 'groups')
        return ('in_channels',), ('out_channels',)

    def run(self, args: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.layer.weight[self._weight_index(args)], _prefix(self.layer.bias, args['out_channels'])
        weight, padding = trim_to_input(weight, x.shape[2:], args['stride'], args['padding'], args['dilation'])
        return type(self).convolution(x, weight, bias, args['stride'], padding, args['dilation'], args['groups'])

    def _weight_index(self, args: dict[str, Any]) -> tuple[slice, ...]:
        """The weight's slice: ``[:out, :in // groups]`` and the centre crop of the kernel."""
        full = self.layer.weight.shape[2:]
        crop = tuple(slice((k - size) // 2, (k - size) // 2 + size)
                     for k, size in zip(full, _tuple(args['kernel_size'], len(full))))
        return (slice(args['out_channels']), slice(args['in_channels'] // args['groups']), *crop)

    def sliced_state(self, args: dict[str, Any]) -> dict[str, torch.Tensor]:
        state = {'weight': self.layer.weight[self._weight_index(args)]}
        if self.layer.bias is not None:
            state['bias'] = self.layer.bias[:args['out_channels']]
        return {name: tensor.detach().clone() for name, tensor in state.items()}


class SlicedConv1d(_SlicedConv):
    bound_type, convolution = nn.Conv1d, F.conv1d


class SlicedConv2d(_SlicedConv):
    bound_type, convolution = nn.Conv2d, F.conv2d


class SlicedConv3d(_SlicedConv):
    bound_type, convolution = nn.Conv3d, F.conv3d


class SlicedLinear(SlicedOp):
    """``Linear``: weight ``[:out, :in]``, bias ``[:out]``."""

    bound_type = nn.Linear
    largest_arguments = ('in_features', 'out_features')
    fixed_arguments = ('bias', *_FACTORY)
    input_width_argument, output_width_argument = 'in_features', 'out_features'
    output_dim = -1

    @classmethod
    def width_roles(cls, arguments: Arguments):
        return ('in_features',), ('out_features',)

    def run(self, args: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
        in_features, out_features = args['in_features'], args['out_features']
        bias = _prefix(self.layer.bias, out_features)
        return F.linear(x, self.layer.weight[:out_features, :in_features], bias)

    def sliced_state(self, args: dict[str, Any]) -> dict[str, torch.Tensor]:
        out_features = args['out_features']
        state = {'weight': self.layer.weight[:out_features, :args['in_features']]}
        if self.layer.bias is not None:
            state['bias'] = self.layer.bias[:out_features]
        return {name: tensor.detach().clone() for name, tensor in state.items()}


class _SlicedBatchNorm(SlicedOp):
    """``BatchNorm{1,2,3}d``: the first ``C`` affine parameters and running statistics (updated in place)."""

    largest_arguments = ('num_features',)
    fixed_arguments = ('eps', 'momentum', 'affine', 'track_running_stats', *_FACTORY)
    input_width_argument = output_width_argument = 'num_features'

    @classmethod
    def width_roles(cls, arguments: Arguments):
        return (), ('num_features',)

    def run(self, args: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
        bn, channels = self.layer, args['num_features']
        factor = 0.0 if bn.momentum is None else bn.momentum
        if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
            bn.num_batches_tracked.add_(1)  # as nn.BatchNorm does: momentum None means a cumulative average
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
        stats = bn.running_mean is not None and (not bn.training or bn.track_running_stats)
        return F.batch_norm(x, bn.running_mean[:channels] if stats else None,
                            bn.running_var[:channels] if stats else None,
                            _prefix(bn.weight, channels), _prefix(bn.bias, channels),
                            bn.training or bn.running_mean is None, factor, bn.eps)

    def sliced_state(self, args: dict[str, Any]) -> dict[str, torch.Tensor]:
        channels = args['num_features']
        state = {name: tensor[:channels] for name, tensor in self.layer.state_dict().items() if tensor.dim() == 1}
        if 'num_batches_tracked' in self.layer.state_dict():
            state['num_batches_tracked'] = self.layer.num_batches_tracked
        return {name: tensor.detach().clone() for name, tensor in state.items()}


class SlicedBatchNorm1d(_SlicedBatchNorm):
    bound_type = nn.BatchNorm1d


class SlicedBatchNorm2d(_SlicedBatchNorm):
    bound_type = nn.BatchNorm2d


class SlicedBatchNorm3d(_SlicedBatchNorm):
    bound_type = nn.BatchNorm3d


class SlicedLayerNorm(SlicedOp):
    """``LayerNorm`` over the last dimension: the first ``C`` features, normalised over those ``C``."""

    bound_type = nn.LayerNorm
    largest_arguments = ('normalized_shape',)
    fixed_arguments = ('eps', 'elementwise_affine', 'bias', *_FACTORY)
    input_width_argument = output_width_argument = 'normalized_shape'
    output_dim = -1

    @classmethod
    def accepts(cls, arguments: dict[str, Any]) -> bool:
        return super().accepts(arguments) and not isinstance(arguments['normalized_shape'], (tuple, list))

    @classmethod
    def width_roles(cls, arguments: Arguments):
        return ('normalized_shape',), ()

    def run(self, args: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
        features, ln = args['normalized_shape'], self.layer
        return F.layer_norm(x, (features,), _prefix(ln.weight, features), _prefix(ln.bias, features), ln.eps)

    def output_width(self, args: dict[str, Any]) -> int | None:
        return args['normalized_shape']

    def sliced_state(self, args: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {name: tensor[:args['normalized_shape']].detach().clone()
                for name, tensor in self.layer.state_dict().items()}


class SlicedDropout(SlicedOp):
    """Any dropout layer: the sampled ``p`` (no weights)."""

    bound_type = _DropoutNd
    fixed_arguments = ('inplace',)

    def run(self, args: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
        self.layer.p = args['p']
        return self.layer(x)

    def sliced_state(self, args: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {}


def _depthwise(arguments: dict[str, Any]) -> bool:
    """Whether ``groups`` equals both channel counts for every value of the labels (a depthwise convolution)."""
    groups = arguments.get('groups', 1)
    if not is_choice(groups) and groups == 1:
        return False
    values = Arguments({name: arguments[name] for name in ('in_channels', 'out_channels', 'groups')}, 'conv')
    return all(found['in_channels'] == found['out_channels'] == found['groups']
               for found in (values.at_values(v) for v in values.combinations()))


def trim_to_input(weight: torch.Tensor, sizes: Sequence[int], stride: Any, padding: Any, dilation: Any
                  ) -> tuple[torch.Tensor, Any]:
    """The kernel without the taps that meet only zero padding at input ``sizes``, and the padding that keeps the
    output the same: an exact result at a lower cost on small feature maps (a 7x7 kernel on the 1x1 and 2x2 maps
    of a network's last stages at 32x32 inputs is its centre tap or 3x3 centre). Unchanged where the trimmed
    kernel would need asymmetric padding, or ``padding`` is a string. The same number of taps goes off both ends
    (torch's CPU convolutions crashed on some kernels left even-sized and off-centre).
    """
    if isinstance(padding, str):
        return weight, padding
    n = weight.dim() - 2
    stride, dilation, trimmed = _tuple(stride, n), _tuple(dilation, n), list(_tuple(padding, n))
    for dim, size in enumerate(sizes):
        k, s, p, d = weight.shape[2 + dim], stride[dim], trimmed[dim], dilation[dim]
        out = (size + 2 * p - d * (k - 1) - 1) // s + 1
        first = max(0, -(((out - 1) * s - p) // d))  # first tap that meets input: ceil((p - (out-1)s) / d)
        last = min(k - 1, (size - 1 + p) // d)  # last tap that meets input
        cut = min(first, k - 1 - last)  # as many taps off each end (odd kernels stay odd and centred)
        kept, left = k - 2 * cut, p - cut * d
        if out < 1 or cut < 1 or first > last or left < 0 or (size + 2 * left - d * (kept - 1) - 1) // s + 1 != out:
            continue
        weight, trimmed[dim] = weight.narrow(2 + dim, cut, kept), left
    return weight, tuple(trimmed)


def _prefix(parameter: torch.Tensor | None, width: int) -> torch.Tensor | None:
    """The first ``width`` entries of a one-dimensional parameter (``None`` stays ``None``)."""
    return sliced_parameter(parameter, (slice(width),))


def _tuple(value: Any, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


SLICED_LAYERS = [SlicedConv2d, SlicedConv1d, SlicedConv3d, SlicedLinear, SlicedBatchNorm2d, SlicedBatchNorm1d,
                 SlicedBatchNorm3d, SlicedLayerNorm, SlicedDropout]
"""The slicing rules, in the order the mutation hooks try them."""
