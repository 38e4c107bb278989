"""The loss landscape around networks: the plane through three points of weight space (its basis,
coordinates, grid and picture).

Modules: ``planes``. Nothing here parses arguments or prints.
"""
from landscape.planes import Plane, bend_state, contour_levels, flatten, l2, load_flat, plot_plane

__all__ = ["Plane", "bend_state", "contour_levels", "flatten", "l2", "load_flat", "plot_plane"]
