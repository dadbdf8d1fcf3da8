"""The expected latency ``E`` of a table, vectorised: the one place it is computed (docs/design.md,
"The table and its expectation").

    E = fixed + sum over terms of P(term used) * sum over combinations c of prod_l w_l(c_l) * cost(c)

A table of a cell or value-choice space has thousands of terms; a loop over them would cost as much as an
architecture step. So the table is compiled once into tensors: the terms grouped by the labels they depend on
(one stacked cost tensor per group, contracted with the labels' weights), and every distinct enclosing condition
as index tuples (its probability ``sum over selecting tuples of prod_l w_l(t_l)``, gathered per group of
conditions on the same labels). ``P(term used)`` is the product of its conditions' probabilities.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import torch

from ..labels import Condition
from ._term import Term

__all__ = ['CompiledExpectation']


class CompiledExpectation:
    """``E`` of one table for any per-label weights (differentiable in every weight).

    Args:
        candidates: the table's candidate values of every label.
        fixed: the table's fixed part.
        terms: the table's terms (read once).
        device: where the compiled tensors live (the weights' device).
    """

    def __init__(self, *, candidates: dict[str, list], fixed: float, terms: Sequence[Term],
                 device: torch.device = torch.device('cpu')):
        self.fixed = float(fixed)
        positions = {label: {_key(v): i for i, v in enumerate(values)} for label, values in candidates.items()}
        conditions: dict[Condition, int] = {}
        for term in terms:
            for condition in term.when:
                conditions.setdefault(condition, len(conditions))
        self.n_conditions = len(conditions)
        # conditions grouped by their labels: (labels, index tuples (N, k), which condition each tuple belongs to)
        grouped: dict[tuple, list] = defaultdict(lambda: [[], []])
        for condition, index in conditions.items():
            for values in condition.selecting:
                grouped[condition.labels][0].append([positions[l][_key(v)] for l, v in zip(condition.labels, values)])
                grouped[condition.labels][1].append(index)
        self.condition_groups = [(labels, torch.tensor(rows, dtype=torch.long).view(-1, len(labels)).to(device),
                                  torch.tensor(owners, dtype=torch.long).to(device))
                                 for labels, (rows, owners) in grouped.items()]
        # terms grouped by their labels: stacked costs and, per term, its conditions (padded with the always-true -1)
        by_labels: dict[tuple, list] = defaultdict(list)
        for term in terms:
            by_labels[term.labels].append(term)
        width = max((len(term.when) for term in terms), default=0)
        self.term_groups = []
        for labels, group in by_labels.items():
            shape = (len(group), *(len(candidates[label]) for label in labels))
            costs = torch.tensor([term.costs for term in group], dtype=torch.float64).view(shape)
            used = torch.full((len(group), max(width, 1)), -1, dtype=torch.long)
            for row, term in enumerate(group):
                used[row, :len(term.when)] = torch.tensor([conditions[c] for c in term.when], dtype=torch.long)
            self.term_groups.append((labels, costs.to(device), used.to(device)))
        self.device = device

    def __call__(self, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        """``E`` under per-label weights (probabilities, or ``two``-mode pair weights zero outside the pair)."""
        device = self.device
        probabilities = torch.cat([torch.zeros(self.n_conditions, dtype=torch.float64, device=device),
                                   torch.ones(1, dtype=torch.float64, device=device)])  # index -1: no condition
        for labels, rows, owners in self.condition_groups:
            product = torch.ones(len(rows), dtype=torch.float64, device=device)
            for i, label in enumerate(labels):
                product = product * weights[label].double()[rows[:, i]]
            probabilities = probabilities.index_add(0, owners, product)
        total = torch.zeros((), dtype=torch.float64, device=device) + self.fixed
        for labels, costs, used in self.term_groups:
            for label in reversed(labels):  # contract the last label first
                costs = costs @ weights[label].double()
            total = total + (probabilities[used].prod(dim=1) * costs).sum()
        return total


def _key(value):
    """A candidate value as it appears in conditions (an InputChoice's one-input sample ``[j]`` is ``j``)."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return value[0]
    return tuple(value) if isinstance(value, list) else value
