"""Reliability: a 2-process DDP search, resume after SIGKILL, checkpoints of plain values, NaN losses, bad shapes,
atomic files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

import nni
from nni.nas.nn.pytorch import Cell, InputChoice, LayerChoice, ModelSpace, MutableLinear, Repeat
from nni_proxyless import Proxyless
from nni_proxyless._io import write_json_atomically

from conftest import digits_evaluator, run_search

SCRIPT = Path(__file__).parent / 'scripts' / 'search_digits.py'


def _run(out: Path, *options: str, expect_kill: bool = False, env: dict[str, str] | None = None) -> None:
    env = dict(os.environ, **(env or {}), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, str(SCRIPT), str(out), *options], env=env, capture_output=True,
                          text=True, timeout=600)
    if expect_kill:
        assert done.returncode == -9, done.stderr[-3000:]
    else:
        assert done.returncode == 0, done.stderr[-3000:]


def test_two_process_ddp_search_agrees_on_every_rank(tmp_path):
    """Under DDP (gloo, 2 processes) both ranks end with identical logits and exports; rank 0 draws the plots.

    The space has BatchNorm: every validation, and the exported instance, run with the same recomputed
    statistics on both ranks; and a sliced stem (a kernel-size value choice), whose weights must get the same
    averaged gradients on both ranks."""
    _run(tmp_path, '--ddp', '--epochs', '2', '--logger', '--space', 'batchnorm')
    assert len(list((tmp_path / 'logs').glob('lightning_logs/version_*/probabilities.png'))) == 1
    rank0, rank1 = (json.loads((tmp_path / f'rank{r}.json').read_text()) for r in (0, 1))
    assert rank0['logits'] == rank1['logits']
    assert rank0['export'] == rank1['export']
    assert rank0['weights'] == rank1['weights']
    assert len(rank0['validation_statistics']) == 2
    assert rank0['validation_statistics'] == rank1['validation_statistics']
    assert rank0['instance_statistics'] == rank1['instance_statistics']
    assert any(abs(v) > 0 for logits in rank0['logits'].values() for v in logits)


@pytest.mark.parametrize('options', [(), ('--space', 'value', '--hardware', 'flops'),
                                     ('--space', 'value', '--hardware', 'cpu')], ids=['layer', 'flops', 'cpu'])
def test_sigkilled_search_resumes_to_the_same_export(tmp_path, options):
    """Killed mid-epoch and resumed from its last checkpoint, a search ends exactly as an uninterrupted one.

    Also for value choices with a latency table, FLOPs or measured: the measurements are shared through the
    cache by the uninterrupted and the interrupted run, then the cache is deleted, so that the resumed run
    measures different latencies and must take the checkpoint's table to end the same."""
    cache = {'NNI_PROXYLESS_CACHE': str(tmp_path / 'cache')}
    _run(tmp_path / 'whole', '--epochs', '3', *options, env=cache)
    interrupted = tmp_path / 'interrupted'
    _run(interrupted, '--epochs', '3', '--kill-at-step', '25', *options, expect_kill=True, env=cache)  # 16 a epoch
    checkpoint = interrupted / 'checkpoints' / 'last.ckpt'
    assert checkpoint.exists()
    shutil.rmtree(tmp_path / 'cache', ignore_errors=True)
    _run(interrupted, '--epochs', '3', '--resume', str(checkpoint), *options, env=cache)
    whole, resumed = (json.loads((d / 'rank0.json').read_text()) for d in (tmp_path / 'whole', interrupted))
    assert resumed['export'] == whole['export']
    assert resumed['logits'] == whole['logits'] and resumed['step_count'] == whole['step_count']
    for path in [*(tmp_path / 'whole' / 'checkpoints').glob('*.ckpt'), *(interrupted / 'checkpoints').glob('*.ckpt')]:
        _assert_plain(torch.load(path, weights_only=True), path.name)


def _assert_plain(value, where: str) -> None:
    """Every leaf of a loaded checkpoint is a tensor or a plain Python value (exact types, no subclass)."""
    if isinstance(value, torch.Tensor) or type(value) in (int, float, bool, str, type(None)):
        return
    if type(value) in (dict, OrderedDict):
        for key, item in value.items():
            _assert_plain(key, f'{where} key {key!r}')
            _assert_plain(item, f'{where}[{key!r}]')
    elif type(value) in (list, tuple):
        for index, item in enumerate(value):
            _assert_plain(item, f'{where}[{index}]')
    else:
        raise AssertionError(f'{where} is a {type(value).__module__}.{type(value).__qualname__}: {value!r}')


