"""Every space of NNI's one-shot hub test (built with the same arguments), plus NNI's own one-shot unit-test
spaces and its "Hello, NAS!" tutorial space: a short search runs, and the exports are a dict the original space's
``freeze`` accepts and an instance that runs. FakeData, batches of 2, one epoch. On the hub spaces, the top-10
export also stays small with flat and with random logits, and the instance holds nothing of NNI and gives its
outputs after each route of docs/deploy.md (whole-module save, TorchScript; torch.export and ONNX on a subset)."""

from __future__ import annotations

import copy
import tracemalloc
from typing import NamedTuple

import nni
import nni.nas.hub.pytorch as hub
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms
from torchvision.datasets import FakeData

from nni.nas.evaluator.pytorch import Classification, DataLoader
from nni.nas.nn.pytorch import (Cell, InputChoice, LayerChoice, ModelSpace, MutableBatchNorm2d, MutableConv2d,
                                MutableDropout, MutableLinear, ParametrizedModule, Repeat)
from nni.nas.space import RawFormatModelSpace
from nni_proxyless import Proxyless
from nni_proxyless.arch import ArchParameters
from nni_proxyless.export import Architecture, ExportedModelSpace, top_k
from nni_proxyless.ops import _scriptable
from nni_proxyless.supernet import build_supernet

from conftest import run_search
from deploy_tools import assert_deploys, assert_plain

NDS = {'nasnet': hub.NASNet, 'enas': hub.ENAS, 'amoeba': hub.AmoebaNet, 'pnas': hub.PNAS, 'darts': hub.DARTS}
HUB_TEST = ['nasbench201', 'mobilenetv3', 'mobilenetv3_small', 'proxylessnas', 'shufflenet', 'autoformer',
            'nasnet', 'enas', 'amoeba', 'pnas', 'darts',
            'darts_smalldepth', 'darts_depth', 'darts_width', 'darts_width_smalldepth', 'darts_width_depth',
            'darts_imagenet', 'darts_width_smalldepth_imagenet',
            'enas_smalldepth', 'enas_depth', 'enas_width', 'enas_width_smalldepth', 'enas_width_depth',
            'enas_imagenet', 'enas_width_smalldepth_imagenet', 'pnas_width_smalldepth', 'amoeba_width_smalldepth']
"""NNI's ``test/algo/nas/oneshot/test_hub.py`` list (nasbench101 is commented out there too)."""


def hub_space(alias: str) -> tuple[ModelSpace, tuple[int, ...], int]:
    """The space as NNI's hub test builds it, with an input size it runs on and its number of classes."""
    if alias == 'nasbench201':
        return hub.NasBench201(), (3, 32, 32), 10
    if alias == 'mobilenetv3':
        return hub.MobileNetV3Space(), (3, 32, 32), 1000
    if alias == 'mobilenetv3_small':
        return hub.MobileNetV3Space(width_multipliers=(0.75, 1, 1.5), expand_ratios=(4, 6)), (3, 32, 32), 1000
    if alias == 'proxylessnas':
        return hub.ProxylessNAS(), (3, 32, 32), 1000
    if alias == 'shufflenet':
        return hub.ShuffleNetSpace(), (3, 32, 32), 1000
    if alias == 'autoformer':
        return hub.AutoformerSpace(), (3, 224, 224), 1000
    num_cells = (4, 8) if '_smalldepth' in alias else (8, 12) if '_depth' in alias else 8
    width = (8, 16) if '_width' in alias else 16
    dataset = 'imagenet' if '_imagenet' in alias else 'cifar'
    space = NDS[alias.split('_')[0]](width=width, num_cells=num_cells, dataset=dataset)
    return space, (3, 64, 64) if dataset == 'imagenet' else (3, 32, 32), 10 if dataset == 'cifar' else 1000


def _evaluator(size: tuple[int, ...], classes: int, labels: int | None = None) -> Classification:
    data = FakeData(4, size, num_classes=labels or classes, transform=transforms.ToTensor(),
                    random_offset=1)
    return Classification(train_dataloaders=DataLoader(data, batch_size=2),
                          val_dataloaders=DataLoader(data, batch_size=2),
                          num_classes=classes, max_epochs=1, accelerator='cpu', enable_progress_bar=False,
                          logger=False, enable_checkpointing=False, enable_model_summary=False,
                          num_sanity_val_steps=0)


