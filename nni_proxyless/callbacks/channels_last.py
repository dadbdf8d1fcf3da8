"""Training in the channels-last memory format (``Proxyless(channels_last=True)``), as a Lightning callback."""

from __future__ import annotations

from typing import Any

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from torch import nn

__all__ = ['ChannelsLast']


class ChannelsLast(Callback):
    """Train a network in the channels-last (NHWC) memory format: faster convolutions on GPUs with tensor cores.

    When the fit is set up (before the model moves to its device and before DDP wraps it), the network's 4-D
    parameters and buffers (convolution weights) are converted to ``torch.channels_last``, and a forward pre-hook
    converts its 4-D floating-point inputs, so every batch (weight steps, architecture steps, validation) enters in
    that format. At the end of the fit the hook is removed and the weights go back to the default format, so that
    exported subnets and later code see the network as it was. Values are unchanged; only the memory order
    differs (convolutions may pick other algorithms, so results can differ in the last bits).

    The network is the module's ``model`` (NNI's evaluators and one-shot modules), else the module itself.
    ``Proxyless(channels_last=True)`` adds this callback to the search.

    Example::

        from nni.nas.evaluator.pytorch import Classification
        from nni_proxyless.callbacks import ChannelsLast

        evaluator = Classification(..., accelerator='gpu', precision='bf16-mixed', callbacks=[ChannelsLast()])
    """

    def __init__(self) -> None:
        self._handle: Any = None
        self._network: nn.Module | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != 'fit' or self._handle is not None:
            return
        self._network = network_of(pl_module)
        self._network.to(memory_format=torch.channels_last)
        self._handle = self._network.register_forward_pre_hook(_channels_last_inputs)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != 'fit' or self._handle is None:
            return
        self._handle.remove()
        assert self._network is not None
        self._network.to(memory_format=torch.contiguous_format)
        self._handle, self._network = None, None


def network_of(pl_module: LightningModule) -> nn.Module:
    """The network a Lightning module trains: its ``model`` attribute when that is a module, else itself."""
    try:
        model = getattr(pl_module, 'model', None)
    except (TypeError, RuntimeError):  # NNI: a one-shot module checks its model space; a bare module has none
        model = None
    return model if isinstance(model, nn.Module) else pl_module


def _channels_last_inputs(module: nn.Module, args: tuple) -> tuple:
    return tuple(_converted(arg) for arg in args)


def _converted(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.dim() == 4 and value.is_floating_point():
        return value.contiguous(memory_format=torch.channels_last)
    return value
