"""The rectified flow: the path between images and masks, the velocity field, and the ODE solver.

* :mod:`~semflow.flow.path`: ``z_t = (1 - t) z0 + t z1``, its target ``z1 - z0``, the time sampling and the loss.
* :mod:`~semflow.flow.velocity`: ``v(z, t) = network(z, 1000 t)``, the one place time is converted.
* :mod:`~semflow.flow.solver`: :class:`ODESolver` (Euler, Heun, midpoint); direction from the time grid.
* :mod:`~semflow.flow.texture`: the synthesis ``eta`` whose samples carry the training images' high-frequency
  energy, chosen once after training.
"""

from semflow.flow.path import PathSample, flow_matching_loss, sample_path, sample_time
from semflow.flow.solver import SOLVERS, ODESolver, SolverOutput, time_grid
from semflow.flow.velocity import VelocityModel, network_timestep

__all__ = ["ODESolver", "PathSample", "SOLVERS", "SolverOutput", "VelocityModel", "flow_matching_loss",
           "network_timestep", "sample_path", "sample_time", "time_grid"]
