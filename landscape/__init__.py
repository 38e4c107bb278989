"""The loss landscape around trained networks: directions in weight space and points along them,
the width of a minimum along rays, and the Hessian (products, top eigenvalues, trace)."""
from landscape.directions import (BIAS_BN_RULES, combine, filter_normalized_direction, gaussian_direction,
                                  load_weights, measure_line, measure_plane, measure_ray, norm, ray_distances,
                                  sphere_direction, weights, width)
from landscape.hessian import Eigen, HessianOperator, Trace, hutchinson_trace, rademacher, top_eigenvalues

__all__ = ["BIAS_BN_RULES", "combine", "filter_normalized_direction", "gaussian_direction", "load_weights",
           "measure_line", "measure_plane", "measure_ray", "norm", "ray_distances", "sphere_direction", "weights",
           "width", "Eigen", "HessianOperator", "Trace", "hutchinson_trace", "rademacher", "top_eigenvalues"]
