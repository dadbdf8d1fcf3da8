"""NNI 2.x Retiarii scripts on NNI 3.0 through ``nni_proxyless.retiarii`` (only their import lines changed).

The 2.x-style space and search below are written as NNI 2.x users wrote them; each is checked against the same
search written natively for NNI 3.0 (``ModelSpace`` with the labels written out, ``NasExperiment``).
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import nni
import pytest
import torch
import torch.nn.functional as F

import nni_proxyless.retiarii.evaluator.pytorch.lightning as pl
import nni_proxyless.retiarii.nn.pytorch as nn
import nni_proxyless.retiarii.strategy as strategy
from nni.nas.evaluator.pytorch import Classification, DataLoader
from nni.nas.experiment import NasExperiment
from nni.nas.nn.pytorch import InputChoice, LayerChoice, ModelSpace, Repeat
from nni_proxyless import Proxyless, strategies
from nni_proxyless.retiarii import RetiariiMigrationError, model_wrapper, serialize
from nni_proxyless.retiarii.experiment.pytorch import WEB_UI_ENV, RetiariiExeConfig, RetiariiExperiment

from conftest import digits_datasets
from webui_tools import (NNICTL, experiments_root, forget_experiments, free_port, metric_records, nnictl_view,
                         rest, wait_for)  # noqa: F401  (experiments_root is a fixture)

EXAMPLE = Path(__file__).resolve().parents[1] / 'examples' / 'retiarii_style.py'
QUIET = dict(limit_train_batches=4, limit_val_batches=2, accelerator='cpu', enable_progress_bar=False, logger=False,
             enable_checkpointing=False, enable_model_summary=False)


# --- the same space, NNI 2.x style and NNI 3.0 style ----------------------------------------------

@model_wrapper
class Net(nn.Module):
    """NNI 2.x style: one labeled LayerChoice, the rest unlabeled (2.x numbered them model_1, model_2, ...)."""

    def __init__(self, width=8):
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.conv = nn.LayerChoice([nn.Conv2d(width, width, 3, padding=1), nn.Conv2d(width, width, 5, padding=2),
                                    nn.Identity()], label='conv')
        self.act = nn.LayerChoice([nn.ReLU(), nn.Tanh()])
        self.blocks = nn.Repeat(lambda i: nn.LayerChoice([nn.Conv2d(width, width, 3, padding=1),
                                                          nn.MaxPool2d(3, 1, 1)]), nn.ValueChoice([1, 2]))
        self.skip = nn.InputChoice(2, 1)
        self.fc = nn.Linear(width * 64, 10)

    def forward(self, x):
        x = F.relu(self.stem(x))
        y = self.blocks(self.act(self.conv(x)))
        return self.fc(self.skip([y, x]).flatten(1))


class NativeNet(ModelSpace):
    """The same space in NNI 3.0 style, with the labels the 2.x space gets written out."""

    def __init__(self, width=8):
        super().__init__()
        self.stem = torch.nn.Conv2d(1, width, 3, padding=1)
        self.conv = LayerChoice([torch.nn.Conv2d(width, width, 3, padding=1),
                                 torch.nn.Conv2d(width, width, 5, padding=2), torch.nn.Identity()], label='conv')
        self.act = LayerChoice([torch.nn.ReLU(), torch.nn.Tanh()], label='model_1')
        self.blocks = Repeat(lambda i: LayerChoice([torch.nn.Conv2d(width, width, 3, padding=1),
                                                    torch.nn.MaxPool2d(3, 1, 1)], label=f'model_{3 + i}'),
                             nni.choice('model_2', [1, 2]))
        self.skip = InputChoice(2, 1, label='model_5')
        self.fc = torch.nn.Linear(width * 64, 10)

    forward = Net.forward


def _retiarii_search(workdir: Path, port: int | None = None, name: str = 'retiarii-test') -> RetiariiExperiment:
    """The 2.x script: seeded, digits, exp.run(config, port), as a 2.x user wrote it."""
    torch.manual_seed(0)
    train, val = digits_datasets()
    evaluator = pl.Classification(train_dataloaders=pl.DataLoader(train, batch_size=64, shuffle=True),
                                  val_dataloaders=pl.DataLoader(val, batch_size=64), num_classes=10, max_epochs=2,
                                  **QUIET)
    exp = RetiariiExperiment(Net(), evaluator, [], strategy.Proxyless(seed=0, arch_update_every=1))
    config = RetiariiExeConfig('local')
    config.experiment_name = name
    config.execution_engine = 'oneshot'
    config.trial_concurrency = 1
    config.max_trial_number = 10
    config.training_service.use_active_gpu = False
    config.experiment_working_directory = str(workdir)
    if port is None:
        exp.run(config)
    else:
        exp.run(config, port)
    return exp


def _native_search(workdir: Path) -> NasExperiment:
    """The same search written for NNI 3.0: NasExperiment, Classification, Proxyless."""
    torch.manual_seed(0)
    train, val = digits_datasets()
    evaluator = Classification(train_dataloaders=DataLoader(train, batch_size=64, shuffle=True),
                               val_dataloaders=DataLoader(val, batch_size=64), num_classes=10, max_epochs=2,
                               **QUIET)
    exp = NasExperiment(NativeNet(), evaluator, Proxyless(seed=0, arch_update_every=1))
    exp.config.experiment_working_directory = str(workdir)
    exp.run()
    exp.stop()
    return exp


@pytest.fixture(scope='module')
def searched(tmp_path_factory):
    """The 2.x script run once with an explicit port while NNI_PROXYLESS_WEB_UI=off, and the native search."""
    root = tmp_path_factory.mktemp('retiarii').resolve()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(WEB_UI_ENV, 'off')
        retiarii = _retiarii_search(root, port=free_port())
    yield retiarii, _native_search(root)
    forget_experiments(root)


# --- tests ----------------------------------------------------------------------------------------

def test_retiarii_script_exports_what_nas_experiment_exports(searched):
    """Same seed, same space: the 2.x script's dict and instance exports equal the native NasExperiment's."""
    retiarii, native = searched
    ours = retiarii.export_top_models(top_k=3, formatter='dict')
    theirs = native.export_top_models(top_k=3, formatter='dict')
    assert [dict(a) for a in ours] == [dict(a) for a in theirs] and len(ours) == 3
    assert [a.probability for a in ours] == pytest.approx([a.probability for a in theirs], rel=1e-6)
    model, reference = (e.export_top_models(formatter='instance')[0].eval() for e in (retiarii, native))
    assert isinstance(model, Net) and not any(isinstance(m, LayerChoice) for m in model.modules())
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(model(x), reference(x))
    assert retiarii.web_ui is None  # the port was given, but NNI_PROXYLESS_WEB_UI=off


def test_model_wrapper_gives_2x_labels_stable_across_instances():
    """Explicit labels stay; unlabeled choices are model_1, model_2, ... in creation order, the same every time."""
    labels = list(Net().simplify())
    assert labels == ['conv', 'model_1', 'model_2', 'model_3', 'model_4', 'model_5']
    assert list(Net(width=4).simplify()) == labels == list(NativeNet().simplify())
    space = Net(width=8)
    assert isinstance(space, ModelSpace) and space.trace_kwargs == {'width': 8}
    assert Net.__name__ == 'Net' and Net.__module__ == __name__  # pickled by reference like the 2.x class
    arch = {'conv': 2, 'model_1': 1, 'model_2': 2, 'model_3': 1, 'model_4': 0, 'model_5': [1]}
    assert space.freeze(arch)(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_run_with_port_shows_the_search_in_nni_web_ui(experiments_root):
    """exp.run(config, port): a trial with a report per epoch and a final one, under config's name and folder."""
    exp = _retiarii_search(experiments_root, port=free_port(), name='retiarii-webui-test')
    ui = exp.web_ui
    assert ui is not None and ui.experiment_dir.parent == experiments_root
    port = nnictl_view(ui.experiment_id)
    try:
        assert rest(port, 'experiment')['params']['experimentName'] == 'retiarii-webui-test'
        job = wait_for(lambda: rest(port, 'trial-jobs'), 10, 'the search trial')[0]
        assert job['status'] == 'SUCCEEDED'
        records = metric_records(port)
        assert [r['type'] for r in records].count('PERIODICAL') == 2
        final = [r['data'] for r in records if r['type'] == 'FINAL']
        assert final == [pytest.approx(exp.strategy.oneshot_module.reports[-1])]
    finally:
        subprocess.run([str(NNICTL), 'stop', ui.experiment_id], capture_output=True, timeout=60)