class EveryChoice(ModelSpace):
    """A Cell (labels NNI makes inside it), Repeats whose depths are expressions of one label, an InputChoice and
    a width value choice: every way a label reaches the latency table and the checkpoint."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(64, 16)
        self.cell = Cell({'a': lambda node, op, inp: nn.Linear(16, 16),
                          'b': lambda node, op, inp: nn.Sequential(nn.Linear(16, 16), nn.Tanh())},
                         num_nodes=2, num_predecessors=1, label='cell')
        depth = nni.choice('depth', [3, 4, 6])
        self.stages = nn.ModuleList(Repeat(lambda _: nn.Sequential(nn.Linear(32, 32), nn.Tanh()),
                                           (i + 1) * depth // 3 - i * depth // 3) for i in range(2))
        self.skip = InputChoice(2, 1, label='skip')
        width = nni.choice('width', [8, 16])
        self.hidden, self.head = MutableLinear(32, width), MutableLinear(width, 10)

    def forward(self, x):
        x = y = self.cell([torch.relu(self.stem(x.flatten(1)))])
        for stage in self.stages:
            y = stage(y)
        return self.head(torch.relu(self.hidden(self.skip([x, y]))))


def test_checkpoints_of_every_choice_kind_load_as_plain_values(tmp_path):
    """With a latency table over every kind of choice, a checkpoint loads with weights_only=True and holds only
    tensors and plain Python values (no NNI label objects)."""
    from pytorch_lightning.callbacks import ModelCheckpoint
    evaluator = digits_evaluator(epochs=1, limit_train_batches=3, enable_checkpointing=True,
                                 callbacks=[ModelCheckpoint(dirpath=tmp_path / 'checkpoints', save_last=True)])
    strategy = Proxyless(seed=0, applied_hardware='flops', dummy_input=(1, 1, 8, 8), grad_reg_loss_type='add#linear',
                         grad_reg_loss_params={'lambda': 0.1}, ref_latency=0.01)
    run_search(EveryChoice(), strategy, evaluator, tmp_path)
    assert {'cell/op_1_0', 'depth', 'skip', 'width'} <= set(strategy.arch.labels())
    path = tmp_path / 'checkpoints' / 'last.ckpt'
    _assert_plain(torch.load(path, weights_only=True), path.name)


class Unequal(ModelSpace):
    """A choice whose candidates disagree on the output width."""

    def __init__(self):
        super().__init__()
        self.choice = LayerChoice({'narrow': nn.Linear(64, 16), 'wide': nn.Linear(64, 32)}, label='width')
        self.head = nn.LazyLinear(10)

    def forward(self, x):
        return self.head(self.choice(x.flatten(1)))


def test_candidates_of_different_shapes_are_refused_on_the_first_batch(tmp_path):
    """Different output shapes within a choice stop the search at its first batch, naming label and shapes (of the
    first sample, which the first-batch check of the space runs)."""
    with pytest.raises(ValueError, match=r"Choice 'width'.*'narrow': \(1, 16\), 'wide': \(1, 32\)"):
        run_search(Unequal(), Proxyless(seed=0), digits_evaluator(epochs=1), tmp_path)


class Exploding(ModelSpace):
    """Its output turns to NaN after a few training steps."""

    def __init__(self):
        super().__init__()
        self.choice = LayerChoice([nn.Linear(64, 10), nn.Linear(64, 10)], label='op')
        self.calls = 0

    def forward(self, x):
        self.calls += self.training
        y = self.choice(x.flatten(1))
        return y * float('nan') if self.calls > 20 else y


def test_nan_loss_stops_with_a_message_and_keeps_the_last_checkpoint(tmp_path):
    """A NaN loss stops the search with a message; the checkpoint of the last good epoch stays loadable."""
    from pytorch_lightning.callbacks import ModelCheckpoint
    checkpoints = tmp_path / 'checkpoints'
    evaluator = digits_evaluator(epochs=3, enable_checkpointing=True,
                                 callbacks=[ModelCheckpoint(dirpath=checkpoints, save_last=True)])
    with pytest.raises(FloatingPointError, match='loss became nan in the weight step'):
        run_search(Exploding(), Proxyless(seed=0), evaluator, tmp_path)
    state = torch.load(checkpoints / 'last.ckpt', weights_only=True)
    assert state['epoch'] == 0 and state['proxyless']['step_count'] == 16


def test_top_k_must_be_positive(tmp_path):
    """export_top_models(top_k=0) is refused, naming the value."""
    from conftest import ConvSpace
    exp = run_search(ConvSpace(), Proxyless(seed=0), digits_evaluator(epochs=1, limit_train_batches=2), tmp_path)
    with pytest.raises(ValueError, match='top_k must be an integer >= 1, got 0'):
        exp.export_top_models(top_k=0)


def test_crash_while_writing_keeps_the_previous_file(tmp_path, monkeypatch):
    """If writing fails midway (here: the disk sync), the previous file is intact and no temporary is left."""
    path = tmp_path / 'export.json'
    write_json_atomically(path, {'version': 1})

    def broken_fsync(fd):
        raise OSError('disk full')
    monkeypatch.setattr(os, 'fsync', broken_fsync)
    with pytest.raises(OSError, match='disk full'):
        write_json_atomically(path, {'version': 2})
    assert json.loads(path.read_text()) == {'version': 1}
    assert [p.name for p in tmp_path.iterdir()] == ['export.json']
