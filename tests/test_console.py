"""What a search prints when its output is redirected: no NNI noise that our flow triggers, no colour codes; and
that it leaves the process's logging and warnings as it found them."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

_SEARCH = """
import logging, sys, warnings
import torch
from torch import nn
import nni_proxyless
from nni_proxyless import Proxyless
from nni.nas.evaluator.pytorch import Classification, DataLoader
from nni.nas.experiment import NasExperiment
from nni.nas.nn.pytorch import LayerChoice, ModelSpace

class Space(ModelSpace):
    def __init__(self):
        super().__init__()
        self.hidden = LayerChoice({'a': nn.Linear(4, 8), 'b': nn.Linear(4, 8)}, label='hidden')
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.hidden(x))

data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
evaluator = Classification(train_dataloaders=DataLoader(data, batch_size=8),
                           val_dataloaders=DataLoader(data, batch_size=8), num_classes=2, max_epochs=1,
                           enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                           default_root_dir=sys.argv[1])   # a logger: Lightning's log_every_n_steps warning
exp = NasExperiment(Space(), evaluator, Proxyless(seed=0))
exp.config.experiment_working_directory = sys.argv[1]
exp.run()
logging.getLogger('nni.nas.experiment.config.experiment').warning('a warning of the same logger stays')
warnings.warn('a user warning stays')
"""


def test_redirected_search_output_has_no_nni_noise_and_no_colour_codes(tmp_path: Path):
    """Redirected: none of the NNI, Lightning and torch messages our flow triggers (training_service x many,
    checkpoint callback, stepping batches, log_every_n_steps, LeafSpec), no ANSI escape until the search ends;
    our epoch line, another message of the same NNI logger and the user's warning still show."""
    env = dict(os.environ, HOME=str(tmp_path))
    result = subprocess.run([sys.executable, '-c', _SEARCH, str(tmp_path / 'nni')], capture_output=True, text=True,
                            timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert 'training_service` will be ignored' not in output
    assert 'Checkpoint callback is found to be None' not in output
    assert 'Loading `train_dataloader`' not in output and 'logging interval' not in output
    assert 'LeafSpec' not in output
    searched = result.stdout[:result.stdout.index('Epoch 0: entropy')]
    assert 'Experiment initialized successfully' in searched and '\x1b[' not in searched
    assert 'Epoch 0: entropy' in result.stdout and 'a warning of the same logger stays' in result.stdout
    assert 'a user warning stays' in result.stderr


def test_only_the_named_messages_are_dropped(caplog):
    """During a search the web UI's 'Successfully update maxTrialNumber.' is dropped; another update of the same
    logger is not, nor the same message after the search."""
    import logging

    from nni_proxyless._console import search_console

    with caplog.at_level(logging.INFO, logger='nni.experiment'):
        with search_console():
            logging.getLogger('nni.experiment').info('Successfully update %s.', 'maxTrialNumber')
            logging.getLogger('nni.experiment').info('Successfully update %s.', 'trialConcurrency')
        logging.getLogger('nni.experiment').info('Successfully update %s.', 'maxTrialNumber')
    assert [r.getMessage() for r in caplog.records] == ['Successfully update trialConcurrency.',
                                                        'Successfully update maxTrialNumber.']


def _logging_and_warnings() -> tuple[dict, list, dict]:
    """Every logger's handlers, filters, level and propagation; the warnings filters; each handler's formatter."""
    loggers = {name: logger for name, logger in logging.Logger.manager.loggerDict.items()
               if isinstance(logger, logging.Logger)}
    loggers[''] = logging.getLogger()

    def handlers(logger: logging.Logger) -> tuple:  # pytest's capture handlers come and go with its phases
        return tuple(h for h in logger.handlers if not type(h).__module__.startswith('_pytest'))

    return ({name: (handlers(logger), tuple(logger.filters), logger.level, logger.propagate)
             for name, logger in loggers.items() if handlers(logger) or logger.filters or logger.level},
            list(warnings.filters),
            {handler: handler.formatter for logger in loggers.values() for handler in handlers(logger)})


def test_a_search_leaves_logging_and_warnings_as_it_found_them(tmp_path, monkeypatch):
    """After ``exp.run()`` the process's logging handlers, filters, formatters, warnings filters and NNI's trial
    command channel are those it had before the strategy was built (stdout redirected), but for the log file NNI's
    experiment keeps until ``exp.stop()``; after ``stop`` they are all the same."""
    import io

    from nni_proxyless import Proxyless

    from conftest import ConvSpace, digits_evaluator, run_search

    from nni.runtime.trial_command_channel import get_default_trial_command_channel

    monkeypatch.setattr(sys, 'stdout', io.StringIO())  # not a terminal
    before, channel = _logging_and_warnings(), get_default_trial_command_channel()
    strategy = Proxyless(seed=0)
    exp = run_search(ConvSpace(), strategy, digits_evaluator(epochs=1), tmp_path)
    after = _logging_and_warnings()
    assert get_default_trial_command_channel() is channel
    nni_log = [h for h in logging.getLogger('nni').handlers if isinstance(h, logging.FileHandler)
               and Path(h.baseFilename).is_relative_to(tmp_path)]
    assert len(nni_log) == 1, 'NNI keeps its experiment log until stop'
    loggers, formatters = dict(after[0]), dict(after[2])
    handlers, *rest = loggers.pop('nni')
    assert (tuple(h for h in handlers if h not in nni_log), *rest) == before[0]['nni']
    del formatters[nni_log[0]]
    assert ({**loggers, 'nni': before[0]['nni']}, after[1], formatters) == before
    exp.stop()
    assert _logging_and_warnings() == before