class Searched(NamedTuple):
    """What :func:`_search_and_export` gives: the exported dict, the architecture parameters, and the exported
    instance (eval mode) with an input it runs on."""
    exported: dict
    arch: ArchParameters
    instance: nn.Module
    x: torch.Tensor


def _search_and_export(make, size, classes, tmp_path, inputs=None) -> Searched:
    """A short search (architecture step every batch), then both exports."""
    torch.manual_seed(0)
    strategy = Proxyless(arch_update_every=1, seed=0)
    exp = run_search(make(), strategy, _evaluator(size, classes), tmp_path)
    exported = exp.export_top_models(top_k=1, formatter='dict')[0]
    x = inputs if inputs is not None else torch.randn(2, *size)
    make().freeze(dict(exported))  # NNI validates the sample against the original space
    subnet = exp.export_top_models(top_k=1, formatter='instance')[0].eval()
    with torch.no_grad():
        output = subnet(x)
    assert output.shape == (2, classes) and torch.isfinite(output).all()
    return Searched(exported, strategy.arch, subnet, x)


_SEARCHED: dict[str, ArchParameters] = {}
"""Each hub space's architecture parameters, kept by the search test for the top-k test (which builds them
when it runs alone)."""

_EXPORTED: dict[str, Searched] = {}
"""Each hub space's search, kept by the search test for the deployment tests (which export without a search
when they run alone)."""


@pytest.mark.parametrize('alias', HUB_TEST)
def test_hub_space_searches_and_exports(alias, tmp_path):
    """The search runs on the space as NNI's hub test builds it; the export is a valid, runnable subnet."""
    space, size, classes = hub_space(alias)
    searched = _search_and_export(lambda: hub_space(alias)[0], size, classes, tmp_path)
    _SEARCHED[alias], _EXPORTED[alias] = searched.arch, searched
    assert set(searched.exported) <= set(space.simplify())


@pytest.mark.parametrize('alias', HUB_TEST)
def test_hub_space_top_10_is_small_under_any_distribution(alias):
    """Flat logits (every label uniform, as before any architecture step) and random ones: ``top_k(10)`` gives 10
    distinct architectures, most probable first, the first being every used label's argmax, with a tracemalloc
    peak under 100 MB."""
    if alias not in _SEARCHED:
        _SEARCHED[alias] = ArchParameters(seed=0)
        build_supernet(hub_space(alias)[0], _SEARCHED[alias])
    arch = _SEARCHED[alias]
    gen = torch.Generator().manual_seed(0)
    for flat in (True, False):
        with torch.no_grad():
            for logit in arch.parameters():
                logit.copy_(torch.zeros(len(logit)) if flat else torch.randn(len(logit), generator=gen))
        tracemalloc.start()
        try:
            found = top_k(arch, 10)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 100 * 2 ** 20
        assert len({repr(sorted(a.items())) for a in found}) == 10  # InputChoice values are lists
        assert all(x.probability >= y.probability for x, y in zip(found, found[1:]))
        argmax = arch.argmax()
        assert found[0] == {label: value for label, value in argmax.items() if arch.is_active(label, argmax)}


def _export_of(alias: str) -> Searched:
    """The search test's export of the space, or (the test run alone) the supernet's top-1 at its initial
    architecture parameters, exported as ``formatter='instance'`` does, without a search."""
    if alias not in _EXPORTED:
        space, size, _ = hub_space(alias)
        torch.manual_seed(0)
        arch = ArchParameters(seed=0)
        supernet = build_supernet(space, arch)
        architecture = top_k(arch, 1)[0]
        instance = ExportedModelSpace(RawFormatModelSpace(supernet, None), supernet,
                                      architecture).executable_model().eval()
        _EXPORTED[alias] = Searched(architecture, arch, instance, torch.randn(2, *size))
    return _EXPORTED[alias]


DEPLOY_SUBSET = ['mobilenetv3', 'autoformer', 'darts_width_smalldepth', 'nasbench201', 'shufflenet', 'proxylessnas']
"""Every kind of mixed op frozen: value choices sliced (widths, kernels, transformer dimensions), Repeat depths,
LayerChoice, NDS cells (with a searched width and depth), NAS-Bench-201's cell of LayerChoices."""


