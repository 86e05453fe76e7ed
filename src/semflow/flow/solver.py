"""ODE solvers for ``dz/dt = v(z, t)``, independent of any model.

One loop serves both SemFlow directions: the direction comes from the time grid. An ascending grid
(``0 -> 1``) carries images to masks (segmentation); a descending one (``1 -> 0``) masks to images
(synthesis). Euler is the paper's method; Heun (2nd order, trapezoidal predictor-corrector) and midpoint
share the same loop through one-step functions.

``snap`` is Euler written as a move towards the far end a prediction implies: at ``(z, t)`` the field says the
path ends at ``e = z + (T - t) v`` (``T`` the grid's last time), and an Euler step of ``h`` moves the fraction
``h / (T - t)`` of the way from ``z`` to ``e``. ``snap`` moves instead towards ``far_end(z, t)``, the end the caller
predicts and projects onto the set it is known to lie in (for segmentation: masks of palette colours), so that
every state a solve visits mixes its start with a valid end, as the training states do. Without ``far_end`` it is
Euler exactly; with one, its last step lands on the projected end.

A descending solve whose start is Gaussian around a known mean (the interpolant ``z_t = (1 - t) x0 + t (mu + s
eps)``) can also be stochastic (:class:`RenoisedSource`): each Euler step keeps ``sqrt(1 - eta^2)`` of the noise the
field implies at the start end and draws ``eta`` of it afresh, as DDIM's ``eta`` does for diffusion. The marginals of
``z_t`` stay the interpolant's; ``eta = 0`` is Euler exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``v(z, t)``: ``z`` of shape ``(B, ...)`` and ``t`` of shape ``(B,)`` to a tensor shaped like ``z``."""


def _euler(v: Velocity, z: torch.Tensor, t0: torch.Tensor, t1: torch.Tensor) -> torch.Tensor:
    return z + (t1 - t0) * v(z, t0.expand(z.shape[0]))


def _heun(v: Velocity, z: torch.Tensor, t0: torch.Tensor, t1: torch.Tensor) -> torch.Tensor:
    h = t1 - t0
    k0 = v(z, t0.expand(z.shape[0]))
    k1 = v(z + h * k0, t1.expand(z.shape[0]))
    return z + h * (k0 + k1) / 2


def _midpoint(v: Velocity, z: torch.Tensor, t0: torch.Tensor, t1: torch.Tensor) -> torch.Tensor:
    h = t1 - t0
    k0 = v(z, t0.expand(z.shape[0]))
    return z + h * v(z + h / 2 * k0, (t0 + h / 2).expand(z.shape[0]))


