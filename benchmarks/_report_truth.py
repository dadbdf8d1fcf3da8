"""The ground-truth section of docs/benchmarks.md and its headline, every number read from truth_search.json.

One subsection per truth: the paragraph on the truth (how it was made, how noisy it is), one table of budget x
searcher rows, the plot of median rank against budget, what was checked, and for the value truth the searches
under a FLOPs target.
"""

from __future__ import annotations

from _report_sections import figure_link, md_table, provenance, table_made_by

DEFAULT, OFFICIAL, RULE = 'ours default', 'ours 1e-3', 'ours budget rule'
RERANKED = 'ours default, top-10 re-ranked'
TITLES = {'cell': 'digits cell space', 'value': 'digits value-choice space'}


def _range(values: list) -> str:
    return f'{min(values):g}-{max(values):g}'


def _random_ranks(m: dict) -> str:
    return ' / '.join(f'{m["random"][e]["rank_median"]:g}' for e in sorted(m['random'], key=int))


def _rows(g: dict) -> list[list]:
    rows = []
    for epochs, by_name in g['budgets'].items():
        for name, m in by_name.items():
            if 'unsupported' in m:
                rows.append([epochs, name, f'not supported: {m["unsupported"]}'] + ['-'] * 7)
                continue
            n = len(m['runs'])
            settles = (f'{m["settled_at_median"]:g} ({_range(m["settled_at"])})' if 'settled_at' in m else '-')
            tau = f'{m["kendall_tau_median"]:+.3f}' if 'kendall_tau_median' in m else '-'
            rows.append([epochs, name, f'{m["cost_subnet_epochs"]:.1f}', f'{m["rank_median"]:g} ({_range(m["ranks"])})',
                         f'{m["regret_mean"]:.4f}', f'{m["in_top"]}/{n}', f'{m["true_accuracy_median"]:.4f}', tau,
                         settles, _random_ranks(m)])
    return rows


def _truth_paragraph(truth: dict) -> str:
    split = truth.get('split') or {}
    oracle = ', '.join(str(rank) for rank in truth['single_seed_best_rank'])
    return (f'{truth.get("space")}. The truth: every architecture trained alone from scratch on search-train '
            f'({split.get("train", "?")} images) with {truth["seeds"]} seeds by one recipe ({truth.get("recipe")}, '
            f'{truth["epochs"]} epochs); its true accuracy is the mean test accuracy over the seeds, on '
            f'{split.get("test", "?")} test images that no searcher sees (searchers train weights on search-train '
            f'and choose with search-val, {split.get("val", "?")} images). Best true accuracy {truth["best"]:.4f}; '
            f'the true top 10 starts at {truth["top_threshold"]:.4f}. How much the truth itself depends on the '
            f'training seed: Kendall tau between two seeds\' test accuracies {truth["seed_tau"]:.3f}, median '
            f'standard deviation over seeds {truth["test_std_median"]:.4f}; the architecture that one seed ranks '
            f'first has rank {oracle} by the mean of the other seeds (one figure per seed): what an exhaustive '
            f'search that trains each architecture once would export, scored on fresh seeds. Table: '
            f'`{truth["table"]}`, made by {table_made_by(truth)} (not part of `make bench`).')


