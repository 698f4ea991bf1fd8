"""Searches for a one-pixel change that flips a prediction: differential evolution and random.

A search proposes candidates ``(x, y, r, g, b)``: a pixel of the raw ``uint8`` image and the
colour it is set to. It sees the model only through ``margins``, a function from a batch of
candidates to the margins of the attacked targets (positive: the target keeps its clean class;
negative: flipped). A search stops at the first flip and reports how many candidates it
evaluated to find it, so one run at budget ``B`` also tells the outcome at every smaller budget.
"""
import time
from typing import Callable, NamedTuple, Optional

import numpy as np
from scipy.optimize import differential_evolution

# margins(candidates): (S, 5) int64 (x, y, r, g, b) -> (S, T) float margins of the T targets.
MarginFn = Callable[[np.ndarray], np.ndarray]


class SearchResult(NamedTuple):
    """Outcome of a search for one target.

    Args:
        success (bool): Whether a candidate flipped the target.
        evaluations (int): Candidates evaluated up to and including the flip, or in all.
        candidate (tuple[int, ...] | None): ``(x, y, r, g, b)`` of the flip, or of the
            candidate of smallest margin when none flipped (``None`` when none was evaluated).
        margin (float): Margin of that candidate.
        generations (int): Generations of the search (0 for the random search).
    """

    success: bool
    evaluations: int
    candidate: Optional[tuple]
    margin: float
    generations: int = 0


def to_candidates(params: np.ndarray, height: int, width: int) -> np.ndarray:
    """Continuous search coordinates as integer candidates inside the image.

    Args:
        params (ndarray): ``(S, 5)`` points of ``[0, W] x [0, H] x [0, 256]^3``.
        height (int): Image height ``H``.
        width (int): Image width ``W``.

    Returns:
        ndarray: ``(S, 5)`` int64 ``(x, y, r, g, b)``, each floored and clipped to its range.
    """
    candidates = np.floor(params).astype(np.int64)
    upper = np.array([width - 1, height - 1, 255, 255, 255])
    return np.clip(candidates, 0, upper)


class _Flipped(Exception):
    """Raised inside the objective to end the search at the first flip."""


class _Objective:
    """The margin of one target as scipy's vectorised objective; counts and stops at a flip."""

    def __init__(self, margins, target, height, width):
        self.margins = margins
        self.target = target
        self.height = height
        self.width = width
        self.evaluations = 0
        self.generations = -1  # the first call evaluates the initial population
        self.best = (np.inf, None)
        self.flip = None

    def __call__(self, params):
        candidates = to_candidates(np.atleast_2d(params.T), self.height, self.width)
        values = np.asarray(self.margins(candidates), dtype=np.float64)[:, self.target]
        self.generations += 1
        lowest = int(np.argmin(values))
        if values[lowest] < self.best[0]:
            self.best = (float(values[lowest]), tuple(int(v) for v in candidates[lowest]))
        flipped = np.flatnonzero(values < 0)
        if len(flipped):
            first = int(flipped[0])
            self.flip = (self.evaluations + first + 1, float(values[first]),
                         tuple(int(v) for v in candidates[first]))
            self.evaluations += len(values)
            raise _Flipped
        self.evaluations += len(values)
        return values


def differential_evolution_search(margins: MarginFn,
                                  height: int,
                                  width: int,
                                  target: int = 0,
                                  popsize: int = 400,
                                  maxiter: int = 100,
                                  seed=0,
                                  time_budget: Optional[float] = None,
                                  strategy: str = 'rand1bin',
                                  mutation=0.5,
                                  recombination: float = 1.0,
                                  window: Optional[tuple] = None) -> SearchResult:
    """Untargeted one-pixel attack of Su, Vargas and Sakurai, searched with scipy's DE.

    Minimises the target's margin over ``(x, y, r, g, b)`` with
    :func:`scipy.optimize.differential_evolution` (``vectorized=True``,
    ``updating='deferred'``, no polishing): each generation's population is one call of
    ``margins``. The initial population is uniform over the image (or ``window``) and the
    colour cube.

    Args:
        margins (callable): ``(S, 5)`` int64 candidates to ``(S, T)`` margins.
        height (int): Image height.
        width (int): Image width.
        target (int): Column of the attacked target in the margins. Defaults to 0.
        popsize (int): Candidates per generation (the population itself, not scipy's
            multiplier). Defaults to 400.
        maxiter (int): Generations after the initial one. Defaults to 100.
        seed (int | Sequence[int]): Seed of the initial population and of the search.
            Defaults to 0.
        time_budget (float, optional): Wall-clock seconds after which no new generation
            starts. Defaults to None (no limit).
        strategy (str): scipy's DE strategy. Defaults to ``'rand1bin'`` (DE/rand/1).
        mutation (float | tuple): Differential weight (or dithering range). Defaults to 0.5.
        recombination (float): Crossover probability; 1 takes the whole mutant. Defaults to 1.
        window (tuple[int, int, int, int], optional): ``(x0, y0, x1, y1)``, the pixels the
            search may change, ``x0 <= x < x1`` and ``y0 <= y < y1`` (see
            :func:`search_window`). Defaults to None (the whole image).

    Returns:
        SearchResult: The outcome; ``evaluations`` counts up to the flip.
    """
    if popsize < 5:
        raise ValueError(f'popsize must be at least 5 (differential evolution needs a few '
                         f'candidates to mix), got {popsize}')
    if maxiter < 0:
        raise ValueError(f'maxiter must be non-negative, got {maxiter}')
    x0, y0, x1, y1 = window or (0, 0, width, height)
    if not 0 <= x0 < x1 <= width or not 0 <= y0 < y1 <= height:
        raise ValueError(f'window must be (x0, y0, x1, y1) with 0 <= x0 < x1 <= {width} and '
                         f'0 <= y0 < y1 <= {height}, got {window}')
    rng = np.random.default_rng(seed)
    lower = np.array([x0, y0, 0, 0, 0], dtype=np.float64)
    upper = np.array([x1, y1, 256, 256, 256], dtype=np.float64)
    initial = rng.uniform(lower, upper, size=(popsize, 5))
    objective = _Objective(margins, target, height, width)
    deadline = None if time_budget is None else time.monotonic() + time_budget

    def out_of_time(intermediate_result):
        return deadline is not None and time.monotonic() > deadline

    try:
        differential_evolution(
            objective,
            bounds=list(zip(lower, upper)),
            strategy=strategy,
            maxiter=maxiter,
            init=initial,
            mutation=mutation,
            recombination=recombination,
            tol=0,
            atol=-1,  # never stop on convergence: the budget is maxiter generations (or time)
            polish=False,
            vectorized=True,
            updating='deferred',
            callback=out_of_time,
            rng=rng)
    except _Flipped:
        evaluations, margin, candidate = objective.flip
        return SearchResult(True, evaluations, candidate, margin, objective.generations)
    margin, candidate = objective.best
    return SearchResult(False, objective.evaluations, candidate, margin, objective.generations)


