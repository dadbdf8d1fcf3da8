"""The sections of docs/benchmarks.md behind two defaults: ``arc_learning_rate='auto'`` (short budgets) and
``bn_recalibration_batches`` (how many batches, at what cost); every number read from the JSON results."""

from __future__ import annotations

from _report_sections import md_table, provenance

CIFAR10_SEARCH_IMAGES = 25_000  # half of CIFAR-10's training set: the weights' half of a search


def headlines(r: dict) -> tuple[str, ...]:
    """The headline bullets of the two sections (empty strings for missing results)."""
    return _headline_budget(r.get('short_budget')), _headline_batchnorm(r.get('batchnorm_recalibration'))


def _headline_budget(b: dict | None) -> str:
    spaces = (b or {}).get('spaces', {})
    equivalent = spaces.get('EquivalentSpace', {}).get('settings', {})
    degrading = spaces.get('DegradingSpace', {}).get('settings', {})
    auto, former = equivalent.get('auto'), equivalent.get('former budget rule (10 / S)')
    planted = degrading.get('auto')
    if not (auto and former and planted):
        return ''
    return (f'**Short budgets** (digits): among equivalent candidates (3 epochs) the default '
            f'`arc_learning_rate=\'auto\'` ends at {100 * auto["entropy_fraction"]:.0f}% of the uniform '
            f'distribution\'s entropy (the former rule: {100 * former["entropy_fraction"]:.0f}%), and on a planted '
            f'space (10 epochs) it exports the planted architecture in {planted["exported_planted"]}/'
            f'{planted["seeds"]} seeds: it follows signal, not noise.')


def _headline_batchnorm(c: dict | None) -> str:
    if not c:
        return ''
    conv = c['batches_needed'].get('DigitsConvSpace')
    shares = ' / '.join(f'{100 * g["search_steps_equivalent"] * g["batch_size"] / CIFAR10_SEARCH_IMAGES:.1f}%'
                        for g in c['cost'])
    loss = conv['distance_mean']['supernet, official rate'] if conv else None
    wrong = (f'after searches at 1e-3 the supernet\'s own statistics cost the top-3 architectures of '
             f'DigitsConvSpace {loss:.2f} validation accuracy on average; ') if conv else ''
    return (f'**BatchNorm recalibration** (digits; hub ProxylessNAS): {wrong}recomputing them on '
            f'{c["cost"][0]["batches"]} batches before each validation costs {shares} of a CIFAR-10 search epoch '
            f'(batch {" / ".join(str(g["batch_size"]) for g in c["cost"])}).')


def short_budget(r: dict, links: dict) -> str:
    b = r.get('short_budget')
    if not b:
        return ''
    parts = ['## Search quality: short budgets (digits)',
             'How far the architecture distribution moves in a search of a few epochs, at the official '
             '`arc_learning_rate=1e-3`, at the default `\'auto\'` (`max(1e-3, NOISE_DRIFT / sqrt(S))` for `S` '
             'architecture steps, `NOISE_DRIFT = 0.25`), with twice the constant ("auto, drift x2") and at the '
             'former default `max(1e-3, 10 / S)`, with `arch_update_every=5` unless stated. Spaces: '
             '`EquivalentSpace` (tests/planted.py: 3 labels x 4 copies of one learnable block; no candidate is '
             'better, so whatever the distribution prefers is noise), `DegradingSpace` (tests/planted.py: 3 '
             'labels x 4 candidates; one learnable block per label, the others pass the signal on weakened and '
             'noisy), `DigitsConvSpace` (3 labels x 10 bottlenecks or skip, BatchNorm) and the quick start\'s '
             '`DigitsSpace` (BatchNorm, a searched depth and skip connection; no latency term here). "Entropy" is '
             'the final entropy over the uniform distribution\'s (1 = it never moved); "top p" the mean over '
             'labels of the largest probability; "validation" the last validation accuracy of the most probable '
             'architecture (BatchNorm statistics recomputed), mean (range) over seeds. Not a timing.']
    for name, space in b['spaces'].items():
        parts += [f'**{name}**, {space["epochs"]} epochs:', md_table(*_budget_table(space))]
    parts += [_budget_notes(b), provenance(b)]
    return '\n\n'.join(parts)


def _budget_table(space: dict) -> tuple[list[str], list[list]]:
    planted = any('settled' in m for m in space['settings'].values())
    headers = ['setting', 'seeds', 'arc_learning_rate', 'entropy', 'top p', 'validation']
    headers += ['export is planted', 'planted p >= 0.5 everywhere'] if planted else []
    rows = []
    for setting, m in space['settings'].items():
        low, high = m['validation_accuracy_range']
        row = [setting, m['seeds'], f'{m["arc_learning_rate"]:.3g}', f'{m["entropy_fraction"]:.3f}',
               f'{m["top_probability"]:.3f}', f'{m["validation_accuracy"]:.3f} ({low:.3f}-{high:.3f})']
        if planted:
            row += [f'{m["exported_planted"]}/{m["seeds"]}', f'{m["settled"]}/{m["seeds"]}']
        rows.append(row)
    return headers, rows