def test_entry_point_resolves_to_our_strategy():
    """setup.cfg's nni.nas.strategies entry point 'proxyless' loads nni_proxyless.Proxyless."""
    entry = {e.name: e for e in importlib.metadata.entry_points(group='nni.nas.strategies')}['proxyless']
    assert entry.value == 'nni_proxyless:Proxyless' and entry.load() is Proxyless
    assert strategies()['proxyless'] is Proxyless is strategy.Proxyless


def _space_and_evaluator():
    train, val = digits_datasets(n_train=64)
    return Net(), pl.Classification(train_dataloaders=pl.DataLoader(train, batch_size=32),
                                     val_dataloaders=pl.DataLoader(val, batch_size=32), num_classes=10)


def _graph_engine_run():
    exp = RetiariiExperiment(*_space_and_evaluator(), [], strategy.Proxyless())
    exp.run(RetiariiExeConfig('local', execution_engine='base'))


@pytest.mark.parametrize('call, replacement', [
    (lambda: RetiariiExperiment(*_space_and_evaluator(), [], strategy.Proxyless()).export_top_models(
        formatter='code'), "formatter='dict' and model_space.freeze"),
    (lambda: RetiariiExperiment(*_space_and_evaluator(), [object()], strategy.Proxyless()), 'ModelSpace'),
    (_graph_engine_run, "execution_engine='oneshot'"),
    (lambda: strategy.BaseStrategy, 'nni.nas.strategy.Strategy'),
    (lambda: serialize(nn.Conv2d, 1, 1, 1), 'nni.trace'),
    (lambda: nn.Placeholder, 'LayerChoice'),
    (lambda: RetiariiExperiment(Net(), type('DartsTrainer', (), {'fit': None, 'export': None})()), 'trainer.train()'),
], ids=['formatter-code', 'applied-mutators', 'graph-engine', 'base-strategy', 'serialize', 'placeholder',
        'one-shot-trainer'])
