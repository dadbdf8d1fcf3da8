"""The callbacks that show a search while it runs: the progress bar agrees with the epoch's log line, which stays
short; the whole architecture goes to DEBUG and to the run's folder."""

from __future__ import annotations

import ast
import json
import logging
import re
from pathlib import Path

import pytest
import torch
from pytorch_lightning.callbacks import TQDMProgressBar

from nni_proxyless import Proxyless
from nni_proxyless.callbacks import ArchitectureLogger

from conftest import ConvSpace, digits_evaluator, run_search


class RecordingBar(TQDMProgressBar):
    """Lightning's progress bar, recording the figures it shows when each training epoch ends."""

    def __init__(self):
        super().__init__()
        self.shown: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer, pl_module):
        super().on_train_epoch_end(trainer, pl_module)
        postfix = self.train_progress_bar.postfix or ''
        self.shown.append(_numbers(r'(\w+)=([-\d.e]+)', postfix))   # 'train_loss=2.190, entropy=0.139, ...'


def _numbers(pattern: str, text: str) -> dict[str, float]:
    return {name: float(value) for name, value in re.findall(pattern, text)}


class Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []  # INFO and above
        self.debug: list[str] = []

    def emit(self, record):
        (self.messages if record.levelno >= logging.INFO else self.debug).append(record.getMessage())


def test_progress_bar_shows_each_epochs_figures_at_its_end(tmp_path):
    """At the end of every epoch, the progress bar shows the entropy and latencies of that epoch's log line."""
    lines, logger = Lines(), logging.getLogger('nni.proxyless')
    logger.addHandler(lines)
    level, bar = logger.level, RecordingBar()
    logger.setLevel(logging.DEBUG)
    try:
        torch.manual_seed(0)
        strategy = Proxyless(seed=0, arch_update_every=1, applied_hardware='flops', dummy_input=(1, 1, 8, 8),
                             grad_reg_loss_type='add#linear', grad_reg_loss_params={'lambda': 0.1}, ref_latency=0.01)
        evaluator = digits_evaluator(epochs=3, enable_progress_bar=True, callbacks=[bar], limit_train_batches=4)
        run_search(ConvSpace(), strategy, evaluator, tmp_path)
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
    # 'Epoch 2: entropy 0.1394, expected_latency_MFLOPs 0.03021, ...; most probable changed: conv1 k3 -> k5'
    logged = [_numbers(r'(\w+) ([-\d.e]+)', line.split(':', 1)[1].split(';')[0])
              for line in lines.messages if re.match(r'Epoch \d+:', line)]
    assert len(logged) == len(bar.shown) == 3
    entropies = [figures['entropy'] for figures in logged]
    assert all(abs(a - b) > 0.05 * a for a, b in zip(entropies, entropies[1:]))  # a figure a stale bar would miss
    for shown, figures in zip(bar.shown, logged):
        assert set(figures) == {'entropy', 'expected_latency_MFLOPs', 'argmax_latency_MFLOPs'}
        for name, value in figures.items():
            assert shown[name] == pytest.approx(value, rel=5e-3), name   # the bar shows 3 digits, the log 4
    # The lines name what changed in the most probable architecture, logged whole at DEBUG level
    full = [ast.literal_eval(line.split('architecture ', 1)[1]) for line in lines.debug
            if re.match(r'Epoch \d+: most probable architecture', line)]
    said = [line.split('; ', 1)[1] for line in lines.messages if re.match(r'Epoch \d+:', line)]
    assert len(full) == 3 and said[0] == f'most probable architecture {full[0]}'
    for before, after, line in zip(full, full[1:], said[1:]):
        changed = [f'{label} {before[label]} -> {after[label]}' for label in after if before[label] != after[label]]
        assert line == (f'most probable changed: {", ".join(changed)}' if changed else
                        'most probable architecture unchanged')


def test_epoch_line_stays_short_on_large_spaces():
    """With many labels: the first line counts them, later lines name at most SHOWN_CHANGES changes."""
    from nni_proxyless.callbacks.architecture_log import SHOWN_CHANGES
    logger = ArchitectureLogger()
    first = {f'block{i}_kernel': 3 for i in range(40)}
    assert logger._changes(first) == 'most probable architecture of 40 labels (at DEBUG level)'
    logger.previous = first
    second = {**first, **{f'block{i}_kernel': 5 for i in range(SHOWN_CHANGES + 2)}}
    line = logger._changes(second)
    assert line.startswith('most probable changed: block0_kernel 3 -> 5, ') and line.endswith(' and 2 more')
    assert line.count('->') == SHOWN_CHANGES and len(line) < 200


def test_each_epochs_architecture_is_appended_to_the_runs_folder(tmp_path):
    """One JSON line per epoch in the logger's folder: its epoch, its figures and the whole most probable
    architecture, the last one the architecture the search exports."""
    torch.manual_seed(0)
    strategy = Proxyless(seed=0, arch_update_every=1)
    evaluator = digits_evaluator(epochs=3, limit_train_batches=4, logger=True, default_root_dir=str(tmp_path))
    run_search(ConvSpace(), strategy, evaluator, tmp_path)
    logger = next(c for c in strategy.oneshot_module.trainer.callbacks if isinstance(c, ArchitectureLogger))
    assert logger.written_to is not None and logger.written_to.parent == Path(strategy.oneshot_module.trainer.log_dir)
    lines = [json.loads(line) for line in logger.written_to.read_text().splitlines()]
    assert [line['epoch'] for line in lines] == [0, 1, 2]
    assert set(lines[-1]['architecture']) == set(strategy.oneshot_module.arch.labels())
    assert lines[-1]['architecture'] == dict(strategy.top_architectures(1)[0])
    assert lines[-1]['figures']['entropy'] == pytest.approx(strategy.oneshot_module.arch.entropy(), rel=1e-6)


def test_without_a_logger_no_architecture_file_is_written(tmp_path):
    strategy = Proxyless(seed=0, arch_update_every=1)
    run_search(ConvSpace(), strategy, digits_evaluator(epochs=1, limit_train_batches=2), tmp_path)
    logger = next(c for c in strategy.oneshot_module.trainer.callbacks if isinstance(c, ArchitectureLogger))
    assert logger.written_to is None and not list(tmp_path.rglob('architectures.jsonl'))
