"""The ground-truth section of docs/benchmarks.md and its headline, every number read from truth_search.json."""

from __future__ import annotations

from _report_sections import figure_link, md_table, provenance

OURS = 'ours two'


def _range(values: list) -> str:
    return f'{min(values):g}-{max(values):g}'


def _rows(g: dict) -> list[list]:
    rows = []
    for budget, by_name in g['budgets'].items():
        for name, m in by_name.items():
            n = len(m['runs'])
            random = ' / '.join(f'{m["random"][e]["rank_median"]:g}' for e in sorted(m['random'], key=int))
            rows.append([f'{budget} ({g["epochs"][budget]} epochs)', name, f'{m["cost_subnet_epochs"]:.1f}',
                         f'{m["true_accuracy_median"]:.4f}', f'{m["regret_median"]:.4f}',
                         f'{m["rank_median"]:g} ({_range(m["ranks"])})', f'{m["in_top"]}/{n}',
                         f'{m["kendall_tau_median"]:+.3f}',
                         f'{m["settled_at_median"]:g} ({_range(m["settled_at"])})', random])
    return rows


def _truth_paragraph(g: dict) -> str:
    truth = g['truth']
    split = truth.get('split') or {}
    oracle = ', '.join(str(rank) for rank in truth['single_seed_best_rank'])
    return (f'{g["space"]}. The truth: every architecture trained alone from scratch on search-train '
            f'({split.get("train", "?")} images) with {truth["seeds"]} seeds by one recipe ({truth.get("recipe")}, '
            f'{truth["epochs"]} epochs); its true accuracy is the mean test accuracy over the seeds, on '
            f'{split.get("test", "?")} test images that no searcher sees (searchers train weights on search-train '
            f'and choose with search-val, {split.get("val", "?")} images). Best true accuracy {truth["best"]:.4f}; '
            f'the true top 10 starts at {truth["top_threshold"]:.4f}. How much the truth itself depends on the '
            f'training seed: Kendall tau between two seeds\' test accuracies {truth["seed_tau"]:.3f}, median '
            f'standard deviation over seeds {truth["test_std_median"]:.4f}; the architecture that one seed ranks '
            f'first has rank {oracle} by the mean of the other seeds (one figure per seed): what an exhaustive '
            'search that trains each architecture once would export, scored on fresh seeds. Table: '
            f'`benchmarks/results/ground_truth.json`, made by `{truth.get("command")} --json '
            f'benchmarks/results/ground_truth.json` in {(truth.get("wall_seconds") or 0) / 60:.0f} minutes (not '
            'part of `make bench`).')


def _method_paragraph(g: dict) -> str:
    truth = g['truth']
    return (f'Searchers at their default settings, {g["seeds"]} seeds each, through `NasExperiment` with NNI\'s '
            '`Classification` (Adam 3e-3, batch 64): ours `Proxyless(seed=s)` (`binary_mode=\'two\'`), with '
            '`binary_mode=\'full_v2\'`, with `arch_update=\'reinforce\'`; NNI 3.0\'s `Proxyless` and `DARTS`. '
            'Export: `export_top_models(top_k=1)` (NNI\'s Proxyless samples it from its softmax). Cost: the wall '
            'time of the search\'s training batches over that of one epoch of a random subnet trained alone by the '
            f'same evaluator (median of {g["subnet_epochs_timed"]} such epochs, timed between the searches: '
            f'{1000 * g["subnet_epoch_seconds"]:.0f} ms), in subnet-epochs. Rank 1 is the best of '
            f'{truth["architectures"]}; regret is the best true accuracy minus the export\'s. Kendall tau: between '
            f'the final product distribution P(m) = prod_l p_l(m_l) over all {truth["architectures"]} architectures '
            'and their true accuracies. "Settles at": the first epoch after which the most probable architecture '
            'never changes (0 = before training). Random search at equal compute, simulated from the table\'s '
            f'trainings ({g["repeats"]} repeats): at the searcher\'s cost B, max(1, B // e) uniform architectures, '
            f'each trained alone once for e = {truth["short_epochs"]} epochs (the recipe shortened, its own cosine '
            f'schedule) or e = {truth["epochs"]} (the full recipe), the best by search-val accuracy; with B < e it '
            'is one random architecture.')


