"""Tests for NnMeterPredictor: kernel decomposition, batched prediction, finding the predictors, refusals.

The predictor packages are written by ``legacy_forests.py`` (forests fitted here, in nn-Meter's real file format);
scikit-learn's ``predict`` on those forests gives the expected kernel latencies. Expected feature rows
are derived by hand from nn-Meter 2.0's formulas (``params = cout * (k*k*cin + 1)``, ``flops = 2 * h/s * h/s *
params``; depthwise ``params = cout * (k*k + 1)``; fc ``flop = (2*cin + 1) * cout``).
"""

from __future__ import annotations

import logging
import pickle
import shutil
import time
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nni_proxyless.latency import ModuleCall, build_latency_table, create_predictor
from nni_proxyless.latency import _nnmeter_files
from nni_proxyless.latency._legacy_forest import LegacyForest, load_legacy_forest
from nni_proxyless.latency.nnmeter import NnMeterPredictor, UnsupportedOpError

from legacy_forests import Package, nnmeter_package  # noqa: F401  (a fixture)

DEVICE = 'cortexA76cpu_tflite21'


@pytest.fixture(scope='module')
def predictor(nnmeter_package: Package) -> NnMeterPredictor:
    """The cortexA76cpu_tflite21 predictor on the generated forests, through the public registry."""
    return create_predictor(DEVICE, predictor_dir=nnmeter_package.folder)


def _rows(predictor: NnMeterPredictor, module: nn.Module, *shape: int) -> list[tuple[str, tuple]]:
    """(predictor name, feature row) of every kernel of ``module`` on a random input of ``shape``."""
    kernels = predictor.kernels(ModuleCall(module, (torch.randn(shape),), {}))
    return [(k.name, k.features) for k in kernels]


class Residual(nn.Module):
    """relu(x + bn(conv1x1(x))): a conv-bn kernel and an add-relu kernel."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels)

    def forward(self, x):
        return F.relu(x + self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """x * sigmoid(conv(relu(conv(mean(x))))): one nn-Meter ``se`` kernel."""

    def __init__(self, channels: int):
        super().__init__()
        self.reduce, self.expand = nn.Conv2d(channels, channels // 4, 1), nn.Conv2d(channels // 4, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.expand(torch.relu(self.reduce(x.mean((2, 3), keepdim=True)))))


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle (view, transpose of dims 1 and 2, view)."""

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class Upsample(nn.Module):
    """A module nn-Meter cannot price: bilinear interpolation."""

    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode='bilinear')


def test_conv_bn_relu_is_one_kernel_with_hand_computed_features(predictor):
    """Conv2d(16, 32, 3, s2) + BN + ReLU at 32x32 is one conv-bn-relu row: params 32*(9*16+1), flops 2*16*16*params."""
    module = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True))
    # params = 32 * 145 = 4640 -> 0.00464; flops = 2 * 32/2 * 32/2 * 4640 = 2375680 -> / 2e6 = 1.18784
    assert _rows(predictor, module, 1, 16, 32, 32) == [
        ('conv-bn-relu', pytest.approx((32, 16, 32, 3, 2, 1.18784, 0.00464), rel=1e-12))]


def test_depthwise_conv_is_a_dwconv_kernel(predictor):
    """A conv with groups == in_channels, + BN + ReLU6, is one dwconv-bn-relu row with depthwise counts."""
    module = nn.Sequential(nn.Conv2d(32, 32, 3, 1, 1, groups=32, bias=False), nn.BatchNorm2d(32), nn.ReLU6())
    # params = 32 * (9 + 1) = 320 -> 0.00032; flops = 2 * 16 * 16 * 320 = 163840 -> 0.08192
    assert _rows(predictor, module, 1, 32, 16, 16) == [
        ('dwconv-bn-relu', pytest.approx((16, 32, 32, 3, 1, 0.08192, 0.00032), rel=1e-12))]


def test_classifier_head_is_gap_and_fc_and_free_ops_vanish(predictor):
    """Global pool + flatten + dropout + Linear(64, 10) is a global-avgpool row and an fc row, nothing else."""
    module = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5), nn.Identity(), nn.Linear(64, 10))
    # fc: flop = (2*64 + 1) * 10 = 1290; global-avgpool's inputh is always 1 in nn-Meter's features
    assert _rows(predictor, module, 1, 64, 7, 7) == [
        ('global-avgpool', (1, 64)), ('fc', pytest.approx((64, 10, 0.000645, 0.00129), rel=1e-12))]