STEPPERS: dict[str, Callable[[Velocity, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "euler": _euler,
    "heun": _heun,
    "midpoint": _midpoint,
}
EVALUATIONS_PER_STEP = {"euler": 1, "heun": 2, "midpoint": 2, "snap": 1}
#: The solver names, in the order the commands list them (Euler, the paper's, first).
SOLVERS: tuple[str, ...] = (*STEPPERS, "snap")

FarEnd = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``e(z, t)``: the end ``(B, ...)`` of the path through ``z`` at times ``t`` ``(B,)``, projected where it is known
to lie (one network call: the caller's prediction ``z + (T - t) v`` mapped to the nearest valid end)."""


def snap_step(far_end: FarEnd, z: torch.Tensor, t0: torch.Tensor, t1: torch.Tensor,
              end_time: torch.Tensor) -> torch.Tensor:
    """One ``snap`` step of ``z`` ``(B, ...)`` from ``t0`` to ``t1`` on a grid ending at ``end_time``: the fraction
    ``(t1 - t0) / (end_time - t0)`` of the way to ``far_end(z, t0)``."""
    return z + (t1 - t0) / (end_time - t0) * (far_end(z, t0.expand(z.shape[0])) - z)


@dataclass
class RenoisedSource:
    """The noise a descending solve's start carries, for stochastic Euler steps (``method="euler"`` only).

    The state at ``t = 1`` is ``mean + scale * eps``, ``eps ~ N(0, I)``: ``mean`` and ``scale`` broadcast to the
    state ``(B, ...)``; entries where ``scale`` is 0 carry no noise and follow Euler. ``eta`` in ``[0, 1]``: the share of
    the noise drawn afresh at each step (``0``: Euler, an ODE solve). ``generator``: where fresh noise comes from
    (drawn on its device, then moved to the state's), or a list of ``G`` of them, each drawing for its own ``B / G``
    consecutive states (so that a mask's samples do not depend on the other masks of a batch).
    """

    mean: torch.Tensor
    scale: torch.Tensor
    eta: float
    generator: torch.Generator | list[torch.Generator] | None = None

    def fresh(self, like: torch.Tensor) -> torch.Tensor:
        """Standard normal noise shaped like ``like`` ``(B, ...)``, on its device and dtype."""
        generators = self.generator if isinstance(self.generator, list) else [self.generator]
        chunks = like.chunk(len(generators))
        if len(chunks) != len(generators) or like.shape[0] % len(generators):
            raise ValueError(f"{len(generators)} generators for a batch of {like.shape[0]}: expected a divisor")
        return torch.cat([torch.randn(c.shape, generator=g, device=g.device if g is not None else like.device,
                                      dtype=like.dtype).to(like.device) for c, g in zip(chunks, generators)])

    def step(self, v: Velocity, z: torch.Tensor, t0: torch.Tensor, t1: torch.Tensor) -> torch.Tensor:
        """One Euler step of ``z`` from ``t0`` to ``t1`` with the start end's noise partly redrawn: with ``e = z + (1 - t0)
        v`` the start end the field implies and ``n = e - mean`` its noise, the step lands at Euler ``+ t1 ((sqrt(1 -
        eta^2) - 1) n + eta scale xi)``, ``xi ~ N(0, I)`` (the interpolant at ``t1`` between the same image end and
        the start end with that noise)."""
        velocity = v(z, t0.expand(z.shape[0]))
        euler = z + (t1 - t0) * velocity
        if self.eta == 0:
            return euler
        active = (self.scale != 0).to(z.dtype)
        noise = (z + (1 - t0) * velocity - self.mean) * active
        fresh = self.fresh(z) * self.scale
        keep = (1 - self.eta ** 2) ** 0.5
        return euler + t1 * ((keep - 1) * noise + self.eta * fresh)


@dataclass
class SolverOutput:
    """``z``: the state at the grid's last time; ``trajectory``: ``(N+1, B, ...)`` states (or ``None``)."""

    z: torch.Tensor
    time_grid: torch.Tensor
    trajectory: torch.Tensor | None = None


# The most solver steps a command accepts: the network sees 1000 t, so beyond 1000 steps nothing changes but
# the time (and a trajectory of N + 1 states would not fit in memory).
MAX_STEPS = 10_000


def time_grid(steps: int, reverse: bool = False, device: torch.device | None = None) -> torch.Tensor:
    """``N + 1`` uniform times from 0 to 1 (or 1 to 0 when ``reverse``), float32 on ``device``; ``1 <= N <= MAX_STEPS``."""
    if not 1 <= steps <= MAX_STEPS:
        from semflow.errors import SemflowInputError

        raise SemflowInputError(f"steps={steps}; expected a whole number from 1 to {MAX_STEPS}")
    grid = torch.linspace(0.0, 1.0, steps + 1, device=device)
    return grid.flip(0) if reverse else grid


class ODESolver:
    """Integrates a velocity field along a time grid.

    Args:
        velocity: ``v(z, t)`` (see :data:`Velocity`).
    """

    def __init__(self, velocity: Velocity) -> None:
        self.velocity = velocity

    @torch.no_grad()
    def sample(
        self,
        z_init: torch.Tensor,
        time_grid: torch.Tensor,
        method: str = "euler",
        return_trajectory: bool = False,
        far_end: FarEnd | None = None,
        renoise: RenoisedSource | None = None,
    ) -> SolverOutput:
        """Solve from ``time_grid[0]`` to ``time_grid[-1]``.

        Args:
            z_init: state at ``time_grid[0]``, shape ``(B, ...)``.
            time_grid: 1-D monotone tensor of times (ascending or descending), at least two entries.
            method: one of :data:`SOLVERS` (``euler``, ``heun``, ``midpoint``, ``snap``).
            return_trajectory: also return every intermediate state.
            far_end: ``snap`` only: the projected far end the solve heads for (``None``: plain Euler).
            renoise: ``euler`` on a descending grid from ``t = 1`` only: stochastic steps that redraw part of the
                start's noise (:class:`RenoisedSource`).
        """
        if method not in SOLVERS:
            from semflow.errors import SemflowInputError

            raise SemflowInputError(f"unknown solver {method!r}; expected one of {sorted(SOLVERS)}")
        if time_grid.dim() != 1 or time_grid.numel() < 2:
            raise ValueError(f"time_grid must be 1-D with at least 2 times, got shape {tuple(time_grid.shape)}")
        grid = time_grid.to(device=z_init.device, dtype=torch.float32)
        if method == "snap" and far_end is not None:
            step = lambda v, z, t0, t1: snap_step(far_end, z, t0, t1, grid[-1])  # noqa: E731
        else:
            step = STEPPERS["euler" if method == "snap" else method]
        if renoise is not None and renoise.eta:
            if method != "euler" or float(grid[0]) != 1.0 or float(grid[-1]) >= 1.0:
                raise ValueError("stochastic steps (renoise) need the euler method on a grid descending from t = 1")
            step = renoise.step
        z = z_init
        states = [z] if return_trajectory else None
        for i in range(grid.numel() - 1):
            z = step(self.velocity, z, grid[i], grid[i + 1])
            if states is not None:
                states.append(z)
        trajectory = torch.stack(states) if states is not None else None
        return SolverOutput(z=z, time_grid=grid, trajectory=trajectory)
