"""nn-Meter predictor packages for the tests: forests fitted here, written in scikit-learn 0.23.1's pickle layout.

nn-Meter's predictors are ``RandomForestRegressor`` pickles written by scikit-learn 0.23.1, which current
scikit-learn cannot load (nn-Meter issue #131); the package reads them without scikit-learn
(``nni_proxyless.latency._legacy_forest``). This module writes that layout, so the tests need no file from outside
the repository: forests are fitted with the installed scikit-learn on made-up kernel latencies, then pickled the
way 0.23.1 did (protocol 3; its class paths and attribute names; tree nodes of 7 fields, 56 bytes, without
``missing_go_to_left``; arrays through numpy 1.x's ``numpy.core.multiarray._reconstruct``). The fitted forests
are returned too: scikit-learn's own ``predict`` is the independent reference for every prediction.

The devices and their kernels come from nn-Meter's own ``configs/predictors.yaml``; feature counts are those of
nn-Meter 2.0's ``get_predict_features``.

Example::

    package = write_package(tmp_path)            # tmp_path/<device>/<kernel>.pkl and fusion_rules.json
    package.forests['fc'].predict([[1280, 1000, 1.2805, 2.561]])
"""

from __future__ import annotations

import importlib.util
import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.ensemble import RandomForestRegressor

__all__ = ['FEATURES', 'Package', 'device_kernels', 'legacy_pickle', 'write_package', 'nnmeter_package']

FEATURES = {'conv-bn-relu': 7, 'dwconv-bn-relu': 7, 'fc': 4, 'global-avgpool': 2, 'hswish': 2, 'relu': 2, 'se': 2,
            'split': 2, 'add': 3, 'addrelu': 3, 'maxpool': 5, 'avgpool': 5, 'bn': 2, 'bnrelu': 2,
            'channelshuffle': 2, 'concat': 6}
"""Features per kernel predictor, in nn-Meter 2.0's layouts (conv: inputh, cin, cout, ks, s, flops, params)."""

_NODE_FIELDS = [('left_child', '<i8'), ('right_child', '<i8'), ('feature', '<i8'), ('threshold', '<f8'),
                ('impurity', '<f8'), ('n_node_samples', '<i8'), ('weighted_n_node_samples', '<f8')]
_FUSED = [('conv', 'bn'), ('conv', 'relu'), ('conv', 'hswish'), ('dwconv', 'bn'), ('dwconv', 'relu'),
          ('bn', 'relu'), ('add', 'relu'), ('fc', 'relu'), ('se', 'relu')]


def device_kernels() -> dict[str, list[str]]:
    """Every nn-Meter device and the kernel predictors its package holds (nn-Meter's ``predictors.yaml``)."""
    folder = Path(importlib.util.find_spec('nn_meter').submodule_search_locations[0])
    entries = yaml.safe_load((folder / 'configs' / 'predictors.yaml').read_text())
    return {entry['name']: list(entry['kernel_predictors']) for entry in entries}


# ------------------------------------------------------------------------------- scikit-learn 0.23.1's pickle


class _Global:
    """A module-level name, written with protocol 3's GLOBAL opcode."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name


class _New:
    """``cls.__new__(cls)`` then its ``__dict__``: how scikit-learn estimators pickle."""

    def __init__(self, cls: _Global, state: dict):
        self.cls, self.state = cls, state


class _Reduce:
    """``func(*args)``, then its state if any: how ``Tree`` and numpy dtypes pickle."""

    def __init__(self, func: _Global, args: tuple, state=None):
        self.func, self.args, self.state = func, args, state


class _Array:
    """A numpy array as numpy 1.x reduced it: ``_reconstruct(ndarray, (0,), b'b')``, then its raw bytes."""

    def __init__(self, array: np.ndarray, dtype: _Reduce):
        self.shape, self.dtype, self.data = tuple(int(n) for n in array.shape), dtype, array.tobytes()


_FOREST = _Global('sklearn.ensemble._forest', 'RandomForestRegressor')
_TREE_ESTIMATOR = _Global('sklearn.tree._classes', 'DecisionTreeRegressor')
_TREE = _Global('sklearn.tree._tree', 'Tree')
_RECONSTRUCT, _NDARRAY = _Global('numpy.core.multiarray', '_reconstruct'), _Global('numpy', 'ndarray')
_DTYPE = _Global('numpy', 'dtype')
_I8 = _Reduce(_DTYPE, ('i8', 0, 1), (3, '<', None, None, None, -1, -1, 0))
_F8 = _Reduce(_DTYPE, ('f8', 0, 1), (3, '<', None, None, None, -1, -1, 0))
_OFFSETS = np.dtype(_NODE_FIELDS).fields
_NODE = _Reduce(_DTYPE, ('V56', 0, 1), (3, '|', None, tuple(name for name, _ in _NODE_FIELDS),
                                        {name: (_I8 if kind == '<i8' else _F8, _OFFSETS[name][1])
                                         for name, kind in _NODE_FIELDS}, 56, 1, 16))


class _LegacyPickler(pickle._Pickler):
    """Python's own pickler, taught to write the stand-ins above with the opcodes the C pickler uses."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _global(self, obj: _Global) -> None:
        self.write(pickle.GLOBAL + f'{obj.module}\n{obj.name}\n'.encode())
        self.memoize(obj)

    def _new(self, obj: _New) -> None:
        self.save(obj.cls)
        self.save(())
        self.write(pickle.NEWOBJ)
        self.memoize(obj)
        self.save(obj.state)
        self.write(pickle.BUILD)

    def _reduce(self, obj: _Reduce) -> None:
        self.save(obj.func)
        self.save(obj.args)
        self.write(pickle.REDUCE)
        self.memoize(obj)
        if obj.state is not None:
            self.save(obj.state)
            self.write(pickle.BUILD)

    def _array(self, obj: _Array) -> None:
        self.save(_RECONSTRUCT)
        self.save((_NDARRAY, (0,), b'b'))
        self.write(pickle.REDUCE)
        self.memoize(obj)
        self.save((1, obj.shape, obj.dtype, False, obj.data))
        self.write(pickle.BUILD)

    dispatch[_Global], dispatch[_New], dispatch[_Reduce], dispatch[_Array] = _global, _new, _reduce, _array


