"""Architecture parameters: one logit tensor per label, the selections drawn from them, the ``two``-mode rescale.

Every mixed op reads, through the shared :class:`~nni_proxyless.routing.Routing`, which of its label's
candidates run at each step. Labels shared by several choices (or used by several layers, directly or through
expressions) share one logit tensor and one draw per step. Draws come from a ``torch.Generator`` seeded by
``(seed, step, phase)``, so every process of a distributed search draws the same selections without talking,
and a resumed search draws what the uninterrupted one would have drawn. Sampling always happens on the CPU:
logits that live on an accelerator are copied to the host once after each change (one copy for all labels),
so a GPU search draws exactly what a CPU search with the same logits draws, and weight steps never wait for
the device.
"""

from __future__ import annotations

import math
from itertools import combinations, permutations
from typing import Any, Iterator, Literal, Sequence

import torch
from torch import nn

from .labels import Choice, Occurrence
from .routing import Routing, Selection

__all__ = ['ArchParameters', 'Selection', 'BinaryMode', 'draw_log_prob']

BinaryMode = Literal['two', 'full_v2']

_MAX_SUBSETS = 100_000


def draw_log_prob(log_p: torch.Tensor, order: Sequence[int]) -> torch.Tensor:
    """Log-probability of drawing the candidates ``order``, in that order, without replacement (differentiable).

    ``log p(i_1) + log p(i_2) - log(1 - p(i_1)) + ...``; one draw is simply ``log_p[i_1]``.
    """
    total, remaining = log_p.new_zeros(()), log_p.new_ones(())
    for k in order:
        total = total + log_p[k] - torch.log(remaining.clamp_min(1e-300))
        remaining = remaining - log_p[k].exp()
    return total


