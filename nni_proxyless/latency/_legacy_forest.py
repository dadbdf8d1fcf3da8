"""Read nn-Meter's legacy scikit-learn 0.23.1 random-forest predictors, without scikit-learn.

One forest per file; the folders of nn-Meter's predictor packages are :mod:`._nnmeter_files`' business.

nn-Meter 2.0 stores each kernel latency predictor as the ``pickle.dump`` of a fitted
``sklearn.ensemble._forest.RandomForestRegressor`` written by scikit-learn 0.23.1. Current scikit-learn
cannot load them (nn-Meter issue #131): the pickled tree nodes have 7 fields (56 bytes) while
``Tree.__setstate__`` now wants 8 (``missing_go_to_left``).

Design: stand-in classes, not reconstruction. A restricted unpickler maps the three scikit-learn classes
to tiny stand-ins that only keep the pickled state, so no scikit-learn code runs on the old state and
scikit-learn is not imported at all; the node arrays are then read by field name and walked with numpy.
This is simpler and more robust than converting the nodes and rebuilding real estimators, which would
depend on the private, version-specific node dtype, ``Tree.__setstate__`` and estimator attributes of
whichever scikit-learn is installed. Here the only contract is the 0.23.1 file format plus numpy.

Exactness: ``LegacyForest.predict`` does what 0.23.1's ``RandomForestRegressor.predict`` does: rows are
cast to float32, a sample goes left when its float32 value ``<=`` the float64 threshold (compared in
float64), and the trees' leaf values are summed in estimator order from 0.0, then divided by their count.

Safety: a pickle may only name the globals in ``_ALLOWED`` (3 scikit-learn classes, replaced by stand-ins;
numpy's ``ndarray``, ``dtype``, ``_reconstruct`` and ``scalar``; no builtins are needed). Any other name
raises ``pickle.UnpicklingError`` before it is imported, so nothing else can be called. This prevents code
execution, not resource exhaustion (a hostile file can still ask for a huge array).

No on-disk cache: the pickles are mostly raw array bytes, so loading one is already close to ``np.load``
speed (a 160 MB, 100-tree forest: 0.28 s vs 0.10 s from an ``.npz``), not worth a cache to place and
invalidate.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = ['LegacyForest', 'load_legacy_forest']

_LEAF = -1  # sklearn's TREE_LEAF: child index of a leaf
_NODE_FIELDS = ('left_child', 'right_child', 'feature', 'threshold')


class _Stub:
    """Stand-in for a pickled scikit-learn object: keeps the constructor arguments and the state."""

    pickled_as = ''
    args: tuple = ()
    state: Any = None

    def __init__(self, *args: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ForestStub(_Stub):
    pickled_as = 'sklearn.ensemble._forest.RandomForestRegressor'


class _DecisionTreeStub(_Stub):
    pickled_as = 'sklearn.tree._classes.DecisionTreeRegressor'


class _TreeStub(_Stub):  # made by REDUCE with (n_features, n_classes, n_outputs), then BUILD(state)
    pickled_as = 'sklearn.tree._tree.Tree'


# numpy's array / scalar reconstructors, fetched without naming numpy.core (numpy 1) or numpy._core (numpy 2).
_RECONSTRUCT = np.ndarray(0).__reduce__()[0]
_SCALAR = np.float64(0).__reduce__()[0]
_ALLOWED: dict[tuple[str, str], Any] = {
    ('sklearn.ensemble._forest', 'RandomForestRegressor'): _ForestStub,
    ('sklearn.tree._classes', 'DecisionTreeRegressor'): _DecisionTreeStub,
    ('sklearn.tree._tree', 'Tree'): _TreeStub,
    ('numpy', 'ndarray'): np.ndarray,
    ('numpy', 'dtype'): np.dtype,
    ('numpy.core.multiarray', '_reconstruct'): _RECONSTRUCT,   # spelling of numpy 1.x pickles
    ('numpy.core.multiarray', 'scalar'): _SCALAR,
    ('numpy._core.multiarray', '_reconstruct'): _RECONSTRUCT,  # same functions, numpy 2.x spelling
    ('numpy._core.multiarray', 'scalar'): _SCALAR,
}


class _RefusedGlobal(pickle.UnpicklingError):
    """Raised by ``_LegacyUnpickler.find_class``; its message already names the file."""


class _LegacyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals of ``_ALLOWED`` and refuses every other one."""

    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _RefusedGlobal(
                f'{self._path}: refused global {module}.{name}: a legacy forest pickle may only name '
                + ', '.join(sorted(f'{m}.{n}' for m, n in _ALLOWED))) from None


