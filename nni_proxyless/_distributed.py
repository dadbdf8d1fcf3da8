"""What a search needs under Lightning DDP (gloo on CPU, NCCL on GPU), on one or many nodes.

* Every step uses different candidates, so DDP must tolerate unused parameters: the search turns on
  ``find_unused_parameters`` when the user's DDP strategy did not.
* Every process draws the same paths from ``(seed, step)``: the seed and the latency table come from rank 0.
* Architecture gradients are averaged across processes by hand (the architecture step computes them with
  ``torch.autograd.grad``, outside DDP's gradient hooks), so the logits stay identical everywhere.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.distributed as dist
from pytorch_lightning.strategies import DDPStrategy

__all__ = ['allow_unused_parameters', 'from_rank_zero', 'average_gradients']

_logger = logging.getLogger('nni.proxyless')


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def allow_unused_parameters(strategy: Any) -> None:
    """Turn on DDP's ``find_unused_parameters`` (before the model is wrapped) if it is off."""
    if isinstance(strategy, DDPStrategy) and not strategy._ddp_kwargs.get('find_unused_parameters', False):
        strategy._ddp_kwargs['find_unused_parameters'] = True
        _logger.info('DDP: find_unused_parameters turned on (each step trains only the sampled candidates).')


def from_rank_zero(value: Any) -> Any:
    """``value`` as rank 0 has it (picklable objects), or ``value`` itself outside a process group."""
    if not _active():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Replace every parameter's gradient by its mean over processes (missing gradients count as zero)."""
    if not _active():
        return
    for param in params:
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        dist.all_reduce(param.grad)
        param.grad /= dist.get_world_size()
