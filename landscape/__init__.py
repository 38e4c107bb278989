"""The loss landscape around trained networks: the plane through three points of weight space,
directions in weight space and points along them, the width of a minimum along rays, and the Hessian.

Modules: ``planes`` (the plane's basis, coordinates, grid and picture), ``directions`` (random and
filter-normalised directions, rays, widths), ``rays`` (a run of random rays from several networks:
its rows and draws, directions, widths, picture), ``hessian`` (Hessian-vector products through
torch.func, top eigenvalues, Hutchinson's trace). Nothing here parses arguments or prints.
"""
from landscape.directions import (BIAS_BN_RULES, combine, filter_normalized_direction, gaussian_direction,
                                  load_weights, measure_line, measure_plane, measure_ray, norm, ray_distances,
                                  sphere_direction, weights, width)
from landscape.hessian import Eigen, HessianOperator, Trace, hutchinson_trace, rademacher, top_eigenvalues
from landscape.planes import Plane, bend_state, contour_levels, flatten, l2, load_flat, plot_plane
from landscape.rays import FIGURES, Plan, plot_rays, point_seed, ray_direction, widths

__all__ = ["BIAS_BN_RULES", "combine", "filter_normalized_direction", "gaussian_direction", "load_weights",
           "measure_line", "measure_plane", "measure_ray", "norm", "ray_distances", "sphere_direction", "weights",
           "width", "Eigen", "HessianOperator", "Trace", "hutchinson_trace", "rademacher", "top_eigenvalues",
           "Plane", "bend_state", "contour_levels", "flatten", "l2", "load_flat", "plot_plane",
           "FIGURES", "Plan", "plot_rays", "point_seed", "ray_direction", "widths"]
