"""The ground-truth benchmark's scoring: ranks, simulated random search and Kendall tau on a synthetic table."""

from __future__ import annotations

import itertools
import json
import math
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
import _truth as t  # noqa: E402

LABELS = {'a': range(5), 'b': range(4), 'c': range(6)}  # 120 architectures


def _table(noise: float = 0.0, seed: int = 0) -> t.Truth:
    """True accuracy a random permutation of distinct values; search-val = truth plus Gaussian noise per seed."""
    rng = random.Random(seed)
    archs = [dict(zip(LABELS, values)) for values in itertools.product(*LABELS.values())]
    accuracies = rng.sample(range(len(archs)), len(archs))
    rows = []
    for arch, accuracy in zip(archs, accuracies):
        true = accuracy / 1000
        rows.append({'arch': arch, 'true_accuracy': true, 'test': [true] * 3,
                     'val': [true + rng.gauss(0, noise) for _ in range(3)],
                     'short_val': [true + rng.gauss(0, noise) for _ in range(3)]})
    return t.Truth(rows, seeds=3, epochs=30, short_epochs=5)


def test_rank_counts_strictly_better_architectures():
    """Rank and top-10 membership agree with sorting the table by hand."""
    truth = _table()
    ordered = sorted(truth.rows, key=lambda row: -row['true_accuracy'])
    for position in (0, 9, 10, 119):
        score = truth.score(ordered[position]['arch'])
        assert score['rank'] == position + 1
        assert score['in_top'] == (position < 10)
        assert score['regret'] == pytest.approx(ordered[0]['true_accuracy'] - ordered[position]['true_accuracy'])


def test_random_search_top10_chance_matches_the_hypergeometric_formula():
    """Noise-free validation: best of n uniform draws lands in the top 10 with chance 1 - C(110, n) / C(120, n)."""
    truth, repeats = _table(), 4000
    for n in (1, 4, 12):
        summary = t.random_search_summary(truth, budget=5 * n + 4, protocol_epochs=5, repeats=repeats, seed=n)
        exact = 1 - math.comb(110, n) / math.comb(120, n)
        assert summary['architectures'] == n
        assert abs(summary['in_top_fraction'] - exact) < 4 * math.sqrt(exact * (1 - exact) / repeats)


def test_random_search_over_the_whole_space_finds_the_best_and_a_tiny_budget_still_trains_one():
    """A budget for every architecture picks rank 1 (noise-free); a budget under one training trains one."""
    truth = _table()
    rng = random.Random(0)
    assert t.random_search(truth, budget=30 * 200, protocol_epochs=30, rng=rng)['rank'] == 1
    assert t.random_search(truth, budget=2, protocol_epochs=30, rng=rng)['architectures'] == 1
    with pytest.raises(ValueError, match='protocol_epochs'):
        t.random_search(truth, budget=10, protocol_epochs=7, rng=rng)


def test_kendall_tau_of_a_distribution_ordered_like_the_truth():
    """Product probabilities increasing in a score have tau 1 with accuracies increasing in it, -1 reversed."""
    truth = _table()
    weights = {'a': 1, 'b': 5, 'c': 20}  # a + 5b + 20c: a distinct score for each of the 120 architectures
    for row in truth.rows:
        row['true_accuracy'] = sum(weights[label] * value for label, value in row['arch'].items()) / 1000
    probabilities = {}
    for label, values in LABELS.items():
        total = sum(math.exp(weights[label] * u / 10) for u in values)
        probabilities[label] = {v: math.exp(weights[label] * v / 10) / total for v in values}
    assert t.kendall_tau(truth, probabilities) == pytest.approx(1.0)
    for row in truth.rows:
        row['true_accuracy'] = -row['true_accuracy']
    assert t.kendall_tau(truth, probabilities) == pytest.approx(-1.0)


def _value_table(depths: int = 2) -> t.Truth:
    """A hand-made value-space table: width 8/16, depth 1-``depths``, ``kernel{i}`` only for blocks the depth
    uses (canonical rows); true accuracy grows with width, depth and kernels; MFLOPs likewise."""
    rows = []
    for width in (8, 16):
        for depth in range(1, depths + 1):
            for kernels in itertools.product((1, 3), repeat=depth):
                arch = {'width': width, 'depth': depth, **{f'kernel{i}': k for i, k in enumerate(kernels)}}
                score = width + 10 * depth + sum(kernels)
                rows.append({'arch': arch, 'true_accuracy': score / 100, 'test': [score / 100] * 2,
                             'val': [score / 100] * 2, 'short_val': [score / 100] * 2, 'mflops': score / 10})
    return t.Truth(rows, seeds=2, epochs=30, short_epochs=5, space_key='value')