@pytest.mark.parametrize('alias', HUB_TEST)
def test_hub_export_holds_nothing_of_nni(alias):
    """No attribute of the exported instance holds an NNI choice or expression or NNI's bookkeeping, and its
    layers are torch's where the space had NNI's Mutable<X>."""
    assert_plain(_export_of(alias).instance)


@pytest.mark.parametrize('alias', HUB_TEST)
def test_hub_export_saves_and_loads(alias, tmp_path):
    """torch.save of the whole instance, then torch.load, gives the instance's outputs."""
    searched = _export_of(alias)
    assert_deploys('save', searched.instance, searched.x, tmp_path)


@pytest.mark.parametrize('alias', HUB_TEST)
def test_hub_export_scripts(alias, tmp_path):
    """torch.jit.script of the instance (saved and loaded) gives the instance's outputs."""
    searched = _export_of(alias)
    assert_deploys('script', searched.instance, searched.x, tmp_path)


def test_nasbench201_export_with_pooling_scripts(tmp_path):
    """NAS-Bench-201 at an architecture of average pooling only (pooling inside a cell has no preprocessing)
    scripts, and gives the instance's outputs."""
    torch.manual_seed(0)
    supernet = build_supernet(hub.NasBench201(), ArchParameters(seed=0))
    architecture = Architecture({label: 'avg_pool_3x3' for label in hub.NasBench201().simplify()}, 1.0)
    instance = ExportedModelSpace(RawFormatModelSpace(supernet, None), supernet,
                                  architecture).executable_model().eval()
    assert_deploys('script', instance, torch.randn(2, 3, 32, 32), tmp_path)


@pytest.mark.parametrize('alias', HUB_TEST)
def test_hub_export_computes_what_nni_forward_computes(alias):
    """The instance's output equals, exactly, the output of a copy whose modules of NNI's hub have their NNI
    class back (NNI's own forward code, where the export replaced it with one TorchScript compiles)."""
    searched = _export_of(alias)
    nni_forward = copy.deepcopy(searched.instance)
    for module in nni_forward.modules():
        if type(module).__module__ == _scriptable.__name__:
            module.__class__ = next(c for c in type(module).__mro__ if c.__module__.startswith('nni.'))
    with torch.no_grad():
        assert torch.equal(searched.instance(searched.x), nni_forward(searched.x))


@pytest.mark.parametrize('route', ['export', 'onnx'])
@pytest.mark.parametrize('alias', DEPLOY_SUBSET)
def test_hub_export_exports(alias, route, tmp_path):
    """torch.export (saved, loaded, ``.module()``) and ONNX (run by ONNX Runtime) give the instance's outputs."""
    searched = _export_of(alias)
    assert_deploys(route, searched.instance, searched.x, tmp_path)