def test_residual_add_then_relu_fuses_to_addrelu(predictor):
    """relu(x + bn(conv(x))) is a conv-bn kernel (priced as conv-bn-relu) and an addrelu [h, c, c] row."""
    kernels = predictor.kernels(ModuleCall(Residual(8), (torch.randn(1, 8, 16, 16),), {}))
    # conv 1x1, 8 -> 8 at 16x16: params = 8 * (8 + 1) = 72; flops = 2 * 16 * 16 * 72 = 36864
    assert [(k.op, k.name) for k in kernels] == [('conv-bn', 'conv-bn-relu'), ('add-relu', 'addrelu')]
    assert kernels[0].features == pytest.approx((16, 8, 8, 1, 1, 0.018432, 0.000072), rel=1e-12)
    assert kernels[1].features == (16, 8, 8)


@pytest.mark.parametrize('module, shape, expected', [
    (nn.Hardswish(), (1, 16, 112, 112), [('hswish', (112, 16))]),
    (nn.BatchNorm2d(72), (1, 72, 56, 56), [('bn', (56, 72))]),
    (nn.Sequential(nn.BatchNorm2d(72), nn.ReLU()), (1, 72, 56, 56), [('bnrelu', (56, 72))]),
    (ChannelShuffle(), (1, 16, 28, 28), [('channelshuffle', (28, 16))]),
    (SqueezeExcite(16), (1, 16, 14, 14), [('se', (14, 16))]),
], ids=['hswish', 'bn', 'bnrelu', 'channelshuffle', 'se'])
def test_single_kernel_modules(predictor, module, shape, expected):
    """Activations, BN, BN+ReLU, a channel shuffle and a whole SE block are one kernel with an [h, c] row."""
    assert _rows(predictor, module, *shape) == expected


def test_pools_and_concat(predictor):
    """Max and average pools are [h, cin, cout, ks, s] rows; a 2-way concat is [h, 2, c1, c2, 0, 0]."""
    class TwoPools(nn.Module):
        def __init__(self):
            super().__init__()
            self.max, self.avg = nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(3, 2, 1)

        def forward(self, x):
            return torch.cat([self.max(x), self.avg(x)], 1)

    assert _rows(predictor, TwoPools(), 1, 24, 56, 56) == [
        ('maxpool', (56, 24, 24, 3, 2)), ('avgpool', (56, 24, 24, 3, 2)), ('concat', (28, 2, 24, 24, 0, 0))]


def test_prediction_is_the_sum_of_the_kernel_forests(predictor, nnmeter_package):
    """A MobileNet stem+block and a classifier head predict the sums of scikit-learn's predictions of their kernels'
    hand-computed rows."""
    def reference_ms(kernel: str, row: list) -> float:
        return float(nnmeter_package.forests[kernel].predict([row])[0])

    body = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6(),   # stem at 224
                         nn.Conv2d(32, 32, 3, 1, 1, groups=32, bias=False), nn.BatchNorm2d(32), nn.ReLU6(),
                         nn.Conv2d(32, 16, 1, bias=False), nn.BatchNorm2d(16))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, 1000))
    calls = [ModuleCall(body, (torch.randn(1, 3, 224, 224),), {}),
             ModuleCall(head, (torch.randn(1, 1280, 7, 7),), {})]
    expected_body = (reference_ms('conv-bn-relu', [224, 3, 32, 3, 2, 11.239424, 0.000896])
                     + reference_ms('dwconv-bn-relu', [112, 32, 32, 3, 1, 4.01408, 0.00032])
                     + reference_ms('conv-bn-relu', [112, 32, 16, 1, 1, 6.623232, 0.000528]))
    expected_head = (reference_ms('global-avgpool', [1, 1280])
                     + reference_ms('fc', [1280, 1000, 1.2805, 2.561]))
    assert predictor.predict(calls) == pytest.approx([expected_body, expected_head], rel=1e-12)