class ArchParameters(nn.Module):
    """The architecture logits of a search space, one tensor per label.

    Args:
        seed: seeds the sampler; the same seed draws the same selections at the same step.

    Attributes:
        routing: what the supernet's mixed ops run in the next forward (see :class:`Routing`).

    Example::

        arch = ArchParameters(seed=0)
        arch.register(Choice('conv', 'layer', ('k3', 'k5')))
        arch.routing.set(arch.sample(step=0))   # {'conv': Selection(active=(1,))}
    """

    def __init__(self, *, seed: int = 0):
        super().__init__()
        self.seed = int(seed)
        self.choices: dict[str, Choice] = {}
        self.logits = nn.ParameterList()
        self._index: dict[str, int] = {}
        # Labels nested in a Repeat block, a LayerChoice candidate or a cell take part only when their enclosing
        # choices select them: label -> occurrences, each a tuple of conditions that must all hold.
        self.conditions: dict[str, list[Occurrence]] = {}
        self._known_occurrences: dict[str, set[Occurrence]] = {}
        self.routing = Routing(self.choices)
        self._host_key: tuple = ()
        self._host_logits: list[torch.Tensor] = []

    # ----------------------------------------------------------------------------------------- registry

    def register(self, choice: Choice) -> None:
        """Add a label, or check that a shared label chooses from the same candidates."""
        known = self.choices.get(choice.label)
        if known is not None:
            if known != choice:
                raise ValueError(f'Label {choice.label!r} is shared by choices that differ: {known} and {choice}. '
                                 'Shared labels must have the same kind and candidates.')
            return
        if len(choice.values) < 1 or not 1 <= choice.n_chosen <= len(choice.values):
            raise ValueError(f'Label {choice.label!r}: cannot choose {choice.n_chosen} of {len(choice.values)} '
                             'candidates.')
        self.choices[choice.label] = choice
        self._index[choice.label] = len(self.logits)
        self.logits.append(nn.Parameter(torch.zeros(len(choice.values))))

    def add_occurrence(self, label: str, occurrence: Occurrence) -> None:
        """Record one place where ``label`` occurs: active when every condition holds."""
        known = self._known_occurrences.setdefault(label, set())
        if occurrence not in known:
            known.add(occurrence)
            self.conditions.setdefault(label, []).append(occurrence)

    def labels(self) -> list[str]:
        """All labels, in registration order."""
        return list(self.choices)

    def logit(self, label: str) -> nn.Parameter:
        """The logit tensor of ``label``."""
        return self.logits[self._index[label]]

    # ------------------------------------------------------------------------------------ distributions

    def host_logit(self, label: str) -> torch.Tensor:
        """The logits of ``label`` on the CPU, detached (do not modify them: they may be a cached copy)."""
        logit = self.logit(label)
        if logit.device.type == 'cpu':  # the live tensor, without touching every other label's
            return logit.detach()
        return self._on_host()[self._index[label]]

    def probs(self, label: str) -> torch.Tensor:
        """Candidate probabilities of ``label``, on the CPU (a detached copy)."""
        return torch.softmax(self.host_logit(label), dim=-1)

    def _on_host(self) -> list[torch.Tensor]:
        """Every label's logits on the CPU: the live tensors when they are there, else :meth:`_host_copy`."""
        logits = list(self.logits)
        if all(logit.device.type == 'cpu' for logit in logits):
            return [logit.detach() for logit in logits]
        return self._host_copy(logits)

    def _host_copy(self, logits: list[torch.Tensor]) -> list[torch.Tensor]:
        """A CPU copy of ``logits``, made again (in one transfer) only when one of them has changed.

        A change is a new tensor (moved to a device, replaced) or an in-place update (optimiser step, rescale,
        loading a checkpoint), which torch counts in the tensor's version; writes through ``.data`` are not
        counted and not seen.
        """
        key = tuple((logit.device, logit.data_ptr(), logit._version) for logit in logits)
        if key != self._host_key:
            flat = torch.cat([logit.detach().reshape(-1) for logit in logits]).cpu()
            self._host_logits = list(flat.split([logit.numel() for logit in logits]))
            self._host_key = key
        return self._host_logits

    def entropy(self) -> float:
        """Sum over labels of the entropy (nats) of each label's distribution."""
        return float(sum(torch.special.entr(self.probs(label)).sum() for label in self.choices))

    def is_active(self, label: str, sample: dict[str, Any]) -> bool:
        """Whether ``label`` takes part in the architecture ``sample`` (which gives its enclosing labels)."""
        occurrences = self.conditions.get(label)
        if not occurrences:
            return True
        return any(all(condition.holds(sample) for condition in occurrence) for occurrence in occurrences)

    def ranked(self, label: str) -> list[tuple[Any, float]]:
        """Every value ``label`` can take in an export with its log-probability, most probable first.

        Ties go to the candidate listed first. For an ``InputChoice`` taking ``m > 1`` inputs the values are the
        ``m``-subsets, with the probability of drawing that subset in ``m`` draws without replacement. This
        ranking is the only one: validation's most probable architecture and every export come from it.
        """
        choice = self.choices[label]
        log_p = torch.log_softmax(self.host_logit(label).double(), dim=-1)
        if choice.n_chosen == 1:
            pairs = [(choice.sample_value([i]), float(log_p[i])) for i in range(len(log_p))]
        else:
            pairs = [(choice.sample_value(subset), _log_prob_of_subset(log_p, subset))
                     for subset in _subsets(len(log_p), choice.n_chosen, label)]
        return sorted(pairs, key=lambda pair: -pair[1])  # stable: ties keep the candidates' order

    def argmax(self) -> dict[str, Any]:
        """The most probable value of every label (what validation runs and the top-1 export returns)."""
        return {label: self.ranked(label)[0][0] for label in self.choices}

    def argmax_selections(self) -> dict[str, Selection]:
        """Selections of the most probable architecture (see :meth:`argmax`)."""
        return self.selections_for(self.argmax())

    # --------------------------------------------------------------------------------------- selections

    def generator(self, step: int, phase: int) -> torch.Generator:
        """The sampler for one step and phase (0: weights, 1: architecture, 2 and up: free for callers)."""
        return torch.Generator().manual_seed(((self.seed * 1_000_003 + step) * 1_009 + phase) % (2 ** 63))

    def sample(self, step: int, phase: int = 0) -> dict[str, Selection]:
        """A whole architecture drawn from the distribution (``n_chosen`` inputs for an InputChoice).

        Phase 0 is the weight step's draw; other phases give independent draws at the same step.
        """
        rng = self.generator(step, phase)
        selections = {}
        for label, choice in self.choices.items():
            drawn = torch.multinomial(self.probs(label), choice.n_chosen, generator=rng)
            selections[label] = Selection(active=tuple(drawn.tolist()))
        return selections

    def samples(self, step: int, phase: int, count: int) -> Iterator[dict[str, Selection]]:
        """``count`` independent architectures drawn from the distribution with the generator of one step and phase,
        each label's draws at once (one call per label, not per architecture), yielded one by one."""
        rng = self.generator(step, phase)
        columns = []
        with torch.no_grad():
            for label, choice in self.choices.items():
                probs = self.probs(label)
                if choice.n_chosen == 1:
                    drawn = torch.multinomial(probs, count, replacement=True, generator=rng).view(count, 1)
                else:  # distinct inputs within each architecture
                    drawn = torch.stack([torch.multinomial(probs, choice.n_chosen, generator=rng) for _ in range(count)])
                columns.append((label, drawn.tolist()))
        for k in range(count):
            yield {label: Selection(active=tuple(drawn[k])) for label, drawn in columns}

    def sample_for_update(self, step: int, mode: BinaryMode) -> dict[str, Selection]:
        """Selections for an architecture step, with gates and the live logits.

        ``two`` mode draws two distinct candidates, then the active one from the softmax over the pair;
        ``full_v2`` draws the active candidate from the full distribution and gates all candidates.
        An ``InputChoice`` taking several inputs gates the inputs it draws, weighted over all candidates.
        See docs/design.md, "Architecture step".
        """
        rng = self.generator(step, 1)
        selections = {}
        for label, choice in self.choices.items():
            logits, host, probs = self.logit(label), self.host_logit(label), self.probs(label)
            everything = tuple(range(len(probs)))
            if choice.n_chosen > 1:
                drawn = tuple(torch.multinomial(probs, choice.n_chosen, generator=rng).tolist())
                selections[label] = Selection(active=drawn, gated=drawn, support=everything, logits=logits)
            elif mode == 'two' and len(probs) > 1:
                pair = tuple(torch.multinomial(probs, 2, generator=rng).tolist())
                q = Selection(active=(), support=pair, logits=host).weights()[list(pair)]  # the pair's softmax
                active = pair[int(torch.multinomial(q, 1, generator=rng))]
                selections[label] = Selection(active=(active,), gated=pair, support=pair, logits=logits)
            else:
                active = int(torch.multinomial(probs, 1, generator=rng))
                selections[label] = Selection(active=(active,), gated=everything, support=everything, logits=logits)
        return selections

    def sample_of(self, selections: dict[str, Selection]) -> dict[str, Any]:
        """The NNI sample of an architecture given by its selections (labels it does not use are dropped)."""
        full = {label: self.choices[label].sample_value(s.active) for label, s in selections.items()}
        return {label: value for label, value in full.items() if self.is_active(label, full)}

    def selections_for(self, sample: dict[str, Any]) -> dict[str, Selection]:
        """Selections of a fixed architecture given as an NNI sample (inactive labels may be missing)."""
        selections = {}
        for label, choice in self.choices.items():
            if label not in sample:
                selections[label] = Selection(active=tuple(range(choice.n_chosen)))  # inactive: any valid one
            elif choice.kind == 'input':
                selections[label] = Selection(active=tuple(sample[label]))
            else:
                selections[label] = Selection(active=(choice.values.index(sample[label]),))
        return selections

    def log_prob(self, label: str, selection: Selection) -> torch.Tensor:
        """Log-probability (differentiable) that one draw of ``label`` gives ``selection.active``, in order."""
        return draw_log_prob(torch.log_softmax(self.logit(label), dim=-1), selection.active)

    # ------------------------------------------------------------------------------------- two-mode rescale

    @staticmethod
    def pairs_of(selections: dict[str, Selection]) -> dict[str, tuple[int, ...]]:
        """Labels updated on a sampled pair (``two`` mode) and the pair, for :meth:`rescale`."""
        return {label: s.support for label, s in selections.items()
                if s.logits is not None and len(s.support) < len(s.logits)}

    def snapshot(self, pairs: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
        """The pair logits before an optimiser step (where the logits are)."""
        return {label: _gathered(self.logit(label).detach(), pair).clone() for label, pair in pairs.items()}

    @torch.no_grad()
    def rescale(self, pairs: dict[str, tuple[int, ...]], before: dict[str, torch.Tensor]) -> None:
        """Shift each updated pair so that the candidates outside the pair keep their probabilities.

        With the pair's logits before (old) and after (new) the step,
        ``offset = log(sum exp(new) / sum exp(old))`` and ``a_m -= offset`` for ``m`` in the pair.
        """
        for label, pair in pairs.items():
            logits = self.logit(label)
            offset = torch.logsumexp(_gathered(logits, pair), dim=0) - torch.logsumexp(before[label], dim=0)
            for k in pair:  # integer indexing: no index tensor to copy to the device
                logits[k] -= offset


def _gathered(values: torch.Tensor, indices: Sequence[int]) -> torch.Tensor:
    """``values[list(indices)]`` without an index tensor (which would be copied to the device, a sync)."""
    return torch.stack([values[k] for k in indices])


def _subsets(n: int, m: int, label: str) -> list[tuple[int, ...]]:
    if math.comb(n, m) * math.factorial(m) > _MAX_SUBSETS:
        raise ValueError(f'InputChoice {label!r} chooses {m} of {n} inputs: too many subsets to rank exactly '
                         f'(limit {_MAX_SUBSETS} ordered draws).')
    return list(combinations(range(n), m))


def _log_prob_of_subset(log_p: torch.Tensor, subset: tuple[int, ...]) -> float:
    """Log-probability that ``len(subset)`` draws without replacement give exactly ``subset``, in any order."""
    return float(torch.logsumexp(torch.stack([draw_log_prob(log_p, order) for order in permutations(subset)]), 0))