def _notes(g: dict) -> str:
    notes, budgets = [], g['budgets']
    checked = g.get('targets')
    if checked:
        for budget in ('long', 'short'):
            c = checked[budget]
            notes.append(f'Target at the {budget} budget: our median true rank {c["rank_median"]:g} against the '
                         f'limit {c["rank_limit"]:g} ({"met" if c["within_limit"] else "not met"}); NNI\'s '
                         f'Proxyless {c["nni_proxyless_rank_median"]:g} ('
                         f'{"behind us" if c["ahead_of_nni_proxyless"] else "not behind us"}); random search at '
                         f'equal compute {c["random_rank_median"]:g} (the better protocol; '
                         f'{"behind us" if c["ahead_of_random"] else "not behind us"}).')
    ours = budgets['long'].get(OURS)
    if ours:
        notes.append(_settling_note(ours, g['epochs']['long']))
        notes.append(_capacity_note(ours, g))
    nni = budgets['long'].get('NNI Proxyless')
    if nni:
        argmax = sorted(run['argmax_rank'] for run in nni['runs'])
        notes.append(f'NNI\'s Proxyless exports a sample: at the long budget its most probable architecture had true '
                     f'ranks {", ".join(map(str, argmax))}, its exports {", ".join(map(str, sorted(nni["ranks"])))}.')
    return 'Notes. ' + ' '.join(notes)


def _settling_note(ours: dict, epochs: int) -> str:
    """When our argmax stops changing at the long budget, and how far the distribution is from uniform then."""
    entropies = [run['entropy_fraction'] for run in ours['runs']]
    text = (f'When the choice settles (NNI 2.x\'s ProxylessNAS page reports that it converges in the first '
            f'epochs): at the long budget our most probable architecture stops changing at median epoch '
            f'{ours["settled_at_median"]:g} of {epochs}; the final entropy is {min(entropies):.4f}-'
            f'{max(entropies):.4f} of its maximum (1 = uniform).')
    if min(entropies) > 0.9:
        text += (' The distribution is still close to uniform, so the export is decided by small logit '
                 'differences: the default architecture learning rate moves the logits little in this many steps.')
    return text


def _capacity_note(ours: dict, g: dict) -> str:
    """Our most common export at the long budget, against the architecture with the most parameters."""
    exports = [tuple(sorted(run['export'].items())) for run in ours['runs']]
    common = max(set(exports), key=exports.count)
    rank = next(run['rank'] for run in ours['runs'] if tuple(sorted(run['export'].items())) == common)
    text = (f'Our most common export at the long budget ({exports.count(common)} of {len(exports)} seeds) is '
            f'{", ".join(f"{label}={value}" for label, value in common)} (true rank {rank}).')
    largest = g.get('largest_architecture')
    if largest:
        same = tuple(sorted(largest['arch'].items())) == common
        text += (f' The architecture with the most parameters ({largest["parameters"]}) has true rank '
                 f'{largest["rank"]}' + (': it is that export, so on this space a bare preference for capacity '
                                         'would export the same; the benchmark cannot tell the two apart there.'
                                         if same else '.'))
    return text


def truth(r: dict, links: dict) -> str:
    g = r.get('truth_search')
    if not g:
        return ''
    headers = ['budget', 'searcher', 'cost (subnet-epochs)', 'true accuracy (median)', 'regret (median)',
               'true rank: median (range)', 'in true top 10', 'Kendall tau (median)',
               'argmax settles at epoch: median (range)',
               f'random search at equal cost: median rank ({g["truth"]["short_epochs"]} / {g["truth"]["epochs"]}'
               '-epoch training)']
    return '\n\n'.join(filter(None, [
        '## Search quality against the ground truth (digits cell space)', _truth_paragraph(g), _method_paragraph(g),
        md_table(headers, _rows(g)), figure_link(links, 'truth_search', 'true accuracy and rank against cost'),
        _notes(g), provenance(g)]))


def headline(r: dict) -> str:
    g = r.get('truth_search')
    if not g:
        return ''
    b = g['budgets']
    show = lambda name: ' / '.join(f'{b[k][name]["rank_median"]:g}' if name in b[k] else '-'  # noqa: E731
                                   for k in ('short', 'long'))
    cost = ' / '.join(f'{b[k][OURS]["cost_subnet_epochs"]:.0f}' for k in ('short', 'long'))
    random = ' / '.join(f'{min(x["rank_median"] for x in b[k][OURS]["random"].values()):g}' for k in ('short', 'long'))
    return (f'**Against the ground truth** ({g["truth"]["architectures"]}-architecture cell space on digits, each '
            f'trained alone; median true rank of the export over {g["seeds"]} seeds, short / long budget, 1 = best): '
            f'ours {show(OURS)} (cost {cost} subnet-epochs), full_v2 {show("ours full_v2")}, REINFORCE '
            f'{show("ours REINFORCE")}; NNI Proxyless {show("NNI Proxyless")}; NNI DARTS {show("NNI DARTS")}; random '
            f'search at our cost {random}.')
