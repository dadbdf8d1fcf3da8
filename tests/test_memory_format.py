"""``channels_last``: the network and its inputs in NHWC order while the search runs, values unchanged."""

from __future__ import annotations

import pytest
import torch
from pytorch_lightning import Callback

from nni.nas.evaluator.pytorch import Classification
from nni_proxyless import Proxyless
from nni_proxyless.callbacks import ChannelsLast

from conftest import ConvSpace, digits_evaluator, run_search

CHANNELS_LAST = torch.channels_last


def _conv_weights(network: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in network.parameters() if p.dim() == 4]


def _network() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3),
                               torch.nn.Flatten(), torch.nn.Linear(8 * 6 * 6, 10))


def test_conversion_keeps_values_and_is_undone():
    """After set-up the conv weights and the network's inputs are channels-last and the outputs equal the default
    format's (1e-5); after teardown the weights are back in the default format with the same values."""
    torch.manual_seed(0)
    module = Classification(num_classes=10).module
    module.set_model(_network())
    x = torch.randn(4, 3, 8, 8)
    before = module(x).detach()
    values = [w.detach().clone() for w in _conv_weights(module.model)]
    callback = ChannelsLast()
    callback.setup(None, module, 'fit')
    seen = []
    module.model.register_forward_pre_hook(lambda network, args: seen.append(args[0]))
    assert all(w.is_contiguous(memory_format=CHANNELS_LAST) for w in _conv_weights(module.model))
    torch.testing.assert_close(module(x), before, rtol=1e-5, atol=1e-5)
    assert seen[0].is_contiguous(memory_format=CHANNELS_LAST) and not seen[0].is_contiguous()
    callback.teardown(None, module, 'fit')
    weights = _conv_weights(module.model)
    assert all(w.is_contiguous() for w in weights) and all(torch.equal(w, v) for w, v in zip(weights, values))


class FormatProbe(Callback):
    """Records, at every training batch, whether a candidate's conv weight (8x8x3x3) is channels-last."""

    def __init__(self):
        self.seen: list[bool] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        weight = pl_module.training_module.model.conv1.candidates[0].weight
        self.seen.append(weight.is_contiguous(memory_format=CHANNELS_LAST))


@pytest.mark.parametrize('channels_last', [True, False])
def test_search_runs_channels_last_when_asked(tmp_path, channels_last):
    """Proxyless(channels_last=True): the weights are channels-last in every step, and back after the search."""
    probe = FormatProbe()
    strategy = Proxyless(seed=0, arch_update_every=2, channels_last=channels_last)
    run_search(ConvSpace(), strategy, digits_evaluator(epochs=1, limit_train_batches=4, callbacks=[probe]), tmp_path)
    assert probe.seen == [channels_last] * 4
    assert all(w.is_contiguous() for w in _conv_weights(strategy._supernet))


def test_channels_last_must_be_a_bool():
    """A non-boolean channels_last is refused, naming the value."""
    with pytest.raises(ValueError, match="channels_last must be True or False, got 'yes'"):
        Proxyless(channels_last='yes')
