"""One-pixel attacks on mmseg and mmdet models and the statistics of a two-head study.

Modules, each importable alone (the tools import what they use):

- :mod:`one_pixel.search`: differential evolution and random search over ``(x, y, r, g, b)``;
- :mod:`one_pixel.targets`: what is attacked, pixels of a segmentation or objects of a
  detection, and their margins;
- :mod:`one_pixel.stats`: Wilson intervals, the sample size for a given power, budget curves;
- :mod:`one_pixel.study`: runs pooled over training seeds, two heads compared, the report.
"""