def test_unsupported_2x_calls_name_the_replacement(call, replacement):
    """2.x features NNI 3.0 removed raise RetiariiMigrationError naming what to use instead."""
    with pytest.raises(RetiariiMigrationError, match='not supported in NNI 3.0') as error:
        call()
    assert replacement in str(error.value) and 'docs/migrating.md' in str(error.value)


def test_value_choice_inside_a_module_is_refused_when_built():
    """A ValueChoice as a module argument fails when the space is built, naming the label and LayerChoice."""
    @model_wrapper
    class Widths(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, nn.ValueChoice([8, 16], label='width'), 3)

    with pytest.raises(RetiariiMigrationError, match=r"ValueChoice 'width' \[8, 16\].*nn\.LayerChoice"):
        Widths()


def test_ignored_config_fields_are_logged_once(caplog):
    """Fields a one-shot search cannot honour are listed in one warning, once per config."""
    config = RetiariiExeConfig('local', execution_engine='oneshot', experiment_name='x', max_trial_number=5)
    config.max_experiment_duration = '1h'
    config.training_service.use_active_gpu = False
    with caplog.at_level('INFO', logger='nni.proxyless.retiarii'):
        nas_config = config.to_nas_config(one_shot=True)
        config.to_nas_config(one_shot=True)
    [record] = [r for r in caplog.records if r.name == 'nni.proxyless.retiarii']
    assert record.levelname == 'WARNING' and 'experiment_name' not in record.message
    for field in ("max_trial_number=5", "max_experiment_duration='1h'", 'training_service.use_active_gpu=False'):
        assert field in record.message
    assert nas_config.experiment_name == 'x' and nas_config.execution_engine.name == 'sequential'