def _method_paragraph(g: dict) -> str:
    rates = ', '.join(f'{p["budget_rule_arc_learning_rate"]:.3g} at {e} epochs ({p["architecture_steps"]} steps)'
                      for e, p in g['plans'].items())
    return (f'Searchers through `NasExperiment` with NNI\'s `Classification` (Adam 3e-3, batch 64), {g["seeds"]} '
            f'seeds each, at budgets of {", ".join(map(str, g["epochs"]))} epochs: ours at the package\'s default '
            f'(`Proxyless(seed=s)`, `arc_learning_rate={g["package_default_arc_learning_rate"]!r}` when this ran), '
            'at the official `arc_learning_rate=1e-3`, at the budget rule `max(1e-3, 10 / S)` for the plan\'s S '
            f'architecture steps (an architecture step every 5 weight steps: {rates}), with '
            '`binary_mode=\'full_v2\'` and with `arch_update=\'reinforce\'`; NNI 3.0\'s `Proxyless` and `DARTS`. '
            'Export: `export_top_models(top_k=1)` (NNI\'s Proxyless samples it from its softmax). '
            f'"{RERANKED}": the same searches of ours default, their 10 most probable architectures re-ranked by '
            'validation accuracy with the supernet\'s weights (`strategy.rerank`), the first scored; its cost adds '
            'the re-ranking. Cost: the wall time of the search\'s training batches over that of one epoch of a '
            'random subnet of the same space trained alone by the same evaluator (timed before every search in its '
            f'process, {g["workers"]} at a time; the median per process), in subnet-epochs. Rank 1 is the best '
            'architecture; regret is the best true accuracy minus the export\'s (mean over seeds). Kendall tau: '
            'between the final product distribution P(m) = prod_l p_l(m_l) (labels a network does not use at their '
            'most probable value) and the true accuracies. "Settles at": the first epoch after which the most '
            'probable architecture never changes (0 = before training). Random search at equal compute, simulated '
            f'from the table\'s trainings ({g["repeats"]} repeats): at the searcher\'s cost B, max(1, B // e) '
            'uniform architectures, each trained alone once for e epochs (the short protocol, its own cosine '
            'schedule, or the full one), the best by search-val accuracy; with B < e it is one random architecture.')


def _constrained(c: dict, truth: dict) -> str:
    check = c['flops_check']
    agreement = (f'the package\'s FLOPs table (`strategy.latency_table.predict`) agrees with the table\'s MFLOPs '
                 f'within {check["largest_relative_difference"]:.1e} (largest relative difference over '
                 f'{check["architectures"]} architectures), so the table\'s figure decides'
                 if check['agree'] else
                 f'the package\'s FLOPs table does NOT agree with the table\'s MFLOPs (largest relative difference '
                 f'{check["largest_relative_difference"]:.3f}, at {check["at"]}), so the package\'s figure decides')
    text = (f'Under a FLOPs target: ours with `applied_hardware=\'flops\'`, `dummy_input=(1, 1, 8, 8)` and '
            f'`latency_target` = {c["target_mflops"]:.4g} MFLOPs (the median of the table\'s), in four settings: '
            '"ours default" as a user writes it (the default `add#linear` loss at the default `ref_latency=65`, far '
            'above this space\'s FLOPs, so the loss is weak); "loss at the target" (`ref_latency` = the target: the '
            'loss steers towards it); "no latency loss" (`grad_reg_loss_type=None`: the target only filters the '
            f'export); and 1e-3 with the loss at the target. {c["qualifying"]} of '
            f'{truth["architectures"]} architectures meet it ({agreement}); the best of them has true accuracy '
            f'{c["best_qualifying"]:.4f}. Regret and rank are among those; random search draws from them alone at '
            'the searcher\'s cost.')
    headers = ['budget (epochs)', 'searcher', 'cost (subnet-epochs)', 'regret (mean)',
               'rank among qualifying: median (range)', 'meets the target', 'MFLOPs / target (median)',
               f'random search among qualifying at equal cost: mean regret ({truth["short_epochs"]} / '
               f'{truth["epochs"]}-epoch training)']
    rows = [[e, name, f'{m["cost_subnet_epochs"]:.1f}', f'{m["regret_mean"]:.4f}',
             f'{m["rank_median"]:g} ({_range(m["ranks"])})', f'{m["meets_target"]}/{len(m["runs"])}',
             f'{m["mflops_over_target_median"]:.2f}',
             ' / '.join(f'{m["random"][k]["regret_mean"]:.4f}' for k in sorted(m['random'], key=int))]
            for e, by_name in c['budgets'].items() for name, m in by_name.items()]
    return text + '\n\n' + md_table(headers, rows)


