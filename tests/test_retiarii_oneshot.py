"""NNI 2.9's ProxylessNAS example (``examples/nas/oneshot/proxylessnas``), written here the way it builds its space
and search, with only the imports changed: ``@basic_unit`` ops, a plain ``nn.Module`` with one ``LayerChoice`` per
block, ``ProxylessTrainer`` with ``main.py``'s arguments, then ``with fixed_arch(json_path)`` to rebuild it."""

from __future__ import annotations

import json
from collections import OrderedDict

import pytest
import torch
from torchvision import transforms
from torchvision.datasets import FakeData

import nni_proxyless.retiarii.nn.pytorch as nn
from nni.nas.nn.pytorch import LayerChoice as NNILayerChoice
from nni_proxyless.retiarii.fixed import fixed_arch
from nni_proxyless.retiarii.oneshot.pytorch import ProxylessTrainer
from nni_proxyless.retiarii.serializer import basic_unit


@basic_unit
class ZeroLayer(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return torch.zeros_like(x[:, :, ::self.stride, ::self.stride])


class ConvLayer(nn.Module):
    """Like the example's Base2DLayer: its modules gathered with ``nn.Sequential(self._modules)``."""

    def __init__(self, in_channels, out_channels, kernel_size, stride):
        super().__init__()
        self.add_module('conv', nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2))
        self.add_module('bn', nn.BatchNorm2d(out_channels))
        self.add_module('act', nn.ReLU6())
        self.sequence = nn.Sequential(self._modules)

    def forward(self, x):
        return self.sequence(x)


class SearchNet(nn.Module):
    """A LayerChoice per block, labelled like the example's (``s{stage}_c{cell}``)."""

    def __init__(self, width=8, n_classes=10):
        super().__init__()
        self.first_conv = ConvLayer(3, width, 3, 2)
        blocks = []
        for stage in range(2):
            for cell in range(2):
                ops = [ConvLayer(width, width, 3, 1), ConvLayer(width, width, 5, 1), ZeroLayer(1)]
                blocks.append(nn.LayerChoice(ops, label=f's{stage}_c{cell}'))
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, x):
        x = self.first_conv(x)
        for block in self.blocks:
            x = x + block(x)
        return self.classifier(self.pool(x).flatten(1))


def accuracy(output, target, topk=(1,)):
    _, pred = output.topk(max(topk), 1, True, True)
    correct = pred.t().eq(target.view(1, -1).expand_as(pred.t()))
    return {f'acc{k}': correct[:k].reshape(-1).float().sum(0).item() / target.size(0) for k in topk}


def test_v29_example_searches_exports_and_rebuilds_with_fixed_arch(tmp_path, monkeypatch):
    """The search runs on FakeData with main.py's arguments, exports a dict of candidate indices to JSON, and
    ``fixed_arch`` on that file builds the chosen candidate of every block and nothing else."""
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    model = SearchNet()
    dataset = FakeData(size=32, image_size=(3, 16, 16), num_classes=10, transform=transforms.ToTensor())
    optimizer = torch.optim.SGD([{'params': [p for n, p in model.named_parameters() if 'bn' not in n],
                                  'weight_decay': 4e-5},
                                 {'params': [p for n, p in model.named_parameters() if 'bn' in n],
                                  'weight_decay': 0}], lr=0.05, momentum=0.9, nesterov=True)
    trainer = ProxylessTrainer(model, loss=torch.nn.CrossEntropyLoss(), dataset=dataset, optimizer=optimizer,
                               metrics=lambda output, target: accuracy(output, target, topk=(1, 5,)),
                               num_epochs=2, log_frequency=10, grad_reg_loss_type='add#linear',
                               grad_reg_loss_params={'lambda': 0.1}, applied_hardware=None,
                               dummy_input=(1, 3, 224, 224), ref_latency=None)
    trainer.fit()
    json.dump(trainer.export(), open('checkpoint.json', 'w'))
    arch = json.load(open('checkpoint.json'))
    assert sorted(arch) == ['s0_c0', 's0_c1', 's1_c0', 's1_c1'] and all(v in (0, 1, 2) for v in arch.values())
    with fixed_arch('checkpoint.json'):
        retrained = SearchNet()
    kinds = {0: (ConvLayer, 3), 1: (ConvLayer, 5), 2: (ZeroLayer, None)}
    for block, label in zip(retrained.blocks, ['s0_c0', 's0_c1', 's1_c0', 's1_c1']):
        kind, kernel = kinds[arch[label]]
        assert type(block) is kind and (kernel is None or block.conv.kernel_size == (kernel, kernel))
    assert not any(isinstance(m, NNILayerChoice) for m in retrained.modules())
    assert retrained(torch.zeros(2, 3, 16, 16)).shape == (2, 10)


def test_fixed_arch_refuses_a_missing_or_broken_file(tmp_path):
    """fixed_arch names a missing file, and a file that is not a JSON dict, with what it should hold."""
    with pytest.raises(FileNotFoundError, match='no file'):
        fixed_arch(tmp_path / 'none.json')
    (tmp_path / 'bad.json').write_text('[1, 2]')
    with pytest.raises(ValueError, match=r'dict \{label: chosen value\}'):
        fixed_arch(tmp_path / 'bad.json')


def test_basic_unit_is_a_marker_and_sequential_takes_a_dict():
    """@basic_unit returns the class itself; nn.Sequential(dict) keeps the names and order of the modules."""
    assert basic_unit(ZeroLayer) is ZeroLayer and ZeroLayer._nni_basic_unit
    with pytest.raises(TypeError, match='subclass of torch.nn.Module'):
        basic_unit(int)
    sequence = nn.Sequential({'b': nn.ReLU(), 'a': nn.Tanh()})
    assert list(OrderedDict(sequence.named_children())) == ['b', 'a']