def test_each_kernel_type_is_predicted_in_one_batch(predictor, monkeypatch):
    """Kernels of all calls are grouped by type: one LegacyForest.predict per kernel type, rows of every call."""
    batches: list[int] = []
    original = LegacyForest.predict
    monkeypatch.setattr(LegacyForest, 'predict', lambda self, x: batches.append(len(x)) or original(self, x))
    block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    calls = [ModuleCall(block, (torch.randn(1, 8, s, s),), {}) for s in (8, 16, 32)]
    calls.append(ModuleCall(Residual(8), (torch.randn(1, 8, 8, 8),), {}))
    costs = predictor.predict(calls)
    assert sorted(batches) == [1, 4]  # addrelu: 1 row; conv-bn-relu: 3 + 1 rows
    assert all(cost > 0 for cost in costs)


@pytest.fixture
def one_thread():
    """One torch thread while the test runs: the table build's probe forwards contend less on small machines."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_hub_proxylessnas_table_orders_small_below_large(nnmeter_package, one_thread):
    """NNI's hub ProxylessNAS builds a table offline; a shallow k3e3 net predicts below a deep k7e6 one."""
    from nni.nas.hub.pytorch import ProxylessNAS
    table = build_latency_table(ProxylessNAS(num_labels=10, width_mult=0.35), DEVICE, (1, 3, 64, 64),
                                predictor_dir=nnmeter_package.folder)
    assert table.unit == 'ms' and table.hardware == f'nn-Meter {DEVICE}'
    small = {label: 1 if label.endswith('_depth') else 'k3e3' for label in table.labels}
    large = {label: 4 if label.endswith('_depth') else 'k7e6' for label in table.labels}
    assert 0 < table.predict(small) < table.predict(large)


def test_absent_predictor_fails_fast_and_says_where_to_put_it(tmp_path, monkeypatch):
    """No predictor in predictor_dir nor nn-Meter's data folder: an error in < 1 s naming device and folders."""
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    (tmp_path / 'empty').mkdir()
    started = time.perf_counter()
    with pytest.raises(FileNotFoundError) as error:
        create_predictor('adreno640gpu_tflite21', predictor_dir=tmp_path / 'empty')
    assert time.perf_counter() - started < 1.0
    message = str(error.value)
    assert 'adreno640gpu_tflite21' in message and str(tmp_path / 'empty') in message
    assert str(tmp_path / 'home' / '.nn_meter' / 'data' / 'predictor' / 'adreno640gpu_tflite21') in message
    assert 'predictor_dir' in message and 'allow_download=True' in message


@pytest.mark.parametrize('module, shape, named', [
    (nn.Sequential(nn.Conv2d(3, 8, 3), Upsample()), (1, 3, 16, 16), ['interpolate', '1 (Upsample)']),
    (nn.LSTM(4, 8), (5, 1, 4), ['lstm', 'LSTM']),
], ids=['interpolate', 'lstm'])
def test_unsupported_op_is_refused_naming_module_and_path(predictor, module, shape, named):
    """An op outside nn-Meter's kernels raises, naming the op, the module type and its path in the call."""
    with pytest.raises(UnsupportedOpError) as error:
        predictor.predict([ModuleCall(module, (torch.randn(shape),), {})])
    assert all(part in str(error.value) for part in named)


def test_unsupported_ignore_counts_zero_and_logs(nnmeter_package, caplog):
    """With unsupported='ignore' the unknown op costs 0 ms and the log names it and where it ran."""
    lenient = create_predictor(DEVICE, predictor_dir=nnmeter_package.folder, unsupported='ignore')
    conv = nn.Conv2d(3, 8, 3)
    x = torch.randn(1, 3, 16, 16)
    with caplog.at_level(logging.WARNING, logger='nni.proxyless'):
        with_upsample, alone = lenient.predict([ModuleCall(nn.Sequential(conv, Upsample()), (x,), {}),
                                                ModuleCall(conv, (x,), {})])
    assert with_upsample == alone > 0
    assert 'interpolate x1' in caplog.text and '1 (Upsample)' in caplog.text