class _Tree(NamedTuple):
    """One decision tree as flat per-node arrays (``value`` has shape (node_count, n_outputs))."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray


def _leaves(tree: _Tree, x32: np.ndarray) -> np.ndarray:
    """Leaf index of every row of ``x32``, walking all rows one tree level per step."""
    node = np.zeros(len(x32), dtype=np.intp)
    rows = np.arange(len(x32))
    while True:  # ends: children have larger indices than their parent (checked by _check_tree)
        inner = tree.left[node] != _LEAF
        if not inner.any():
            return node
        r, n = rows[inner], node[inner]
        go_left = x32[r, tree.feature[n]] <= tree.threshold[n]  # float32 vs float64 -> compared in float64
        node[r] = np.where(go_left, tree.left[n], tree.right[n])


@dataclass(frozen=True)
class LegacyForest:
    """A random-forest regressor read from a legacy pickle, predicting like scikit-learn 0.23.1 did.

    Attributes:
        n_features: Number of features (columns) a row must have.
        n_outputs: Number of regression targets (1 for nn-Meter).
        sklearn_version: ``_sklearn_version`` recorded in the pickle, e.g. '0.23.1'.
        source: File the forest was read from.
    """

    n_features: int
    n_outputs: int
    sklearn_version: str
    source: Path
    _trees: tuple[_Tree, ...] = field(repr=False)

    @property
    def n_estimators(self) -> int:
        """Number of trees."""
        return len(self._trees)

    def predict(self, features: npt.ArrayLike) -> np.ndarray:
        """Predict many rows at once, the mean over the trees.

        Args:
            features: Array-like of shape (n, n_features); values are cast to float32 as scikit-learn does.

        Returns:
            float64 array of shape (n,) (or (n, n_outputs) for a multi-output forest).

        Raises:
            ValueError: If the shape is wrong or a value is NaN or infinite (after the float32 cast).
        """
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f'{self.source.name}: expected features of shape (n, {self.n_features}), '
                             f'got {x.shape}')
        with np.errstate(over='ignore'):
            x32 = x.astype(np.float32)
        if not np.isfinite(x32).all():
            raise ValueError(f'{self.source.name}: features contain NaN or values beyond float32 range')
        total = np.zeros((len(x32), self.n_outputs))
        for tree in self._trees:
            total += tree.value[_leaves(tree, x32)]
        total /= len(self._trees)
        return total.reshape(len(x32)) if self.n_outputs == 1 else total


def _state(obj: Any, kind: type[_Stub], what: str, path: Path) -> dict:
    """The pickled state dict of ``obj``, checking it is a ``kind`` stand-in."""
    if not isinstance(obj, kind) or not isinstance(obj.state, dict):
        raise ValueError(f'{path}: {what} is {type(obj).__name__}, expected a pickled '
                         f'{kind.pickled_as} with a state dict')
    return obj.state


def _check_tree(tree: _Tree, n_features: int, where: str) -> None:
    """Reject trees that would crash or loop ``_leaves``: children must follow parents, features in range."""
    count, inner = len(tree.left), tree.left != _LEAF
    idx = np.arange(count)
    links_ok = (count > 0 and (tree.left[inner] > idx[inner]).all() and (tree.right[inner] > idx[inner]).all()
                and (tree.left < count).all() and (tree.right < count).all() and (tree.right[~inner] == _LEAF).all())
    if not links_ok:
        raise ValueError(f'{where}: malformed node links')
    if ((tree.feature[inner] < 0) | (tree.feature[inner] >= n_features)).any():
        raise ValueError(f'{where}: split feature outside 0..{n_features - 1}')
    if tree.value.shape[0] != count:
        raise ValueError(f'{where}: {tree.value.shape[0]} values for {count} nodes')


def _read_tree(estimator: Any, n_features: int, n_outputs: int, where: str, path: Path) -> _Tree:
    """Build a ``_Tree`` from one pickled ``DecisionTreeRegressor`` stand-in."""
    tree_state = _state(_state(estimator, _DecisionTreeStub, where, path).get('tree_'), _TreeStub,
                        f'{where}.tree_', path)
    nodes, values = tree_state.get('nodes'), tree_state.get('values')
    names = (nodes.dtype.names or ()) if isinstance(nodes, np.ndarray) else ()
    if not (set(_NODE_FIELDS) <= set(names) and nodes.ndim == 1
            and all(nodes.dtype[name].kind in 'iuf' for name in _NODE_FIELDS)):
        raise ValueError(f'{path}: {where}.tree_ nodes is not a 1-D record array with numeric {_NODE_FIELDS}')
    if not isinstance(values, np.ndarray) or values.dtype != np.float64 or values.shape[1:] != (n_outputs, 1):
        raise ValueError(f'{path}: {where}.tree_ values is not float64 of shape (nodes, {n_outputs}, 1)')
    tree = _Tree(*(np.ascontiguousarray(nodes[name], dtype=np.intp) for name in _NODE_FIELDS[:3]),
                 np.ascontiguousarray(nodes['threshold'], dtype=np.float64),
                 np.ascontiguousarray(values[:, :, 0]))
    _check_tree(tree, n_features, f'{path}: {where}.tree_')
    return tree


def load_legacy_forest(path: str | Path) -> LegacyForest:
    """Read a ``RandomForestRegressor`` pickle written by scikit-learn 0.23.1 (nn-Meter's predictors).

    Args:
        path: The ``.pkl`` file.

    Returns:
        The forest, ready to predict; no scikit-learn code is run or needed.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        pickle.UnpicklingError: If the file names a global outside the allow-list, or is not a valid pickle.
        ValueError: If the pickle is not a ``RandomForestRegressor`` of ``DecisionTreeRegressor``s in the
            expected format (what is wrong and where is named).
    """
    path = Path(path)
    with path.open('rb') as fp:
        try:
            forest = _LegacyUnpickler(fp, path).load()
        except _RefusedGlobal:
            raise
        except Exception as exc:  # corrupt streams raise many types (UnpicklingError, EOFError, KeyError, ...)
            raise pickle.UnpicklingError(f'{path}: not a readable pickle ({type(exc).__name__}: {exc})') from exc
    state = _state(forest, _ForestStub, 'the pickled object', path)
    n_features = state.get('n_features_in_', state.get('n_features_'))
    n_outputs, estimators = state.get('n_outputs_', 1), state.get('estimators_')
    if not isinstance(n_features, int) or not isinstance(n_outputs, int) or n_features < 1 or n_outputs < 1:
        raise ValueError(f'{path}: missing or invalid n_features_ / n_outputs_')
    if not isinstance(estimators, list) or not estimators:
        raise ValueError(f'{path}: estimators_ is not a non-empty list')
    trees = tuple(_read_tree(est, n_features, n_outputs, f'estimators_[{i}]', path)
                  for i, est in enumerate(estimators))
    return LegacyForest(n_features, n_outputs, str(state.get('_sklearn_version', 'unknown')), path, trees)