def _budget_notes(b: dict) -> str:
    notes = []
    equivalent = b['spaces'].get('EquivalentSpace', {}).get('settings', {})
    degrading = b['spaces'].get('DegradingSpace', {}).get('settings', {})
    if equivalent:
        figures = '; '.join(f'{name} {m["entropy_fraction"]:.2f}' for name, m in equivalent.items())
        notes.append(f'Among equivalent candidates the entropy ends at (mean over seeds, fraction of the uniform '
                     f'distribution\'s): {figures}. Whatever moved there is noise.')
    if degrading:
        figures = '; '.join(f'{name} {m["exported_planted"]}/{m["seeds"]}' for name, m in degrading.items())
        notes.append(f'On the degrading planted space the export is the planted architecture in: {figures} seeds.')
    notes.append('The logits move by about `arc_learning_rate` per step whatever the gradient\'s size or quality '
                 '(Adam with beta1 = 0): over `S` steps a consistent gradient moves them by up to `rate * S`, noise '
                 'by about `rate * sqrt(S)`. The default sets the rate so that noise moves a logit by about '
                 '`NOISE_DRIFT` whatever the budget; the former rule let it move by `10 / sqrt(S)` (3.3 logit units '
                 'in 9 steps). At the end of a search whose entropy is still 95% of the uniform distribution\'s, a '
                 'warning names the argument to change.')
    return 'Notes. ' + ' '.join(notes)


def batchnorm(r: dict, links: dict) -> str:
    c = r.get('batchnorm_recalibration')
    if not c:
        return ''
    needed = c['batches_needed']
    counts = [n for n in next(iter(needed.values()))['distance_mean'] if not n.startswith('supernet')]
    headers = ['statistics'] + [f'{name}: mean / largest distance' for name in needed]
    rows = [['the supernet\'s own'] + [_distance(m, 'supernet') for m in needed.values()],
            ['the supernet\'s own, searched at 1e-3'] + [_distance(m, 'supernet, official rate')
                                                          for m in needed.values()]]
    rows += [[f'{n} batch{"es" if n != "1" else ""} of 64'] + [_distance(m, n) for m in needed.values()]
             for n in counts]
    cost_headers = ['batch', 'search step', f'one recalibration ({c["cost"][0]["batches"]} batches)',
                    'in search steps', 'share of a CIFAR-10 search epoch']
    cost_rows = [[g['batch_size'], f'{g["search_step_ms"]:.0f} ms', f'{g["recalibration_s"]:.2f} s',
                  f'{g["search_steps_equivalent"]:.1f}',
                  f'{100 * g["search_steps_equivalent"] * g["batch_size"] / CIFAR10_SEARCH_IMAGES:.1f}%']
                 for g in c['cost']]
    references = ', '.join(f'{name} {m["reference_accuracy_mean"]:.3f} ({m["training_batches"]} batches)'
                           for name, m in needed.items())
    return '\n\n'.join([
        '## BatchNorm recalibration: batches needed (digits) and cost (hub ProxylessNAS, 32x32)',
        'Before each validation, and for each exported instance, the BatchNorm statistics of the architecture are '
        'recomputed on the first `bn_recalibration_batches` batches of a seeded pass over the training data '
        f'(default 20). Batches needed: {c["seeds"]} default searches of {c["epochs"]} epochs per space; for each '
        'search\'s top-3 architectures, the validation accuracy of the subnet with its statistics recomputed on '
        f'N batches ({c["pass_seeds"]} different passes per N) against the same with statistics over every '
        f'training batch (mean accuracy: {references}). Distances in accuracy, mean / largest:',
        md_table(headers, rows),
        'Cost: one recalibration of the most probable architecture (statistics saved, the pass, statistics put '
        'back) against the search\'s own training batches (weight step and an architecture step every 5), '
        f'interleaved in one process over {c["cost"][0]["rounds"]} rounds, medians. The share of an epoch is for '
        f'CIFAR-10\'s {CIFAR10_SEARCH_IMAGES:,} weight-training images at that batch size; on the digits sets '
        'the default 20 batches cover the whole training set.',
        md_table(cost_headers, cost_rows),
        _batchnorm_notes(needed, counts),
        provenance(c)])


def _batchnorm_notes(needed: dict, counts: list[str]) -> str:
    notes = []
    enough = next((n for n in counts if all(m['distance_mean'][n] <= 0.005 for m in needed.values())), None)
    if enough is not None:
        notes.append(f'From {enough} batches of 64 on, the statistics score within half a percent of the '
                     'full-data ones on average (a validation image is 0.13-0.17%), so the default 20 leaves a '
                     'margin for data sets whose batches vary more than digits\'.')
    notes.append('The supernet\'s own statistics are furthest off when the distribution is still spread out (the '
                 'official rate in a short search): they then average paths of very different activations. Once '
                 'the search settles, the last weight steps mostly run the most probable path and its statistics '
                 'come close, but not those of the other exported architectures.')
    notes.append('The recalibration is a forward pass per batch, without gradients, through one architecture; it '
                 'runs once per validation and per exported instance, not per step. `bn_recalibration_batches=0` '
                 'turns it off.')
    return 'Notes. ' + ' '.join(notes)


def _distance(m: dict, n: str) -> str:
    return f'{m["distance_mean"][n]:.4f} / {m["distance_max"][n]:.4f}'