def _checked_note(checked: dict) -> str:
    notes = []
    for epochs, c in checked.items():
        text = (f'at the {epochs}-epoch budget ours default\'s median rank {c["rank_median"]:g} against 1e-3\'s '
                f'{c["official_rank_median"]:g} and the budget rule\'s {c["budget_rule_rank_median"]:g} (target '
                f'{c["rule"]}: {"met" if c["met"] else "not met"})')
        if 'constrained' in c:
            u = c['constrained']
            text += (f', under the FLOPs target mean regret {u["regret_mean"]:.4f} against random search\'s '
                     f'{u["random_regret_mean"]:.4f} ({"met" if u["met"] else "not met"})')
        notes.append(text)
    return ('Checked: ' + '; '.join(notes) + '.') if notes else ''


def _settling_note(ours: dict, epochs: str) -> str:
    """When ours default's argmax stops changing at a budget, and how far its distribution is from uniform then."""
    entropies = [run['entropy_fraction'] for run in ours['runs']]
    return (f'At the {epochs}-epoch budget the most probable architecture of ours default stops changing at '
            f'median epoch {ours["settled_at_median"]:g}; the final entropy is {min(entropies):.4f}-'
            f'{max(entropies):.4f} of its maximum (1 = uniform).')


def _capacity_note(ours: dict, largest: dict, epochs: str) -> str:
    """Ours default's most common export at a budget, against the architecture with the most parameters."""
    exports = [tuple(sorted(run['export'].items())) for run in ours['runs']]
    common = max(set(exports), key=exports.count)
    rank = next(run['rank'] for run in ours['runs'] if tuple(sorted(run['export'].items())) == common)
    same = tuple(sorted(largest['arch'].items())) == common
    return (f'Its most common export there ({exports.count(common)} of {len(exports)} seeds) is '
            f'{", ".join(f"{label}={value}" for label, value in common)} (true rank {rank}); the architecture with '
            f'the most parameters ({largest["parameters"]}) has true rank {largest["rank"]}'
            + (': it is that export, so a bare preference for capacity would export the same here.' if same else '.'))


def _notes(g: dict, key: str) -> str:
    t = g['truths'][key]
    longest = str(max(g['epochs']))
    by_name = t['budgets'][longest]
    notes = [_checked_note(g.get('checked', {}).get(key, {}))]
    ours = by_name.get(DEFAULT)
    if ours and 'runs' in ours:
        notes += [_settling_note(ours, longest), _capacity_note(ours, t['largest_architecture'], longest)]
    if RERANKED not in by_name and ours:
        notes.append('The re-ranked export is missing: the package had no `Proxyless.rerank` when this ran.')
    notes.append(_rerank_note(t))
    if t.get('constrained'):
        notes.append(_target_note(t['constrained']))
    nni = by_name.get('NNI Proxyless')
    if nni and 'runs' in nni:
        argmax = sorted(run['argmax_rank'] for run in nni['runs'])
        exports = ', '.join(map(str, sorted(nni['ranks'])))
        notes.append(f'NNI\'s Proxyless exports a sample: at the {longest}-epoch budget its most probable '
                     f'architecture had true ranks {", ".join(map(str, argmax))}, its exports {exports}.')
    return 'Notes. ' + ' '.join(filter(None, notes))


def _rerank_note(t: dict) -> str:
    """What re-ranking the top 10 by the supernet did to ours default's export, per budget."""
    pairs = [(e, by[DEFAULT], by[RERANKED]) for e, by in t['budgets'].items()
             if 'rank_median' in by.get(DEFAULT, {}) and 'rank_median' in by.get(RERANKED, {})]
    if not pairs:
        return ''
    worse = sum(r['rank_median'] > d['rank_median'] for _, d, r in pairs)
    figures = '; '.join(f'{e} epochs {d["rank_median"]:g} -> {r["rank_median"]:g} (mean regret '
                        f'{d["regret_mean"]:.4f} -> {r["regret_mean"]:.4f})' for e, d, r in pairs)
    verdict = ('so it stays an option (`rerank_top_k`, default 0)' if worse else
               'never worse here')
    return (f'Re-ranking the 10 most probable architectures by their validation accuracy with the supernet\'s '
            f'weights (BatchNorm recalibrated) changes ours default\'s median rank: {figures}; worse at {worse} of '
            f'{len(pairs)} budgets, {verdict}.')


