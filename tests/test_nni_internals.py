"""What the package takes from NNI's (and Lightning's) internals is still where ``_nni_internals`` says, as it
says; and no other module of the package reaches those internals by itself.

After an NNI upgrade, a failure here names what moved or changed, where it was expected and why it is needed.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

from nni_proxyless import _nni_internals
from nni_proxyless._nni_internals import CHECKED_AGAINST, INTERNALS, Internal, installed

PACKAGE = Path(__file__).resolve().parents[1] / 'nni_proxyless'

PUBLIC_MODULES = {
    'nni', 'nni.common.serializer', 'nni.experiment', 'nni.experiment.config', 'nni.mutable', 'nni.mutable.frozen',
    'nni.mutable.utils', 'nni.nas.evaluator', 'nni.nas.evaluator.pytorch', 'nni.nas.evaluator.pytorch.lightning',
    'nni.nas.experiment', 'nni.nas.nn.pytorch', 'nni.nas.space', 'nni.nas.strategy', 'nni.typehint',
    'pytorch_lightning', 'pytorch_lightning.strategies', 'pytorch_lightning.utilities.data',
}
"""NNI's and Lightning's documented modules (or packages whose ``__all__`` exports the names): any module may
import from these."""


def _where(row: Internal) -> str:
    return (f'{row.name}, expected at {row.where} ({row.why}); checked against {CHECKED_AGAINST}, '
            f'installed: {installed()}')


def _source(target) -> str:
    return inspect.getsource(target)


@pytest.mark.parametrize('row', INTERNALS, ids=lambda row: f'{row.name}@{row.where}')
def test_internal_is_still_where_and_what_the_package_expects(row: Internal):
    """Each row resolves, and has the parameters, frame locals and source the package relies on."""
    try:
        target = row.resolve()
    except (ImportError, AttributeError) as error:
        pytest.fail(f'moved: {_where(row)}: {error}')
    if row.parameters:
        names = [name for name in inspect.signature(target).parameters]
        missing = [name for name in row.parameters if name not in names]
        assert not missing, f'parameters {missing} gone (now {names}): {_where(row)}'
    if row.locals:
        missing = [name for name in row.locals if name not in target.__code__.co_varnames]
        assert not missing, f'locals {missing} no longer bound (now {target.__code__.co_varnames}): {_where(row)}'
    if row.mentions:
        source = _source(target)
        missing = [text for text in row.mentions if text not in source]
        assert not missing, f'its source no longer has {missing}: {_where(row)}'
    if row.named_by_module:
        module = row.where.partition(':')[0]
        assert target.__module__ == module, f'now defined in {target.__module__}: {_where(row)}'


@pytest.mark.parametrize('row', [row for row in INTERNALS if row.how == 'import'], ids=lambda row: row.name)
def test_imported_name_is_the_row_target(row: Internal):
    """``from nni_proxyless._nni_internals import <name>`` gives exactly what the row names."""
    assert getattr(_nni_internals, row.name) is row.resolve()
    assert row.name in _nni_internals.__all__


def test_constants_are_the_ones_their_rows_check():
    """The strings the package matches NNI by (hub modules, attribute names, loggers) are those checked above."""
    rows = {row.name: [r for r in INTERNALS if r.name == row.name] for row in INTERNALS}
    blocks = {tuple(row.where.split(':')) for row in rows['PROXYLESSNAS_RESIDUAL_BLOCKS']}
    assert blocks == _nni_internals.PROXYLESSNAS_RESIDUAL_BLOCKS
    assert {row.where.partition(':')[0] for row in rows['AUTOFORMER_MODULE']} == {_nni_internals.AUTOFORMER_MODULE}
    mentioned = ' '.join(text for row in INTERNALS for text in row.mentions)
    for attribute in (*_nni_internals.NNI_BOOKKEEPING, _nni_internals.LABEL_SCOPE,
                      _nni_internals.MODEL_WRAPPER_MARK, _nni_internals.BASIC_UNIT_MARK):
        assert attribute in mentioned, f'{attribute}: no row checks that NNI still uses it'
    loggers = {importlib.import_module(row.where)._logger.name for row in rows['NNI_NOISE']}
    assert loggers == set(_nni_internals.NNI_NOISE)


def test_unknown_name_is_an_attribute_error():
    """A name no row imports is not an attribute (the lazy lookup does not invent one)."""
    with pytest.raises(AttributeError, match='no attribute'):
        _nni_internals.NotInNNI  # noqa: B018


def test_moved_name_fails_its_import_naming_where_and_why(monkeypatch):
    """Importing a name NNI no longer has is an ImportError that says where it was expected and why it is needed."""
    row = Internal('Gone', 'nni.nas.oneshot.pytorch.strategy:NoSuchStrategy', 'a row of this test')
    monkeypatch.setitem(_nni_internals._IMPORTED, 'Gone', row)
    with pytest.raises(ImportError, match=r'needs nni\.nas\.oneshot\.pytorch\.strategy:NoSuchStrategy \(a row of '
                                          r'this test\).*checked against'):
        from nni_proxyless._nni_internals import Gone  # noqa: F401


# ------------------------------------------------------------------------------------- frames read in a real call

def _recording_strategy():
    from nni_proxyless import Proxyless

    class Recording(Proxyless):
        """Records what the frame reads give instead of training (and exports nothing)."""

        def _run(self) -> None:
            self.seen.append(_nni_internals.running_experiment())

        def list_models(self, sort=True, limit=1, latency_target=None):
            self.seen.append(_nni_internals.export_arguments())
            return iter([])

    strategy = Recording(seed=0)
    strategy.seen = []
    return strategy


def _experiment(strategy, workdir: Path):
    from nni.nas.experiment import NasExperiment

    from conftest import ConvSpace, digits_evaluator
    exp = NasExperiment(ConvSpace(), digits_evaluator(epochs=1), strategy)
    exp.config.experiment_working_directory = str(workdir)
    return exp


@pytest.mark.parametrize('call, port', [(lambda exp: exp.run(), None), (lambda exp: exp.start(), None),
                                        (lambda exp: exp.run(port=8080), 8080), (lambda exp: exp.start(8081), 8081)],
                         ids=['run()', 'start()', 'run(port=8080)', 'start(8081)'])
def test_start_frame_gives_the_experiment_and_the_port_its_caller_wrote(tmp_path, call, port):
    """Inside ``NasExperiment.start`` (run's too) the strategy sees its experiment and the port the caller wrote,
    8080 included; ``None`` when the caller gave none."""
    strategy = _recording_strategy()
    exp = _experiment(strategy, tmp_path)
    try:
        call(exp)
    finally:
        exp.stop()
    assert strategy.seen == [(exp, port)]
    assert _nni_internals.running_experiment() is None  # outside an experiment


def test_export_frame_gives_the_keyword_arguments_nni_drops(tmp_path):
    """``export_top_models(top_k, formatter=..., latency_target=T)``: the strategy sees ``latency_target``, which
    NNI does not pass to ``list_models``; ``{}`` outside an export."""
    strategy = _recording_strategy()
    exp = _experiment(strategy, tmp_path)
    assert exp.export_top_models(top_k=2, formatter='dict', latency_target=5.0) == []
    assert exp.export_top_models(top_k=1) == []
    assert strategy.seen == [{'latency_target': 5.0}, {}]
    assert _nni_internals.export_arguments() == {}


# ------------------------------------------------------------------------------------- one door

def _private_names() -> set[str]:
    """The private NNI and Lightning names the rows stand for (the names of methods the package overrides aside)."""
    found = set()
    for row in INTERNALS:
        if row.how != 'override':
            text = ' '.join((row.where.partition(':')[2], *row.mentions))
            found |= set(re.findall(r'(?<![\w])_[a-z]\w*', text))
    return found


def _modules() -> list[tuple[str, ast.Module]]:
    return [(str(path.relative_to(PACKAGE.parent)), ast.parse(path.read_text(encoding='utf-8')))
            for path in sorted(PACKAGE.rglob('*.py')) if path.name != '_nni_internals.py']


def _defined_here(trees: list[tuple[str, ast.Module]]) -> set[str]:
    """Private names the package defines itself (methods, attributes it assigns): no evidence of reaching NNI."""
    names = set()
    for _, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    return names


def test_other_modules_import_only_public_nni():
    """Outside ``_nni_internals``, NNI and Lightning are imported only from their public modules."""
    for path, tree in _modules():
        for node in ast.walk(tree):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                       [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for module in modules:
                if module.split('.')[0] in ('nni', 'pytorch_lightning', 'lightning'):
                    assert module in PUBLIC_MODULES, (f'{path}:{node.lineno} imports from {module}, which is not '
                                                      'public: add a row to _nni_internals and import it from there')


def test_other_modules_use_no_private_nni_name():
    """Outside ``_nni_internals``, no private name of NNI's or Lightning's appears as an attribute or a string."""
    trees = _modules()
    private = _private_names() - _defined_here(trees)
    assert {'_bound_type', '_init_wrapped', '_ddp_kwargs', '_tensor_reduction'} <= private
    for path, tree in trees:
        for node in ast.walk(tree):
            name = node.attr if isinstance(node, ast.Attribute) else node.value if isinstance(node, ast.Constant) \
                else None
            assert name not in private, (f'{path}:{node.lineno} uses {name!r}, a private name of NNI: reach it '
                                         'through _nni_internals')