def test_an_export_with_unused_labels_is_found_by_the_row_it_contains():
    """An export carrying the kernels of blocks beyond its depth (as NNI's exports do) scores as its canonical
    row; one whose used labels differ from every row, or that lacks a used label, is refused."""
    truth = _value_table()
    canonical = {'width': 8, 'depth': 1, 'kernel0': 3}
    exported = {**canonical, 'kernel1': 1}
    assert truth.row(exported) is truth.row(canonical)
    assert truth.score(exported) == truth.score(canonical)
    assert truth.row({'width': 16, 'depth': 2, 'kernel0': 1, 'kernel1': 3})['arch']['kernel1'] == 3
    with pytest.raises(KeyError, match='not in the ground-truth table'):
        truth.row({'width': 8, 'depth': 1, 'kernel0': 5, 'kernel1': 1})
    with pytest.raises(KeyError, match='not in the ground-truth table'):
        truth.row({'width': 8, 'depth': 2, 'kernel0': 1})


def test_unused_labels_count_at_their_most_probable_value_in_the_product_distribution():
    """A shallow row's probability includes the most probable value of the labels it leaves out, so it is not
    favoured for having fewer labels."""
    truth = _value_table()
    probabilities = {'width': {8: 0.5, 16: 0.5}, 'depth': {1: 0.5, 2: 0.5}, 'kernel0': {1: 0.5, 3: 0.5},
                     'kernel1': {1: 0.2, 3: 0.8}}
    by_arch = {t.key(row['arch']): p for row, p in zip(truth.rows, t.product_probabilities(truth, probabilities))}
    assert by_arch[t.key({'width': 8, 'depth': 1, 'kernel0': 1})] == pytest.approx(0.5 ** 3 * 0.8)
    assert by_arch[t.key({'width': 8, 'depth': 2, 'kernel0': 1, 'kernel1': 3})] == pytest.approx(0.5 ** 3 * 0.8)


def test_load_keeps_sizes_and_refuses_an_incomplete_table(tmp_path):
    """A complete table of its space loads with its rows' MFLOPs; one row short of it is refused with the
    command that regenerates it."""
    truth = _value_table(depths=3)
    assert len(truth.rows) == 28
    table = {'space_key': 'value', 'seeds': 2, 'epochs': 30, 'short_epochs': 5, 'command': 'made by hand'}
    path = tmp_path / 'table.json'
    rows = truth.rows * 5  # the 117 rows a complete value table holds, by count
    path.write_text(json.dumps({**table, 'architectures': rows[:t.ARCHITECTURES['value']]}))
    loaded = t.Truth.load(path)
    assert loaded.space_key == 'value' and loaded.rows[0]['mflops'] == truth.rows[0]['mflops']
    path.write_text(json.dumps({**table, 'architectures': rows[:t.ARCHITECTURES['value'] - 1]}))
    with pytest.raises(ValueError, match='--space value'):
        t.Truth.load(path)


def test_the_counts_of_complete_tables_are_those_of_the_spaces():
    """``ARCHITECTURES`` holds as many architectures as the digits spaces have (canonical, for the value one)."""
    import _spaces as s
    assert t.ARCHITECTURES == {'cell': len(s.all_samples(s.DigitsCellSpace())),
                               'value': len(s.DigitsValueSpace.architectures())}


def test_an_export_under_a_target_is_scored_among_the_architectures_that_meet_it():
    """Regret and rank count only the qualifying architectures; an export beyond the target is flagged."""
    import _truth_target as target
    truth = _value_table()
    limit = 3.0
    within = truth.restricted(lambda row: row['mflops'] <= limit)
    best = max(within.rows, key=lambda row: row['true_accuracy'])
    assert target.score(truth, within, best['arch'], best['mflops'], limit) | {'mflops_over_target': None} == {
        'true_accuracy': best['true_accuracy'], 'regret': 0.0, 'rank': 1, 'meets_target': True,
        'mflops': best['mflops'], 'mflops_over_target': None}
    beyond = max(truth.rows, key=lambda row: row['true_accuracy'])
    scored = target.score(truth, within, beyond['arch'], beyond['mflops'], limit)
    assert not scored['meets_target'] and scored['rank'] == 1 and scored['regret'] < 0
    assert scored['mflops_over_target'] == pytest.approx(beyond['mflops'] / limit, abs=1e-4)
