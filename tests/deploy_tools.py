"""An exported instance through each deployment route of docs/deploy.md, compared with the instance itself, and a
small space of every kind of choice to export."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from typing import List, Union

import nni
import pytest
import torch
from torch import nn

from nni.mutable import Mutable, MutableExpression
from nni.nas.nn.pytorch import LayerChoice, ModelSpace, MutableConv2d, MutableLinear, Repeat
from nni.nas.space import RawFormatModelSpace
from nni_proxyless.arch import ArchParameters
from nni_proxyless.export import Architecture, ExportedModelSpace
from nni_proxyless.ops.plain import NNI_BOOKKEEPING
from nni_proxyless.supernet import build_supernet


class DeploySpace(ModelSpace):
    """Value choices in MutableConv2d and MutableLinear (a kernel size, and a width with its padding written as an
    expression), a Repeat whose depth is an expression, a LayerChoice, a layer whose arguments hold no choice, and
    expressions kept in an attribute whose class annotation names NNI's types (as ``MobileNetV3Space.widths``; a
    conditional expression, as NNI's ``make_divisible`` writes, holds a lambda)."""

    widths: List[Union[int, MutableExpression[int]]]

    def __init__(self):
        super().__init__()
        width, kernel = nni.choice('width', [4, 8]), nni.choice('kernel', [3, 5])
        self.widths = [width, MutableExpression.condition(width > 4, width * 2, width)]
        self.stem = MutableConv2d(3, width, kernel, padding=kernel // 2)
        self.blocks = Repeat(lambda i: nn.Sequential(MutableConv2d(width, width, 3, padding=1), nn.ReLU()),
                             nni.choice('depth', [2, 4, 6]) // 2, label='blocks')
        self.act = LayerChoice({'relu': nn.ReLU(), 'tanh': nn.Tanh()}, label='act')
        self.fixed = MutableConv2d(width, width, 1)
        self.head = MutableLinear(width, 3)

    def forward(self, x):
        x = self.fixed(self.act(self.blocks(self.stem(x))))
        return self.head(x.mean((2, 3)))


def deploy_exports() -> ExportedModelSpace:
    """What ``export_top_models`` formats for a search of :class:`DeploySpace` that ended at an architecture other
    than the first values (no search runs: the supernet's weights are its initial ones)."""
    torch.manual_seed(0)
    supernet = build_supernet(DeploySpace(), ArchParameters(seed=0))
    architecture = Architecture({'width': 8, 'kernel': 5, 'depth': 4, 'act': 'tanh'}, probability=1.0)
    return ExportedModelSpace(RawFormatModelSpace(supernet, None), supernet, architecture)


ROUTES = ('save', 'script', 'export', 'onnx')
"""Whole-module ``torch.save``, TorchScript, ``torch.export``, ONNX (the ``dynamo=False`` exporter)."""

_TOLERANCE = {'save': 0.0, 'script': 1e-5, 'export': 1e-5, 'onnx': 1e-4}
"""Largest difference from the instance's output, relative to the output's largest magnitude (at least 1): a
pickled module runs the very same kernels; TorchScript and torch.export may fuse operations; ONNX Runtime has
kernels of its own, whose float32 rounding BatchNorm statistics recomputed on a few images amplify (running
variances of 1e-12 after the hub tests' 4-image search: 2.2e-5 on ProxylessNAS, 1.6e-5 with ONNX Runtime's graph
optimisations off)."""


def assert_deploys(route: str, model: nn.Module, x: torch.Tensor, tmp_path: Path) -> None:
    """``model`` (in eval mode) gives its own output on ``x`` after going through ``route`` and back from a file.

    Both run on one thread, as the package's own shape checks do: on a small, busy machine two threads contend
    (small operations up to ten times slower), and a model's output on two threads differs from its output on one
    (another order of summation: 5e-4 on MobileNetV3's logits of 270).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            expected = model(x)
            output = _ROUTES[route](model, x, tmp_path)
    finally:
        torch.set_num_threads(threads)
    if output is not None:  # None: ONNX checked, not run (onnxruntime missing)
        difference = (output - expected).abs().max().item()
        scale = max(1.0, expected.abs().max().item())
        assert difference <= _TOLERANCE[route] * scale, f'{route}: largest difference {difference:.3g} at {scale:.3g}'


def assert_plain(model: nn.Module) -> None:
    """No attribute of any module holds an NNI choice or expression, none keeps NNI's bookkeeping, and no layer is
    one of NNI's ``Mutable<X>`` classes (the root may stay the user's ``ModelSpace`` subclass: its forward)."""
    for name, module in model.named_modules():
        assert not set(NNI_BOOKKEEPING) & set(vars(module)), name
        assert getattr(type(module), '_bound_type', None) is None, (name, type(module))
        for attribute, value in vars(module).items():
            assert not _holds_mutable(value), f'{name or "root"}.{attribute} = {value!r}'


def _holds_mutable(value) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_holds_mutable(item) for item in value)
    if isinstance(value, dict):
        return any(_holds_mutable(item) for item in value.values())
    return isinstance(value, Mutable) and not isinstance(value, nn.Module)


def _saved(model: nn.Module, x: torch.Tensor, tmp_path: Path) -> torch.Tensor:
    torch.save(model, tmp_path / 'model.pt')
    # the whole module is pickled with its classes (torch's, NNI's, nni_proxyless's): torch.load's default
    # weights_only=True refuses anything but tensors and plain containers, so the file must come from a trusted source
    return torch.load(tmp_path / 'model.pt', weights_only=False)(x)


def _scripted(model: nn.Module, x: torch.Tensor, tmp_path: Path) -> torch.Tensor:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)(x)


def _exported(model: nn.Module, x: torch.Tensor, tmp_path: Path) -> torch.Tensor:
    torch.export.save(torch.export.export(model, (x,)), tmp_path / 'model.pt2')
    return torch.export.load(tmp_path / 'model.pt2').module()(x)


def _onnx(model: nn.Module, x: torch.Tensor, tmp_path: Path) -> torch.Tensor | None:
    if importlib.util.find_spec('onnx') is None:
        pytest.skip('onnx is not installed (pip install onnx onnxruntime, or the test extra)')
    import onnx
    path = tmp_path / 'model.onnx'
    # dynamo=True (torch's default) needs onnxscript; the TorchScript-based exporter needs neither it nor onnx
    torch.onnx.export(model, (x,), path, dynamo=False, input_names=['x'])
    onnx.checker.check_model(str(path))
    if importlib.util.find_spec('onnxruntime') is None:
        return None
    import onnxruntime
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return torch.from_numpy(session.run(None, {'x': x.numpy()})[0])


_ROUTES = {'save': _saved, 'script': _scripted, 'export': _exported, 'onnx': _onnx}