def test_missing_kernel_predictor_counts_zero_like_nn_meter(nnmeter_package, caplog):
    """A device package without an fc predictor (the Adreno GPUs) prices Linear at 0 ms and logs it."""
    predictor = create_predictor('adreno640gpu_tflite21', predictor_dir=nnmeter_package.folder)
    with caplog.at_level(logging.WARNING, logger='nni.proxyless'):
        assert predictor.predict([ModuleCall(nn.Linear(64, 10), (torch.randn(1, 64),), {})]) == [0.0]
    assert 'fc x1' in caplog.text and 'no predictor' in caplog.text


def test_pickle_naming_a_class_outside_the_allow_list_is_refused(nnmeter_package, tmp_path):
    """A predictor_dir whose .pkl names a global outside the loader's allow-list is refused when loading."""
    folder = shutil.copytree(nnmeter_package.folder / DEVICE, tmp_path / DEVICE)
    (folder / 'relu.pkl').write_bytes(pickle.dumps(print))  # a pickle naming builtins.print
    with pytest.raises(pickle.UnpicklingError, match='refused global builtins.print'):
        NnMeterPredictor(DEVICE, predictor_dir=tmp_path)


def _zip_folder(folder: Path, archive: Path, prefix: str) -> Path:
    with zipfile.ZipFile(archive, 'w') as zipped:
        for file in sorted(folder.iterdir()):
            zipped.write(file, f'{prefix}{file.name}')
    return archive


def test_zip_predictor_dir_is_extracted_once_into_the_cache(nnmeter_package, tmp_path):
    """predictor_dir may be nn-Meter's downloaded <device>.zip: extracted under cache_dir, then loaded."""
    archive = _zip_folder(nnmeter_package.folder / DEVICE, tmp_path / f'{DEVICE}.zip', f'{DEVICE}/')
    first = NnMeterPredictor(DEVICE, predictor_dir=archive, cache_dir=tmp_path / 'cache')
    second = NnMeterPredictor(DEVICE, predictor_dir=tmp_path, cache_dir=tmp_path / 'cache')  # <dir>/<device>.zip
    assert first.folder == second.folder and first.folder.is_relative_to(tmp_path / 'cache')
    assert first.folder.name == DEVICE and len(list(first.folder.glob('*.pkl'))) == 16
    row = [[1280, 1000, 1.2805, 2.561]]
    assert load_legacy_forest(first.folder / 'fc.pkl').predict(row).tolist() == \
        nnmeter_package.forests['fc'].predict(row).tolist()


def test_zip_member_escaping_the_folder_is_refused(nnmeter_package, tmp_path):
    """A zip member with '..' in its path is refused before anything is extracted."""
    archive = _zip_folder(nnmeter_package.folder / DEVICE, tmp_path / f'{DEVICE}.zip', f'{DEVICE}/')
    with zipfile.ZipFile(archive, 'a') as zipped:
        zipped.writestr('../escaped.pkl', b'not a pickle')
    with pytest.raises(ValueError, match='refusing to extract'):
        NnMeterPredictor(DEVICE, predictor_dir=archive, cache_dir=tmp_path / 'cache')
    assert not (tmp_path / 'escaped.pkl').exists() and not list((tmp_path / 'cache').glob('*/*'))


def test_download_only_when_allowed_into_nn_meter_data_folder(nnmeter_package, tmp_path, monkeypatch):
    """allow_download=True fetches <device>.zip (here a file:// URL) into nn-Meter's data folder; a failure is clear."""
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    _zip_folder(nnmeter_package.folder / DEVICE, tmp_path / f'{DEVICE}.zip', f'{DEVICE}/')
    monkeypatch.setattr(_nnmeter_files, 'DOWNLOAD_URL', f'file://{tmp_path}/missing/{{device}}.zip')
    with pytest.raises(ConnectionError, match='predictor_dir'):
        NnMeterPredictor(DEVICE, allow_download=True, download_timeout=5)
    monkeypatch.setattr(_nnmeter_files, 'DOWNLOAD_URL', f'file://{tmp_path}/{{device}}.zip')
    with pytest.raises(FileNotFoundError):
        NnMeterPredictor(DEVICE)  # not allowed: no download
    predictor = NnMeterPredictor(DEVICE, allow_download=True, download_timeout=5)
    assert predictor.folder == tmp_path / 'home' / '.nn_meter' / 'data' / 'predictor' / DEVICE
    assert len(list(predictor.folder.glob('*.pkl'))) == 16