def _target_note(c: dict) -> str:
    """Which way of searching under the target did best, from the constrained table."""
    best = {e: min(by_name.items(), key=lambda item: item[1]['regret_mean'])[0] for e, by_name in c['budgets'].items()}
    steered = [m['mflops_over_target_median'] for by in c['budgets'].values() for name, m in by.items()
               if 'loss at the target' in name]
    return (f'Under the target, the lowest mean regret per budget: '
            + ', '.join(f'{e} epochs {name}' for e, name in best.items())
            + f'. A latency loss scaled to the target pulls the whole distribution towards cheap candidates: those '
            f'exports sit at {min(steered):.2f}-{max(steered):.2f} of the target, where the target alone (the '
            'export filter over a distribution trained for accuracy) picks the most probable architecture within '
            'it, close under it.')


def _section(g: dict, key: str, links: dict) -> str:
    t = g['truths'][key]
    truth = t['truth']
    headers = ['budget (epochs)', 'searcher', 'cost (subnet-epochs)', 'true rank: median (range)', 'regret (mean)',
               'in true top 10', 'true accuracy (median)', 'Kendall tau (median)',
               'argmax settles at epoch: median (range)',
               f'random search at equal cost: median rank ({truth["short_epochs"]} / {truth["epochs"]}-epoch '
               'training)']
    return '\n\n'.join(filter(None, [
        f'### {TITLES.get(key, key).capitalize()} ({truth["architectures"]} architectures)', _truth_paragraph(truth),
        md_table(headers, _rows(t)),
        figure_link(links, f'truth_search_{key}', f'median true rank against budget, {TITLES.get(key, key)}'),
        _constrained(t['constrained'], truth) if t.get('constrained') else '', _notes(g, key)]))


def truth(r: dict, links: dict) -> str:
    g = r.get('truth_search')
    if not g:
        return ''
    title = '## Search quality against the ground truth'
    if 'truths' not in g:
        return (f'{title}\n\nThe results predate the comparison over two truths and three budgets: rerun '
                '`python benchmarks/truth_search.py`.')
    return '\n\n'.join([title, _method_paragraph(g), *(_section(g, key, links) for key in g['truths']),
                        provenance(g)])


def _headline_budget(g: dict) -> str:
    """10 epochs, or the run's budget nearest to it."""
    return str(min(g['epochs'], key=lambda e: abs(e - 10)))


def headline(r: dict) -> str:
    g = r.get('truth_search')
    if not g or 'truths' not in g:
        return ''
    epochs = _headline_budget(g)
    parts = []
    for key, t in g['truths'].items():
        b = t['budgets'][epochs]
        rank = lambda name: (f'{b[name]["rank_median"]:g}' if 'rank_median' in b.get(name, {})  # noqa: E731
                             else 'not supported' if 'unsupported' in b.get(name, {}) else '-')
        random = min(x['rank_median'] for x in b[DEFAULT]['random'].values()) if DEFAULT in b else None
        text = (f'{TITLES.get(key, key)} ({t["truth"]["architectures"]} architectures): ours default {rank(DEFAULT)} '
                f'(1e-3 {rank(OFFICIAL)}, budget rule {rank(RULE)}), NNI Proxyless {rank("NNI Proxyless")}, NNI DARTS '
                f'{rank("NNI DARTS")}' + (f', random search at our cost {random:g}' if random is not None else ''))
        under = (t.get('constrained') or {}).get('budgets', {}).get(epochs, {}).get(DEFAULT)
        if under:
            text += (f'; under a FLOPs target at the median, mean regret {under["regret_mean"]:.4f} against '
                     f'{min(x["regret_mean"] for x in under["random"].values()):.4f} for random search')
        parts.append(text)
    return (f'**Against the ground truths** (every architecture trained alone; median true rank of the export over '
            f'{g["seeds"]} seeds at {epochs} epochs, 1 = best): ' + '; '.join(parts) + '.')
