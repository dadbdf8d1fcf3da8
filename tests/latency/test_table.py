"""LatencyTable: expectation against enumeration, saving and loading, corrupt and mismatched files."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from nni_proxyless.latency import LatencyTable, TableError, Term


def _table() -> LatencyTable:
    """depth in {1, 2, 3}; block b1 counts when depth > 1 (with a constant 0.5), b2 when depth > 2."""
    return LatencyTable(
        labels={'depth': [1, 2, 3], 'b0': ['x', 'y'], 'b1': ['x', 'y'], 'b2': ['x', 'y'], 'op': [0, 1, 2]},
        fixed=2.0,
        terms=[Term((1.0, 4.0), 'b0'), Term((1.5, 3.0), 'b1', (('depth', (2, 3)),)),
               Term((0.5,), None, (('depth', (2, 3)),)), Term((2.0, 1.0), 'b2', (('depth', (3,)),)),
               Term((0.1, 0.2, 9.0), 'op')])


def test_predict_by_hand():
    """depth 2, b0=y, b1=x, op=2: 2 + 4 + 1.5 + 0.5 + 9 = 17 (b2 unused, even when given)."""
    table = _table()
    assert table.predict({'depth': 2, 'b0': 'y', 'b1': 'x', 'op': 2}) == pytest.approx(17.0)
    assert table.predict({'depth': 2, 'b0': 'y', 'b1': 'x', 'b2': 'y', 'op': 2}) == pytest.approx(17.0)


def test_expected_equals_enumeration():
    """The differentiable expectation equals sum over every architecture of P(arch) * predict(arch)."""
    table = _table()
    gen = torch.Generator().manual_seed(0)
    probs = {label: torch.softmax(torch.randn(len(values), generator=gen, dtype=torch.float64), -1)
             for label, values in table.labels.items()}
    brute = 0.0
    for values in itertools.product(*(range(len(v)) for v in table.labels.values())):
        arch = {label: table.labels[label][i] for label, i in zip(table.labels, values)}
        p = math.prod(probs[label][i].item() for label, i in zip(table.labels, values))
        brute += p * table.predict(arch)
    assert table.expected(probs).item() == pytest.approx(brute, rel=1e-9)


def test_save_and_load_round_trip(tmp_path):
    """A saved table loads back equal, and the file is versioned JSON."""
    path = tmp_path / 'table.json'
    _table().save(path)
    assert json.loads(path.read_text())['version'] == 2
    assert LatencyTable.load(path) == _table()


def test_corrupt_file_is_named(tmp_path):
    """A truncated file raises TableError naming the file."""
    path = tmp_path / 'broken.json'
    _table().save(path)
    path.write_text(path.read_text()[:40])
    with pytest.raises(TableError, match='broken.json'):
        LatencyTable.load(path)


def test_mismatched_candidates_name_file_and_label(tmp_path):
    """A table whose label has other candidates than the space is refused, naming the file and the label."""
    path = tmp_path / 'other.json'
    _table().save(path)
    space_labels = dict(_table().labels, op=[0, 1, 2, 3])
    with pytest.raises(TableError, match=r"other.json: label 'op' has candidates \[0, 1, 2\]"):
        LatencyTable.load(path).check_space(space_labels, str(path))


def test_cost_count_mismatch_names_label(tmp_path):
    """A hand-edited file with a missing cost is refused, naming the file and the label."""
    path = tmp_path / 'edited.json'
    data = _table().to_json()
    data['terms'][-1]['costs'] = [0.1, 0.2]
    path.write_text(json.dumps(data))
    with pytest.raises(TableError, match=r"edited.json: a term on labels \['op'\] has 2 costs; their candidates"):
        LatencyTable.load(path)


def test_other_version_is_refused(tmp_path):
    """A file of another format version is refused with both versions named."""
    path = tmp_path / 'future.json'
    data = dict(_table().to_json(), version=99)
    path.write_text(json.dumps(data))
    with pytest.raises(TableError, match='future.json has format version 99'):
        LatencyTable.load(path)
