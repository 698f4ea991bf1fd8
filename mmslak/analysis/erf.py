"""Effective receptive field (ERF): how much each input pixel moves the centre of the last stage.

As in the RepLKNet and SLaK analyses: for each image, the (ReLU'd) last-stage features at the
central pixel are summed over channels, back-propagated to the input, and the absolute input
gradient summed over colour channels; these maps are added up over images.
"""
import numpy as np
import torch


def input_gradient_map(backbone, image):
    """Contribution of every input pixel to the central last-stage output, for one image.

    Args:
        backbone (SLaK): The backbone, in eval mode; the output of the last block of
            ``backbone.stages[-1]`` is the last-stage feature map.
        image (Tensor): A ``1 x 3 x H x W`` (normalised) image.

    Returns:
        np.ndarray: ``H x W`` map: the absolute input gradient, summed over channels.
    """
    features = []
    handle = backbone.stages[-1][-1].register_forward_hook(
        lambda module, args, output: features.append(output))
    try:
        image = image.detach().clone().requires_grad_(True)
        backbone(image)
    finally:
        handle.remove()
    last = features[0]
    centre = last[:, :, last.shape[2] // 2, last.shape[3] // 2]
    gradient, = torch.autograd.grad(centre.relu().sum(), image)
    return gradient.abs().sum(dim=(0, 1)).double().numpy()


def accumulate_erf(backbone, images, progress=None):
    """Sum of :func:`input_gradient_map` over images.

    Args:
        backbone (SLaK): The backbone, in eval mode.
        images (Iterable[Tensor]): ``1 x 3 x H x W`` images of one size.
        progress (ProgressBar, optional): Updated once per image.

    Returns:
        np.ndarray: The accumulated ``H x W`` contribution matrix.
    """
    total = None
    for image in images:
        contribution = input_gradient_map(backbone, image)
        total = contribution if total is None else total + contribution
        if progress is not None:
            progress.update()
    if total is None:
        raise ValueError('No image to compute the ERF on')
    return total


def high_contribution_area_ratios(matrix, thresholds=(0.2, 0.3, 0.5, 0.99)):
    """For each ``t``, the area of the smallest centred square holding ``t`` of the total.

    Args:
        matrix (np.ndarray): ``H x W`` non-negative contributions.
        thresholds (Sequence[float]): Fractions of the total contribution.

    Returns:
        dict[float, float]: Threshold to the square's area as a fraction of ``H x W`` (the square
        is clipped to the image where it outgrows it).
    """
    height, width = matrix.shape
    integral = np.pad(matrix, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    row, col = height // 2, width // 2
    radii = np.arange(max(row, col) + 1)
    top, bottom = np.maximum(row - radii, 0), np.minimum(row + radii + 1, height)
    left, right = np.maximum(col - radii, 0), np.minimum(col + radii + 1, width)
    inside = (integral[bottom, right] - integral[top, right] - integral[bottom, left]
              + integral[top, left]) / integral[-1, -1]
    areas = (bottom - top) * (right - left) / (height * width)
    # Cumulative sums may round just below 1; the full square holds everything.
    inside[-1] = max(inside[-1], 1.)
    return {t: float(areas[np.argmax(inside >= t)]) for t in thresholds}


def log_normalise(matrix):
    """Contributions for display: ``log10(1 + m / mean(m))`` rescaled to ``[0, 1]``.

    Dividing by the mean first makes the picture independent of the gradients' overall scale
    (random and trained weights differ by orders of magnitude); the logarithm shows the tails.
    """
    scaled = np.log10(1 + matrix / max(matrix.mean(), np.finfo(float).tiny))
    return scaled / max(scaled.max(), np.finfo(float).tiny)


def save_erf_figure(panels, filename):
    """Save the log-normalised ERF matrices side by side as a heatmap PNG.

    Args:
        panels (dict[str, np.ndarray]): Title to contribution matrix, in display order.
        filename (str): Path of the PNG.
    """
    # matplotlib is optional (a test extra): needed only here. Agg draws without a display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5 * len(panels), 4.6))
    FigureCanvasAgg(figure)
    for index, (title, matrix) in enumerate(panels.items()):
        axes = figure.add_subplot(1, len(panels), index + 1)
        image = axes.imshow(log_normalise(matrix), cmap='RdYlGn', vmin=0, vmax=1)
        axes.set_title(title, fontsize=10)
        axes.set_xticks([])
        axes.set_yticks([])
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    figure.tight_layout()
    figure.savefig(filename, dpi=120)
