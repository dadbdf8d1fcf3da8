"""NNI hub modules whose forward TorchScript cannot compile, as an export gives them: a subclass whose forward
compiles and computes what NNI's forward computes. The hub spaces' exports are tested in test_hub_spaces.py; here,
the variants their defaults do not build."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from nni.nas.hub.pytorch import autoformer, nasbench201

from nni_proxyless.ops import _scriptable
from nni_proxyless.ops.subnet import subnet_of


def _exported(module: nn.Module) -> nn.Module:
    """``module`` as an export gives it (copied, made plain), in eval mode."""
    return subnet_of(module, {}).eval()


def _with_nni_forwards(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose modules of a class of ``_scriptable`` have their NNI class back."""
    copied = copy.deepcopy(module)
    for child in copied.modules():
        if type(child).__module__ == _scriptable.__name__:
            child.__class__ = next(c for c in type(child).__mro__ if c.__module__.startswith('nni.'))
    return copied


@pytest.mark.parametrize('rpe', [True, False])
@pytest.mark.parametrize('pre_norm', [True, False])
def test_autoformer_layer_scripts_and_computes_nni_forward(pre_norm, rpe):
    """An AutoFormer encoder layer with and without pre-norm and relative position embeddings: its export's
    output is NNI's forward's, exactly, and TorchScript's within 1e-5."""
    torch.manual_seed(0)
    layer = _exported(autoformer.TransformerEncoderLayer(embed_dim=32, num_heads=2, head_dim=16, pre_norm=pre_norm,
                                                         rpe=rpe, rpe_length=4))
    assert isinstance(layer, _scriptable.ScriptableTransformerEncoderLayer)
    x = torch.randn(2, 17, 32)  # a class token and 4 x 4 patches
    with torch.no_grad():
        output = layer(x)
        assert torch.equal(output, _with_nni_forwards(layer)(x))
        torch.testing.assert_close(torch.jit.script(layer)(x), output, rtol=0, atol=1e-5)


@pytest.mark.parametrize('channels', [(8, 8), (8, 16)])
def test_nasbench201_pooling_scripts_and_computes_nni_forward(channels):
    """NAS-Bench-201's pooling without (in a cell) and with its 1x1 preprocessing."""
    torch.manual_seed(0)
    pooling = _exported(nasbench201.Pooling(*channels, 1, 'avg'))
    x = torch.randn(2, channels[0], 8, 8)
    with torch.no_grad():
        output = pooling(x)
        assert torch.equal(output, _with_nni_forwards(pooling)(x))
        assert torch.equal(torch.jit.script(pooling)(x), output)


def test_subclass_of_an_nni_class_keeps_its_class():
    """Only NNI's own classes are replaced: a subclass keeps its class and its forward."""

    class MaxOnly(nasbench201.Pooling):
        def forward(self, x):
            return self.op(x)

    assert type(_exported(nasbench201.Pooling(8, 8, 1, 'max'))) is _scriptable.ScriptablePooling
    assert type(_exported(MaxOnly(8, 8, 1, 'max'))) is MaxOnly


class _PairBlock(nn.Module):
    """A block of an NDS stage: takes ``[pprev, prev]`` and passes on ``[prev, new]``."""

    def __init__(self, index: int):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        return [x[1], self.conv(x[0] + x[1])]


def test_nds_stage_of_fixed_depth_scripts_and_computes_nni_forward():
    """A stage of a fixed number of blocks runs them all, as NNI's forward does, and compiles."""
    from nni.nas.hub.pytorch import nasnet
    torch.manual_seed(0)
    stage = _exported(nasnet.NDSStage(_PairBlock, 3))
    assert isinstance(stage, _scriptable.ScriptableNDSStage)
    inputs = [torch.randn(1, 4, 5, 5), torch.randn(1, 4, 5, 5)]
    expected = _with_nni_forwards(stage)(inputs)
    for got in (stage(inputs), torch.jit.script(stage)(inputs)):
        assert all(torch.equal(a, b) for a, b in zip(got, expected))


def test_nds_stage_of_searched_depth_keeps_nni_class():
    """A stage whose depth is still a choice runs only some of its blocks: it is not given the scriptable class
    (a searched stage exports as the list sequential of its chosen blocks instead)."""
    from nni.nas.hub.pytorch import nasnet
    from nni.nas.nn.pytorch import ModelSpace

    class Space(ModelSpace):
        def __init__(self):
            super().__init__()
            self.stage = nasnet.NDSStage(_PairBlock, (1, 3), label='depth')

    assert _scriptable.scriptable_class(Space().stage) is None
    assert _scriptable.scriptable_class(nasnet.NDSStage(_PairBlock, 2)) is _scriptable.ScriptableNDSStage
