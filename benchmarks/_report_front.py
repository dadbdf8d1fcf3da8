"""The "one search, several budgets" section of docs/benchmarks.md, every number read from deploy_front.json.

One table of search budget x latency budget x method rows (front of 1, 5, 10 candidates; one search per budget),
each with random search at the compute charged to it, the plot of the picks' true accuracy, and notes computed
from the same figures: which candidate count did better, how often the per-budget searches picked what the front
of 1 candidate picked, and what the evaluations cost.
"""

from __future__ import annotations

import statistics

from _report_sections import figure_link, md_table, provenance
from _report_truth import _range

TITLE = '## Deploying to several budgets from one search (value truth)'
ONE, PER_BUDGET = 'front, 1 candidate', 'one search per budget'
NOT_GIVEN = 'front, budgets not given to the search, 1 candidate'


def _method(g: dict) -> str:
    cells = next(iter(g['budgets'].values()))
    budgets = ', '.join(f'{cell["budget_mflops"]:.4g} MFLOPs ({cell["qualifying"]} qualifying, best '
                        f'{cell["best_qualifying"]:.4f})' for cell in cells)
    check = g['flops_check']
    agreement = (f'by the table\'s MFLOPs, which the package\'s FLOPs table agrees with: largest relative '
                 f'difference {check["largest_relative_difference"]:.1e} over {check["architectures"]} architectures'
                 if check['agree'] else
                 f'by the package\'s FLOPs, which do NOT agree with the table\'s: largest relative difference '
                 f'{check["largest_relative_difference"]:.3f}')
    counts = ', '.join(str(c) for c in g['candidates'])
    return (f'Can one search serve several latency budgets? On the value-choice truth ({g["architectures"]} '
            f'architectures, `{g["table"]}`, see the ground-truth section), the budgets are the 25th, 50th and 75th '
            f'percentile of the table\'s MFLOPs: {budgets}; an architecture qualifies when its MFLOPs are within the '
            f'budget ({agreement}). For each of {g["seeds"]} seeds and each search budget of '
            f'{", ".join(map(str, g["epochs"]))} epochs: ONE search with `Proxyless(applied_hardware=\'flops\', '
            'dummy_input=(1, 1, 8, 8), deploy_targets=budgets, seed=s)` (its weight steps draw their paths within '
            'each budget in turn; no target, defaults otherwise), then '
            f'`strategy.latency_front(candidates=c)` for c = {counts} (1, the default: the most probable '
            'architecture within each budget, here with `evaluate=False`, so no evaluation; more: that many most '
            'probable within it, compared by search-val '
            'accuracy with the supernet\'s weights, BatchNorm recalibrated); the same front of 1 candidate from a '
            'search not given the budgets (no `deploy_targets`: paths from the whole distribution, '
            f'"{NOT_GIVEN}"); and one search per budget, '
            '`Proxyless(applied_hardware=\'flops\', latency_target=budget, ...)` with `export_top_models(top_k=1)`. '
            'Rank (1 = best) and regret (the best qualifying true accuracy minus the pick\'s) are among the '
            'budget\'s qualifying architectures. Compute in subnet-epochs as in the ground-truth section (the '
            'wall time of a search\'s training batches over that of one epoch of a random subnet trained alone; '
            f'its per-epoch validation excluded there and here; one subnet epoch took {g["subnet_epoch_seconds"]:.3f} '
            f's, median). The front\'s evaluation passes are not free: the wall time of each `latency_front` call '
            'is counted in the same unit and added to its search; a front\'s pick is charged a third of that total '
            '(one search and its evaluations serve three budgets), a per-budget search its own cost. Random '
            f'search ({g["repeats"]} simulations from the table\'s trainings, drawing only qualifying architectures) '
            'runs at the compute charged to each row: for a front, its total split evenly over the three budgets '
            '(equal total compute); for the per-budget searches, one search\'s compute per budget.')


def _rows(g: dict) -> list[list]:
    rows = []
    for epochs, cells in g['budgets'].items():
        for cell in cells:
            for name, m in cell['methods'].items():
                n = len(m['runs'])
                cost = f'{m["cost_subnet_epochs"]:.1f}'
                if 'total_cost_subnet_epochs' in m:
                    cost += f' (of {m["total_cost_subnet_epochs"]:.1f}; evaluation {m["evaluation_subnet_epochs"]:.1f})'
                random = ' / '.join(f'{m["random"][p]["rank_median"]:g}, {m["random"][p]["regret_mean"]:.4f}'
                                    for p in sorted(m['random'], key=int))
                rows.append([epochs, f'{cell["budget_mflops"]:.4g} ({cell["qualifying"]})', name, cost,
                             f'{m["rank_median"]:g} ({_range(m["ranks"])})', f'{m["regret_mean"]:.4f}',
                             f'{m["meets_target"]}/{n}', random])
    return rows