def test_cell_is_searched(experiments_root):
    """A 2.x nn.Cell (merge_op='all') is searched by Proxyless: its choices export and freeze."""
    @model_wrapper
    class CellNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(1, 4, 3, padding=1)
            self.cell = nn.Cell([nn.Conv2d(4, 4, 3, padding=1), nn.MaxPool2d(3, 1, 1)], num_nodes=2)
            self.fc = nn.Linear(4 * 2 * 64, 10)

        def forward(self, x):
            return self.fc(self.cell([self.stem(x)]).flatten(1))

    train, val = digits_datasets(n_train=256)
    evaluator = pl.Classification(train_dataloaders=pl.DataLoader(train, batch_size=64),
                                  val_dataloaders=pl.DataLoader(val, batch_size=64), num_classes=10, max_epochs=1,
                                  **QUIET)
    exp = RetiariiExperiment(CellNet(), evaluator, [], strategy.Proxyless(seed=0, arch_update_every=1))
    exp.run(RetiariiExeConfig(execution_engine='oneshot', experiment_working_directory=str(experiments_root)))
    [arch] = exp.export_top_models(formatter='dict')
    assert len(arch) == 4 and CellNet().freeze(arch)(torch.zeros(1, 1, 8, 8)).shape == (1, 10)


def test_example_runs_in_smoke_mode(tmp_path):
    """examples/retiarii_style.py --smoke runs to the end (exit 0) and prints the top architectures."""
    env = dict(os.environ, HOME=str(tmp_path))
    result = subprocess.run([sys.executable, str(EXAMPLE), '--smoke'], cwd=tmp_path, env=env, timeout=240,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Top-3 architectures' in result.stdout and "'conv'" in result.stdout


def test_classification_without_num_classes_runs_and_exports(experiments_root, caplog):
    """pl.Classification as NNI 2.x's docs wrote it (no num_classes): the search runs, exports, and the log says
    which number of classes it inferred (10, the width of Net's output)."""
    train, val = digits_datasets(n_train=256)
    evaluator = pl.Classification(train_dataloaders=pl.DataLoader(train, batch_size=64),
                                  val_dataloaders=pl.DataLoader(val, batch_size=64), max_epochs=1, **QUIET)
    exp = RetiariiExperiment(Net(), evaluator, [], strategy.Proxyless(seed=0, arch_update_every=1))
    with caplog.at_level('INFO', logger='nni.proxyless.retiarii'):
        exp.run(RetiariiExeConfig(execution_engine='oneshot', experiment_working_directory=str(experiments_root)))
    [arch] = exp.export_top_models(formatter='dict')
    assert Net().freeze(arch)(torch.zeros(1, 1, 8, 8)).shape == (1, 10)
    assert 'num_classes=10, inferred' in caplog.text
    assert 0 <= exp.strategy.oneshot_module.reports[-1]['default'] <= 1


def test_inferred_accuracy_is_top1_accuracy():
    """The accuracy of a Classification without num_classes is the fraction of argmax hits, over 7 classes."""
    torch.manual_seed(0)
    evaluator = pl.Classification(train_dataloaders=pl.DataLoader([(torch.zeros(1), 0)]), max_epochs=1)
    metric = evaluator.module.metrics['acc']
    logits, target = torch.randn(50, 7), torch.randint(0, 7, (50,))
    assert metric(logits, target).item() == pytest.approx((logits.argmax(1) == target).float().mean().item())
    assert metric.accuracy.num_classes == 7
    with pytest.raises(ValueError, match=r'got shape \(4,\).*num_classes='):
        pl.Classification(max_epochs=1).module.metrics['acc'](torch.zeros(4), torch.zeros(4))