class HelloNas(ModelSpace):
    """NNI's "Hello, NAS!" tutorial space (``examples/tutorials/hello_nas.py``), as written there."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = LayerChoice([nn.Conv2d(32, 64, 3, 1), _DepthwiseSeparable(32, 64)], label='conv2')
        self.dropout1 = MutableDropout(nni.choice('dropout', [0.25, 0.5, 0.75]))
        self.dropout2 = nn.Dropout(0.5)
        feature = nni.choice('feature', [64, 128, 256])
        self.fc1 = MutableLinear(9216, feature)
        self.fc2 = MutableLinear(feature, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(self.conv2(x), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.fc2(self.dropout2(F.relu(self.fc1(x))))
        return F.log_softmax(x, dim=1)


class _DepthwiseSeparable(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.depthwise = nn.Conv2d(in_ch, in_ch, kernel_size=3, groups=in_ch)
        self.pointwise = nn.Conv2d(in_ch, out_ch, kernel_size=1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


def test_hello_nas_space(tmp_path):
    """The tutorial's space: a dropout rate and a width shared by two linear layers are searched; the export saves
    and scripts."""
    searched = _search_and_export(HelloNas, (1, 28, 28), 10, tmp_path)
    assert set(searched.exported) == {'conv2', 'dropout', 'feature'}
    for route in ('save', 'script'):
        assert_deploys(route, searched.instance, searched.x, tmp_path)


# NNI's one-shot unit-test spaces (test/ut/nas/nn/models.py in microsoft/nni), written again here.

class _SimpleNet(ModelSpace):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = LayerChoice([nn.Conv2d(32, 64, 3, 1), _DepthwiseSeparable(32, 64)], label='conv')
        self.dropout1 = LayerChoice([nn.Dropout(.25), nn.Dropout(.5), nn.Dropout(.75)], label='dropout')
        hidden = nni.choice('hidden', [32, 64, 128])
        self.fc1 = MutableLinear(9216, hidden)
        self.fc2 = MutableLinear(hidden, 10)
        self.rpfc = nn.Linear(10, 10)
        self.input_ch = InputChoice(2, 1, label='input')

    def forward(self, x):
        x = F.max_pool2d(self.conv2(F.relu(self.conv1(x))), 2)
        x = self.fc2(F.relu(self.fc1(torch.flatten(self.dropout1(x), 1))))
        return F.log_softmax(self.input_ch([x, self.rpfc(x)]), dim=1)


class _ValueChoiceConvNet(ModelSpace):
    def __init__(self, repeat: bool = False, custom: bool = False):
        super().__init__()
        ch1, kernel = nni.choice('ch1', [16, 32]), nni.choice('kernel', [3, 5])
        self.conv1 = MutableConv2d(1, ch1, kernel, padding=kernel // 2)
        self.batch_norm = _MyOp(ch1) if custom else MutableBatchNorm2d(ch1)
        self.conv2 = MutableConv2d(ch1, 64, 3, padding=1 if repeat or custom else 0)
        self.fc = nn.Linear(64, 10)
        self.rpfc = Repeat(nn.Linear(10, 10), (1, 4), label='rep') if repeat else nn.Identity()
        self.dropout1 = LayerChoice([nn.Dropout(.25), nn.Dropout(.5), nn.Dropout(.75)], label='dropout') \
            if custom else nn.Identity()

    def forward(self, x):
        x = F.relu(self.batch_norm(self.conv1(x)))
        x = torch.mean(F.max_pool2d(self.conv2(x), 2), (2, 3))
        return F.log_softmax(self.rpfc(self.fc(x)), dim=1)


class _MyOp(ParametrizedModule):
    def __init__(self, some_ch):
        super().__init__()
        self.some_ch = some_ch
        self.batch_norm = nn.BatchNorm2d(some_ch)

    def forward(self, x):
        return self.batch_norm(x)


class _CellNet(ModelSpace):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 5, 7, stride=4)
        self.cells = Repeat(
            lambda index: Cell({
                'conv1': lambda _, __, inp: nn.Conv2d(
                    (5 if index == 0 else 3 * 4) if inp is not None and inp < 1 else 4, 4, 1),
                'conv2': lambda _, __, inp: nn.Conv2d(
                    (5 if index == 0 else 3 * 4) if inp is not None and inp < 1 else 4, 4, 3, padding=1),
            }, 3, merge_op='loose_end', label=f'cell{index}'), (1, 3), label='rep')
        self.fc = nn.Linear(3 * 4, 10)

    def forward(self, x):
        x = torch.mean(self.cells(self.stem(x)), (2, 3))
        return F.log_softmax(self.fc(x), dim=1)


UNIT_TEST_SPACES = {'simple_value_choice': _SimpleNet, 'value_choice': _ValueChoiceConvNet,
                    'repeat': lambda: _ValueChoiceConvNet(repeat=True),
                    'custom_op': lambda: _ValueChoiceConvNet(custom=True), 'cell': _CellNet}


@pytest.mark.parametrize('name', list(UNIT_TEST_SPACES))
def test_nni_unit_test_space(name, tmp_path):
    """NNI's one-shot unit-test spaces on MNIST-sized inputs; their exports save and script."""
    searched = _search_and_export(UNIT_TEST_SPACES[name], (1, 28, 28), 10, tmp_path)
    assert searched.exported
    assert_plain(searched.instance)
    for route in ('save', 'script'):
        assert_deploys(route, searched.instance, searched.x, tmp_path)
