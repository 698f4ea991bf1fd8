"""Statistics of one-pixel attacks: intervals, the sample size for a given power, budget curves
and their plot, pooled by label."""
import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from scipy.stats import binomtest, norm


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> tuple:
    """The Wilson score interval of a binomial proportion (scipy's ``binomtest``).

    Args:
        successes (int): Number of successes.
        total (int): Number of trials, at least 1.
        confidence (float): Confidence level. Defaults to 0.95.

    Returns:
        tuple[float, float]: Lower and upper bound.
    """
    if total < 1:
        raise ValueError('the Wilson interval needs at least one trial')
    interval = binomtest(int(successes), int(total)).proportion_ci(confidence, method='wilson')
    return float(interval.low), float(interval.high)


def targets_for_power(rate: float,
                      ratio: float = 2.0,
                      alpha: float = 0.05,
                      power: float = 0.8) -> int:
    """Targets per model for a two-sided test of two rates ``rate`` and ``ratio * rate``.

    Uses Cohen's arcsine effect size ``h = |2 asin(sqrt(p2)) - 2 asin(sqrt(p1))|`` and
    ``n = 2 ((z_{1 - alpha/2} + z_{power}) / h)^2`` per group: ``2 asin(sqrt(p_hat))`` has
    variance ``1 / n``, so the difference of two has ``2 / n`` (the normal approximation of the
    two-proportion test on the variance-stabilised scale).

    Args:
        rate (float): The smaller success rate ``p1``, in ``(0, 1)``.
        ratio (float): ``p2 / p1``; ``p2`` must stay at most 1. Defaults to 2.
        alpha (float): Two-sided significance level. Defaults to 0.05.
        power (float): Probability of detecting the difference. Defaults to 0.8.

    Returns:
        int: Targets needed per model (rounded up).
    """
    other = rate * ratio
    if not 0 < rate < 1 or not 0 < other <= 1 or ratio == 1:
        raise ValueError(f'need 0 < rate < 1, 0 < ratio * rate <= 1 and ratio != 1; got rate='
                         f'{rate}, ratio={ratio}')
    effect = abs(2 * math.asin(math.sqrt(other)) - 2 * math.asin(math.sqrt(rate)))
    return math.ceil(2 * ((norm.ppf(1 - alpha / 2) + norm.ppf(power)) / effect)**2)


def success_curve(evaluations: Sequence[Optional[int]], budgets: Sequence[int]) -> np.ndarray:
    """Success rate at each budget: the share of targets flipped within that many evaluations.

    Args:
        evaluations (Sequence[int | None]): Evaluations to the flip per target, ``None`` for a
            target that did not flip.
        budgets (Sequence[int]): Budgets (evaluations per target).

    Returns:
        ndarray: One rate per budget.
    """
    if len(evaluations) == 0:
        raise ValueError('no targets')
    spent = np.array([np.inf if e is None else e for e in evaluations], dtype=np.float64)
    return np.array([(spent <= budget).mean() for budget in budgets])


def plot_success_curves(curves: Dict[str, Sequence[Optional[int]]],
                        path: str,
                        max_budget: int,
                        title: str = 'One-pixel attack',
                        limits: Optional[Dict[str, int]] = None) -> str:
    """Save a PNG of success rate against budget, with 95% Wilson bands, one line per label.

    Args:
        curves (dict[str, Sequence[int | None]]): Per label, evaluations to the flip of each
            target (``None``: not flipped within ``max_budget``).
        path (str): Output PNG.
        max_budget (int): Largest budget shown (the budget every target was searched for).
        title (str): Figure title. Defaults to ``'One-pixel attack'``.
        limits (dict[str, int], optional): Per label, the budget its targets were searched
            for, where its line ends. Defaults to ``max_budget`` for every label.

    Returns:
        str: ``path``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    all_budgets = np.unique(np.geomspace(1, max_budget, 200).astype(int))
    figure, axes = plt.subplots(figsize=(6, 4))
    for label, evaluations in curves.items():
        budgets = all_budgets[all_budgets <= (limits or {}).get(label, max_budget)]
        rates = success_curve(evaluations, budgets)
        total = len(evaluations)
        bands = np.array([wilson_interval(round(r * total), total) for r in rates])
        line, = axes.plot(budgets, 100 * rates, label=f'{label} (n={total})')
        axes.fill_between(budgets, 100 * bands[:, 0], 100 * bands[:, 1], alpha=0.2,
                          color=line.get_color())
    axes.set_xscale('log')
    axes.set_xlabel('budget (model evaluations per target)')
    axes.set_ylabel('targets flipped (%), 95% Wilson band')
    axes.set_title(title)
    axes.grid(True, which='both', alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def pool_runs_by_label(summaries: Sequence[dict]) -> Tuple[dict, dict]:
    """Pool the per-target results of attack runs by label, for :func:`plot_success_curves`.

    Args:
        summaries (Sequence[dict]): Attack summaries (the ``--out`` files of the project's
            ``tools/attack.py``), each with ``label``, ``max_budget`` and ``targets`` (records
            with ``success`` and ``evaluations``).

    Returns:
        tuple[dict[str, list[int | None]], dict[str, int]]: Per label, the evaluations to the
        flip of every target of its runs (``None``: not flipped), and the budget where its line
        ends: the smallest of its runs', the largest budget every one of its targets had.
    """
    curves, limits = {}, {}
    for run in summaries:
        label = run['label']
        curves.setdefault(label, []).extend(
            record['evaluations'] if record['success'] else None for record in run['targets'])
        limits[label] = min(limits.get(label, run['max_budget']), run['max_budget'])
    return curves, limits


def plot_runs(summaries: Sequence[dict], path: str, title: Optional[str] = None) -> str:
    """Save a PNG of success rate against budget of attack runs pooled by label.

    Args:
        summaries (Sequence[dict]): Attack summaries, as :func:`pool_runs_by_label` takes them
            (also with ``method``).
        path (str): Output PNG.
        title (str, optional): Figure title. Defaults to ``'One-pixel attack (METHODS)'``.

    Returns:
        str: ``path``.
    """
    if not summaries:
        raise ValueError('no attack runs to plot')
    curves, limits = pool_runs_by_label(summaries)
    methods = ', '.join(sorted({run['method'] for run in summaries}))
    budget = max(run['max_budget'] for run in summaries)
    return plot_success_curves(curves, path, budget, title=title or f'One-pixel attack ({methods})',
                               limits=limits)