def search_window(center: tuple, radius: Optional[int], height: int, width: int) -> tuple:
    """The pixels within ``radius`` of a pixel or a box, clipped to the image.

    Args:
        center (tuple): ``(x, y)`` of a pixel or ``(x0, y0, x1, y1)`` of a box (pixel
            coordinates).
        radius (int | None): Distance (Chebyshev, in pixels) allowed around it; None: the
            whole image.
        height (int): Image height.
        width (int): Image width.

    Returns:
        tuple[int, int, int, int]: ``(x0, y0, x1, y1)``, the ends exclusive.
    """
    if radius is None:
        return 0, 0, width, height
    if radius < 0:
        raise ValueError(f'radius must be non-negative, got {radius}')
    if len(center) == 2:
        center = (center[0], center[1], center[0] + 1, center[1] + 1)
    x0, y0 = int(np.floor(center[0])), int(np.floor(center[1]))
    x1, y1 = max(int(np.ceil(center[2])), x0 + 1), max(int(np.ceil(center[3])), y0 + 1)
    return (min(max(x0 - radius, 0), width - 1), min(max(y0 - radius, 0), height - 1),
            max(min(x1 + radius, width), 1), max(min(y1 + radius, height), 1))


def draw_random_candidates(num_trials: int, height: int, width: int, rng) -> np.ndarray:
    """``(num_trials, 5)`` int64 candidates, uniform over the pixels and the colour cube.

    Args:
        num_trials (int): Number of candidates.
        height (int): Image height.
        width (int): Image width.
        rng (numpy.random.Generator): The random stream.
    """
    cols = rng.integers(0, width, num_trials)
    rows = rng.integers(0, height, num_trials)
    colours = rng.integers(0, 256, (num_trials, 3))
    return np.column_stack([cols, rows, colours]).astype(np.int64)


def random_search(margins: MarginFn,
                  num_targets: int,
                  height: int,
                  width: int,
                  trials: int = 64,
                  batch_size: int = 16,
                  seed=0) -> list:
    """Random one-pixel changes shared by all targets of an image, ``batch_size`` at a time.

    Args:
        margins (callable): ``(S, 5)`` int64 candidates to ``(S, T)`` margins.
        num_targets (int): Number of targets ``T``.
        height (int): Image height.
        width (int): Image width.
        trials (int): Candidates to try at most. Defaults to 64.
        batch_size (int): Candidates per call of ``margins``. Defaults to 16.
        seed (int | Sequence[int]): Seed of the candidates. Defaults to 0.

    Returns:
        list[SearchResult]: Per target; the search stops once every target has flipped.
    """
    candidates = draw_random_candidates(trials, height, width, np.random.default_rng(seed))
    first = np.full(num_targets, -1)
    best = np.full(num_targets, np.inf)
    best_index = np.zeros(num_targets, dtype=np.int64)
    flip_margin = np.full(num_targets, np.nan)
    evaluated = 0
    for start in range(0, trials, batch_size):
        if num_targets == 0 or (first >= 0).all():
            break
        batch = candidates[start:start + batch_size]
        values = np.asarray(margins(batch), dtype=np.float64)
        evaluated = start + len(batch)
        flipped = values < 0
        new = (first < 0) & flipped.any(0)
        first[new] = start + flipped.argmax(0)[new]
        flip_margin[new] = values[flipped.argmax(0), np.arange(num_targets)][new]
        lower = values.min(0) < best
        best_index[lower] = start + values.argmin(0)[lower]
        best[lower] = values.min(0)[lower]
    results = []
    for target in range(num_targets):
        index = first[target] if first[target] >= 0 else best_index[target]
        results.append(
            SearchResult(
                success=bool(first[target] >= 0),
                evaluations=int(first[target] + 1 if first[target] >= 0 else evaluated),
                candidate=tuple(int(v) for v in candidates[index]) if evaluated else None,
                margin=float(flip_margin[target] if first[target] >= 0 else best[target])))
    return results