def _paired(g: dict, name: str) -> tuple[int, int, int]:
    """Over every search and latency budget: how often the front of ``name`` picked a truly better, an equally
    good (the same architecture, or one as accurate) and a worse architecture than the front of 1 candidate."""
    better = same = worse = 0
    for cells in g['budgets'].values():
        for cell in cells:
            one = {run['seed']: run['regret'] for run in cell['methods'][ONE]['runs']}
            for run in cell['methods'][name]['runs']:
                better += run['regret'] < one[run['seed']]
                worse += run['regret'] > one[run['seed']]
                same += run['regret'] == one[run['seed']]
    return better, same, worse


def _candidates_note(g: dict, noise: float | None) -> str:
    """What comparing more candidates did, against the front of 1 candidate: per cell and per search."""
    verdicts = g.get('candidates_against_one') or {}
    parts = []
    for c, v in verdicts.items():
        better, same, worse = _paired(g, f'front, {c} candidates')
        parts.append(f'{c} candidates had a lower mean regret than 1 candidate at {v["better"]} of {v["cells"]} '
                     f'(search budget, latency budget) cells, equal at {v["equal"]}, higher at {v["worse"]} (mean '
                     f'over cells {v["regret_mean_over_cells"]:.4f} against '
                     f'{v["front_1_regret_mean_over_cells"]:.4f}); search by search, a truly better pick {better} '
                     f'times, as good {same}, worse {worse}')
    if not parts:
        return ''
    scale = (f' For scale: the truth\'s median standard deviation of test accuracy over training seeds is '
             f'{noise:.4f}.' if noise is not None else '')
    return 'Candidates: ' + '; '.join(parts) + '.' + scale


def _per_budget_note(g: dict) -> str:
    """How often one search per budget picked what the front of 1 candidate picked, and at what compute."""
    same = total = 0
    ratios = []
    for cells in g['budgets'].values():
        for cell in cells:
            per, one = cell['methods'].get(PER_BUDGET), cell['methods'].get(NOT_GIVEN)
            if per and one:
                same += per['same_as_not_given']
                total += len(per['runs'])
                ratios.append(per['cost_subnet_epochs'] / one['cost_subnet_epochs'])
    if not total:
        return ''
    why = (' (`latency_target` filters the export; it does not change the search, and the searches share their '
           'seed)' if same == total else '')
    return (f'One search per budget picked the same architecture as the front of 1 candidate from a search not given '
            f'the budgets in {same} of {total} searches{why}, at {statistics.median(ratios):.1f}x the compute charged '
            'to that front\'s pick (median over cells).')


def _evaluation_note(g: dict) -> str:
    """What the evaluations cost against the search, per candidate count and search budget."""
    parts = []
    for epochs, cells in g['budgets'].items():
        methods = cells[0]['methods']
        shown = [f'{name.split(", ")[1]} {m["evaluation_subnet_epochs"]:.1f}' for name, m in methods.items()
                 if 'evaluation_subnet_epochs' in m and name not in (ONE, NOT_GIVEN)]
        search = statistics.median(run['search_subnet_epochs'] for run in methods[ONE]['runs'])
        parts.append(f'{epochs} epochs: search {search:.1f}, evaluations {", ".join(shown)}')
    return ('Evaluation cost in subnet-epochs (median; each architecture evaluated once per call however many '
            'budgets consider it): ' + '; '.join(parts) + '.')


def front(r: dict, links: dict) -> str:
    g = r.get('deploy_front')
    if not g:
        return ''
    epochs = f'{g["short_epochs"]} / {g["full_epochs"]}'
    headers = ['search budget (epochs)', 'latency budget, MFLOPs (qualifying)', 'method',
               'compute charged to the budget, subnet-epochs (front: of its total; evaluation)',
               'rank among qualifying: median (range)', 'regret (mean)', 'meets the budget',
               f'random search at that compute: median rank, mean regret ({epochs}-epoch training)']
    noise = ((r.get('truth_search') or {}).get('truths') or {}).get('value', {}).get('truth', {}).get('test_std_median')
    notes = ' '.join(filter(None, [_candidates_note(g, noise), _per_budget_note(g), _evaluation_note(g)]))
    return '\n\n'.join(filter(None, [
        TITLE, _method(g), md_table(headers, _rows(g)),
        figure_link(links, 'deploy_front', 'true accuracy of the picks against the latency budget'),
        'Notes. ' + notes, provenance(g)]))