def _tree_estimator(estimator, forest: RandomForestRegressor) -> _New:
    tree = estimator.tree_
    state = tree.__getstate__()
    nodes = np.zeros(tree.node_count, dtype=_NODE_FIELDS)
    for name, _ in _NODE_FIELDS:
        nodes[name] = state['nodes'][name]
    values = np.ascontiguousarray(state['values'], dtype='<f8')
    tree_state = {'max_depth': int(state['max_depth']), 'node_count': int(tree.node_count),
                  'nodes': _Array(nodes, _NODE), 'values': _Array(values, _F8)}
    n_features = int(forest.n_features_in_)
    return _New(_TREE_ESTIMATOR, {
        'criterion': 'mse', 'splitter': 'best', 'max_depth': forest.max_depth, 'min_samples_split': 2,
        'min_samples_leaf': 1, 'min_weight_fraction_leaf': 0.0, 'max_features': forest.max_features,
        'max_leaf_nodes': None, 'random_state': int(estimator.random_state), 'min_impurity_decrease': 0.0,
        'min_impurity_split': None, 'class_weight': None, 'presort': 'deprecated', 'ccp_alpha': 0.0,
        'n_features_': n_features, 'n_outputs_': 1, 'max_features_': int(estimator.max_features_),
        'tree_': _Reduce(_TREE, (n_features, _Array(np.array([1], dtype='<i8'), _I8), 1), tree_state),
        '_sklearn_version': '0.23.1'})


def legacy_pickle(forest: RandomForestRegressor) -> bytes:
    """The bytes scikit-learn 0.23.1's ``pickle.dump`` (protocol 3) would write for this fitted forest."""
    n_features = int(forest.n_features_in_)
    graph = _New(_FOREST, {
        'base_estimator': _New(_TREE_ESTIMATOR, {'criterion': 'mse', '_sklearn_version': '0.23.1'}),
        'n_estimators': len(forest.estimators_), 'bootstrap': True, 'oob_score': False, 'n_jobs': None,
        'random_state': forest.random_state, 'verbose': 0, 'warm_start': False, 'max_samples': None,
        'criterion': 'mse', 'max_depth': forest.max_depth, 'min_samples_split': 2, 'min_samples_leaf': 1,
        'min_weight_fraction_leaf': 0.0, 'max_features': forest.max_features, 'max_leaf_nodes': None,
        'min_impurity_decrease': 0.0, 'min_impurity_split': None, 'ccp_alpha': 0.0,
        'n_features_in_': n_features, 'n_features_': n_features, 'n_outputs_': 1,
        'estimators_': [_tree_estimator(estimator, forest) for estimator in forest.estimators_],
        '_sklearn_version': '0.23.1'})
    buffer = io.BytesIO()
    _LegacyPickler(buffer, protocol=3).dump(graph)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------- packages


def fitted_forest(n_features: int, seed: int) -> RandomForestRegressor:
    """A small forest fitted to a made-up latency (ms) that grows with every feature, as kernel latencies do."""
    rng = np.random.default_rng(seed)
    x = np.exp(rng.uniform(0.0, np.log(2000.0), size=(300, n_features)))
    y = 0.005 + np.log1p(x) @ rng.uniform(0.01, 0.1, size=n_features) + rng.normal(0.0, 0.002, size=300)
    return RandomForestRegressor(n_estimators=4, max_depth=6, random_state=seed).fit(x, y)


@dataclass(frozen=True)
class Package:
    """Predictor packages written by :func:`write_package`.

    Attributes:
        folder: holds ``<device>/`` for every nn-Meter device (what ``predictor_dir`` takes).
        forests: every kernel's fitted scikit-learn forest (one per kernel name, shared by the devices).
    """

    folder: Path
    forests: dict[str, RandomForestRegressor]


def write_package(folder: Path, seed: int = 0) -> Package:
    """Write ``folder/<device>/<kernel>.pkl`` and ``fusion_rules.json`` for every nn-Meter device."""
    devices = device_kernels()
    names = sorted({kernel for kernels in devices.values() for kernel in kernels})
    forests = {name: fitted_forest(FEATURES[name], seed + i) for i, name in enumerate(names)}
    files = {name: legacy_pickle(forest) for name, forest in forests.items()}
    rules = {f'BF_{a}_{b}': {'obey': (a, b) in _FUSED} for a in ('conv', 'dwconv', 'bn', 'relu', 'add', 'fc')
             for b in ('bn', 'relu', 'hswish', 'add')}
    rules.update({'MON': {'obey': False}, 'RT': {'obey': False}, 'BF_se_relu': {'obey': True},
                  'BF_conv_bn_relu': {'obey': True}, 'BF_dwconv_bn_relu': {'obey': True}})
    for device, kernels in devices.items():
        (folder / device).mkdir(parents=True, exist_ok=True)
        for kernel in kernels:
            (folder / device / f'{kernel}.pkl').write_bytes(files[kernel])
        (folder / device / 'fusion_rules.json').write_text(json.dumps(rules, indent=1))
    return Package(folder, forests)


@pytest.fixture(scope='session')
def nnmeter_package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    """Predictor packages of every nn-Meter device, written once per test session."""
    return write_package(tmp_path_factory.mktemp('nnmeter-predictors'))
