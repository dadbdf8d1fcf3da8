"""nn-Meter's edge-device predictors (see :class:`NnMeterPredictor`), offline and on current scikit-learn.

How a call is priced, as nn-Meter 2.0 prices a model:

1. Record its ops with one forward (:mod:`._nnmeter_graph`),
2. fuse them into kernels with the device's fusion rules and compute nn-Meter's feature rows
   (:mod:`._nnmeter_kernels`),
3. predict every kernel of every call with the device's random forests, in one batch per kernel type (read by
   :mod:`._legacy_forest` from nn-Meter's scikit-learn 0.23.1 pickles, nn-Meter issue #131), and sum per call.

Where the forests come from is :func:`._nnmeter_files.locate_predictor`'s business. See ``docs/nn-meter.md``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import _checks
from ._nnmeter_files import PredictorPackage, load_predictor_folder, locate_predictor
from ._nnmeter_graph import UnsupportedOpError, record_ops
from ._nnmeter_kernels import DEFAULT_RULES, FusionRules, Kernel, detect_kernels
from .protocol import ModuleCall

__all__ = ['NnMeterPredictor', 'Kernel', 'UnsupportedOpError', 'NN_METER_DEVICES']

NN_METER_DEVICES = ('cortexA76cpu_tflite21', 'adreno640gpu_tflite21', 'adreno630gpu_tflite21',
                    'myriadvpu_openvino2019r2')

_logger = logging.getLogger('nni.proxyless')

_PACKAGES: dict[tuple[str, str], tuple[PredictorPackage, FusionRules]] = {}
_PACKAGES_LOCK = threading.Lock()


class NnMeterPredictor:
    """Latency in milliseconds on one of nn-Meter's four edge devices, predicted offline by its kernel predictors.

    Each call is run once and decomposed into nn-Meter kernels (conv-bn-relu, dwconv-bn-relu, fc, add, pools,
    activations, se, ...) with nn-Meter's fusion rules and feature layouts; all kernels of all calls are predicted
    in one batch per kernel type. Kernels the device has no predictor for (e.g. ``fc`` and ``add`` on the Adreno
    GPUs, or ``mul``) count 0 ms, as in nn-Meter, and are logged; ops outside nn-Meter's vocabulary are refused.

    Args:
        device: one of ``'cortexA76cpu_tflite21'``, ``'adreno640gpu_tflite21'``, ``'adreno630gpu_tflite21'``,
            ``'myriadvpu_openvino2019r2'``.
        predictor_dir: a folder holding ``<device>/`` (nn-Meter's unzipped package), the ``<device>/`` folder
            itself, a folder holding ``<device>.zip``, or that ``.zip`` (extracted once under ``cache_dir``).
            Searched before nn-Meter's data folder (``~/.nn_meter/data/predictor/<device>/``).
        allow_download: when nothing is found, download the package from nn-Meter's GitHub release into
            nn-Meter's data folder. Off by default: nothing touches the network unless asked.
        download_timeout: seconds the download may stall (connecting, or between two reads) before it fails.
        cache_dir: where a ``.zip`` is extracted; default ``<default_cache_dir()>/nn-meter``.
        unsupported: ``'error'`` (default) refuses a call running an op nn-Meter has no kernel for (an LSTM, an
            interpolation, a matmul, ...); ``'ignore'`` counts such ops as 0 ms and logs a warning naming them.

    Raises:
        ValueError: an unknown device or option value.
        FileNotFoundError: no predictor found (the message names the device, the folders searched and where to
            put the files), or a package lacks some kernels.
        ConnectionError: ``allow_download=True`` and the download failed.
        pickle.UnpicklingError: a predictor file names a class outside the loader's allow-list, or is corrupt.

    Example::

        predictor = NnMeterPredictor('cortexA76cpu_tflite21', predictor_dir='~/nn-meter-predictors')
        table = build_latency_table(ProxylessNAS(), predictor, (1, 3, 224, 224))
    """

    unit = 'ms'

    def __init__(self, device: str, *, predictor_dir: str | os.PathLike | None = None, allow_download: bool = False,
                 download_timeout: float = 60.0, cache_dir: str | os.PathLike | None = None,
                 unsupported: str = 'error') -> None:
        _checks.one_of('device', device, NN_METER_DEVICES)
        _checks.one_of('unsupported', unsupported, ('error', 'ignore'))
        download_timeout = _checks.number('download_timeout', download_timeout, positive=True, unit='seconds')
        from .measure import default_cache_dir
        self.device = device
        self.description = f'nn-Meter {device}'
        self.unsupported = unsupported
        self.folder = locate_predictor(
            device, predictor_dir, allow_download=allow_download, download_timeout=download_timeout,
            cache_dir=Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir() / 'nn-meter')
        self._package, self._rules = _load_package(device, self.folder)

    def kernels(self, call: ModuleCall) -> list[Kernel]:
        """The nn-Meter kernels of one call, with their feature rows (runs the call once, eval mode, no grad).

        Raises:
            UnsupportedOpError: the call runs an op nn-Meter has no kernel for (naming the op, module type and
                path), unless ``unsupported='ignore'``.
            ValueError: a kernel op gets a tensor rank nn-Meter's kernel does not take (e.g. BN on (N, L, C)).
        """
        try:
            ops = record_ops(call.module, call.args, call.kwargs, unsupported=self.unsupported)
            return detect_kernels(ops, self._rules)
        except ValueError as error:  # UnsupportedOpError, or a tensor rank no nn-Meter kernel takes
            kind = UnsupportedOpError if isinstance(error, UnsupportedOpError) else ValueError
            raise kind(f'In a call of {type(call.module).__name__}: {error}') from error

    def predict(self, calls: Sequence[ModuleCall]) -> list[float]:
        """Milliseconds per call: the sum of its kernels' predictions, each kernel type predicted in one batch.

        Raises:
            UnsupportedOpError, ValueError: as :meth:`kernels`; ValueError also when a predictor file expects
                another number of features than nn-Meter's layout (naming the file).
        """
        started = time.perf_counter()
        rows: dict[str, list[tuple[float, ...]]] = defaultdict(list)
        owners: dict[str, list[int]] = defaultdict(list)
        unpriced: dict[str, list[Kernel]] = defaultdict(list)
        for index, call in enumerate(calls):
            for kernel in self.kernels(call):
                if kernel.name in self._package.kernels and kernel.features:
                    rows[kernel.name].append(kernel.features)
                    owners[kernel.name].append(index)
                else:
                    unpriced[kernel.name].append(kernel)
        totals = np.zeros(len(calls))
        for name, features in rows.items():
            np.add.at(totals, owners[name], self._package.kernels[name].predict(np.asarray(features, dtype=float)))
        counts = Counter({name: len(features) for name, features in rows.items()})
        _logger.info('%s: %d calls, %d kernels (%s) predicted in %.2f s.', self.description, len(calls),
                     sum(counts.values()), ', '.join(f'{n} {c}' for n, c in counts.most_common()),
                     time.perf_counter() - started)
        if unpriced:
            self._log_unpriced(unpriced)
        return totals.tolist()

    def _log_unpriced(self, unpriced: dict[str, list[Kernel]]) -> None:
        listing = '; '.join(f'{name} x{len(kernels)} (e.g. at {kernels[0].where})'
                            for name, kernels in sorted(unpriced.items()))
        _logger.warning('%s has no predictor for these kernels; they count 0 ms, as in nn-Meter: %s.',
                        self.description, listing)


def _load_package(device: str, folder: Path) -> tuple[PredictorPackage, FusionRules]:
    """The device's forests and fusion rules, loaded once per process and folder."""
    key = (device, str(folder.resolve()))
    with _PACKAGES_LOCK:
        if key not in _PACKAGES:
            started = time.perf_counter()
            package = load_predictor_folder(folder)
            if package.fusion_rules:
                try:
                    rules = FusionRules.from_json(package.fusion_rules)
                except ValueError as error:
                    raise ValueError(f'{folder / "fusion_rules.json"}: {error}') from error
            else:
                _logger.warning('%s has no fusion_rules.json; fusing with default rules (conv-bn-relu, '
                                'dwconv-bn-relu, conv-hswish, bn-relu, add-relu, fc-relu, se-relu).', folder)
                rules = DEFAULT_RULES
            _PACKAGES[key] = (package, rules)
            _logger.info('Loaded the nn-Meter predictor %s from %s in %.2f s (%d kernel predictors).', device,
                         folder, time.perf_counter() - started, len(package.kernels))
    return _PACKAGES[key]
