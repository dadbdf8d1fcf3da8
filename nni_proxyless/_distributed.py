"""What a search needs from Lightning's DDP (gloo on CPU, NCCL on GPU) that Lightning does not do by itself.

Every step trains different candidates, so DDP must tolerate parameters without gradients. Lightning asks for
that at construction (``DDPStrategy(find_unused_parameters=True)``, or ``strategy='ddp_find_unused_parameters_true'``),
and the strategy belongs to the user's evaluator; so the search turns the option on in the strategy it is given,
before DDP wraps the model. Everything else goes through Lightning's strategy: the seed and the latency table
come from rank 0 (``trainer.strategy.broadcast``), and the architecture gradients, which the architecture step
computes with ``torch.autograd.grad`` outside DDP's gradient hooks, are averaged with ``trainer.strategy.reduce``.
"""

from __future__ import annotations

import logging
from typing import Any

from pytorch_lightning.strategies import DDPStrategy

from ._nni_internals import ddp_kwargs
__all__ = ['allow_unused_parameters']

_logger = logging.getLogger('nni.proxyless')


def allow_unused_parameters(strategy: Any) -> None:
    """Turn on DDP's ``find_unused_parameters`` (before the model is wrapped) if it is off."""
    if isinstance(strategy, DDPStrategy) and not ddp_kwargs(strategy).get('find_unused_parameters', False):
        ddp_kwargs(strategy)['find_unused_parameters'] = True
        _logger.info('DDP: find_unused_parameters turned on (each step trains only the sampled candidates).')
