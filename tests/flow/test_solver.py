import pytest
import torch

from semflow.errors import SemflowInputError
from semflow.flow.path import flow_matching_loss, sample_path
from semflow.flow.solver import EVALUATIONS_PER_STEP, STEPPERS, ODESolver, time_grid


def test_constant_field_carries_x0_to_x1_in_one_euler_step():
    x0, x1 = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    out = ODESolver(lambda z, t: x1 - x0).sample(x0, time_grid(1))
    torch.testing.assert_close(out.z, x1)
    back = ODESolver(lambda z, t: x1 - x0).sample(x1, time_grid(1, reverse=True))
    torch.testing.assert_close(back.z, x0)


@pytest.mark.parametrize("method", ["heun", "midpoint"])
@pytest.mark.parametrize("steps", [1, 3])
def test_second_order_methods_exact_on_a_field_linear_in_t(method, steps):
    # dz/dt = 2t + 1  =>  z(1) = z(0) + 2
    v = lambda z, t: (2 * t + 1).view(-1, 1) * torch.ones_like(z)  # noqa: E731
    z0 = torch.randn(4, 5)
    out = ODESolver(v).sample(z0, time_grid(steps), method=method)
    torch.testing.assert_close(out.z, z0 + 2)
    back = ODESolver(v).sample(out.z, time_grid(steps, reverse=True), method=method)
    torch.testing.assert_close(back.z, z0)


def test_euler_is_first_order_and_heun_second_order():
    # dz/dt = 3t^2 integrates to t^3: error of Euler ~ 1/N, of Heun ~ 1/N^2.
    v = lambda z, t: 3 * t.view(-1, 1) ** 2 * torch.ones_like(z)  # noqa: E731
    z0 = torch.zeros(1, 1)
    err = {m: [float((ODESolver(v).sample(z0, time_grid(n), m).z - 1).abs()) for n in (10, 20)] for m in STEPPERS}
    assert 1.8 < err["euler"][0] / err["euler"][1] < 2.2
    assert 3.6 < err["heun"][0] / err["heun"][1] < 4.4
    assert 3.6 < err["midpoint"][0] / err["midpoint"][1] < 4.4
    # Closed forms: Euler's error on t^3 is (3/(2N) - 1/(2N^2)), midpoint's 1/(4N^2), Heun's 1/(2N^2).
    for n, e in zip((10, 20), err["euler"]):
        assert e == pytest.approx(3 / (2 * n) - 1 / (2 * n**2), rel=1e-4)
    for n, e in zip((10, 20), err["midpoint"]):
        assert e == pytest.approx(1 / (4 * n**2), rel=1e-3)
    for n, e in zip((10, 20), err["heun"]):
        assert e == pytest.approx(1 / (2 * n**2), rel=1e-3)


def test_euler_evaluates_the_left_end_of_each_step_in_both_directions():
    seen = []
    ODESolver(lambda z, t: seen.append(t[0].item()) or torch.zeros_like(z)).sample(torch.zeros(2, 1), time_grid(4))
    assert seen == pytest.approx([0, 0.25, 0.5, 0.75])
    seen.clear()
    ODESolver(lambda z, t: seen.append(t[0].item()) or torch.zeros_like(z)).sample(
        torch.zeros(2, 1), time_grid(4, reverse=True))
    assert seen == pytest.approx([1, 0.75, 0.5, 0.25])


def test_forward_then_reverse_returns_on_a_linear_path():
    # The exact rectified-flow field of a single pair is constant: every method inverts it exactly.
    x0, x1 = torch.randn(2, 3), torch.randn(2, 3)
    for method in STEPPERS:
        fwd = ODESolver(lambda z, t: x1 - x0).sample(x0, time_grid(7), method=method)
        rev = ODESolver(lambda z, t: x1 - x0).sample(fwd.z, time_grid(7, reverse=True), method=method)
        torch.testing.assert_close(rev.z, x0)


def test_trajectory_and_evaluation_count():
    calls = []
    v = lambda z, t: calls.append(1) or torch.ones_like(z)  # noqa: E731
    out = ODESolver(v).sample(torch.zeros(2, 3), time_grid(5), method="heun", return_trajectory=True)
    assert out.trajectory.shape == (6, 2, 3)
    torch.testing.assert_close(out.trajectory[:, 0, 0], torch.linspace(0, 1, 6))
    assert len(calls) == 5 * EVALUATIONS_PER_STEP["heun"]


def test_bad_solver_arguments():
    with pytest.raises(SemflowInputError, match="unknown solver"):
        ODESolver(lambda z, t: z).sample(torch.zeros(1), time_grid(2), method="rk45")
    with pytest.raises(SemflowInputError, match="steps=0"):
        time_grid(0)


def test_path_and_target():
    z0, z1 = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0])
    p = sample_path(z0, z1, t)
    torch.testing.assert_close(p.z_t[0], z0[0])
    torch.testing.assert_close(p.z_t[3], z1[3])
    torch.testing.assert_close(p.z_t[1], 0.75 * z0[1] + 0.25 * z1[1])
    torch.testing.assert_close(p.dz_t, z1 - z0)
    assert flow_matching_loss(z1 - z0, p) == 0
    torch.testing.assert_close(flow_matching_loss(torch.zeros_like(z0), p), ((z1 - z0) ** 2).mean())


def test_snap_without_a_projection_is_euler():
    field = lambda z, t: torch.sin(3 * z) + t.view(-1, 1)  # noqa: E731
    z0 = torch.randn(5, 3)
    for grid in (time_grid(6), time_grid(6, reverse=True)):
        torch.testing.assert_close(ODESolver(field).sample(z0, grid, method="snap").z,
                                   ODESolver(field).sample(z0, grid, method="euler").z)


def test_snap_heads_for_the_projected_end_and_lands_on_it():
    # A field that points at 0.4 from anywhere: Euler ends at 0.4, snap at the projection of 0.4 (rounding to 1).
    field = lambda z, t: (0.4 - z) / (1 - t).view(-1, 1)  # noqa: E731
    z0 = torch.zeros(2, 1)
    assert float(ODESolver(field).sample(z0, time_grid(4)).z[0]) == pytest.approx(0.4)
    seen = []

    def far_end(z, t):
        end = z + (1 - t).view(-1, 1) * field(z, t)
        seen.append((end.clone(), t.clone()))
        return torch.ceil(end)

    out = ODESolver(field).sample(z0, time_grid(4), method="snap", return_trajectory=True, far_end=far_end)
    torch.testing.assert_close(out.z, torch.ones(2, 1))
    # Each state lies on the straight line from the start to the projected end: z_t = t * 1.
    torch.testing.assert_close(out.trajectory[:, 0, 0], torch.tensor([0, 0.25, 0.5, 0.75, 1.0]))
    # One call a step, at the step's left end, each given the raw end 0.4 the field predicts.
    assert [float(t[0]) for _, t in seen] == [0, 0.25, 0.5, 0.75]
    for end, _ in seen:
        torch.testing.assert_close(end, torch.full((2, 1), 0.4))


def test_snap_projects_towards_the_grid_end_in_reverse_too():
    field = lambda z, t: torch.zeros_like(z) - 0.3  # noqa: E731
    out = ODESolver(field).sample(torch.zeros(1, 2), time_grid(2, reverse=True), method="snap",
                                  far_end=lambda z, t: (z + (0 - t).view(-1, 1) * field(z, t)).round())
    torch.testing.assert_close(out.z, torch.zeros(1, 2))  # predicted end 0.3 rounds to 0 and the path stays
    out = ODESolver(field).sample(torch.zeros(1, 2), time_grid(2, reverse=True), method="snap",
                                  far_end=lambda z, t: torch.ones_like(z))
    torch.testing.assert_close(out.z, torch.ones(1, 2))  # half way at t = 0.5, all the way at 0


def test_stochastic_steps_with_no_fresh_noise_are_euler():
    from semflow.flow.solver import RenoisedSource

    field = lambda z, t: torch.sin(3 * z) + t.view(-1, 1)  # noqa: E731
    z1 = torch.randn(4, 3)
    source = RenoisedSource(mean=torch.zeros(4, 3), scale=torch.tensor([0.5, 0.5, 0.0]), eta=0.0)
    grid = time_grid(7, reverse=True)
    torch.testing.assert_close(ODESolver(field).sample(z1, grid, renoise=source).z,
                               ODESolver(field).sample(z1, grid).z)


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_stochastic_steps_keep_the_interpolants_marginals_and_land_on_the_data(eta):
    # One data point a, the start a Gaussian around mu: z_t = (1 - t) a + t (mu + s eps), whose exact velocity is
    # (z - a) / t. Every stochastic step must land on that interpolant, with the noise still N(0, s^2) in law.
    from semflow.flow.solver import RenoisedSource

    a, mu, s = 0.3, -0.5, 0.4
    scale = torch.tensor([s, s, 0.0])  # the last entry carries no noise: plain Euler on a linear path there
    field = lambda z, t: torch.cat([(z[:, :2] - a) / t.view(-1, 1), torch.ones_like(z[:, 2:])], dim=1)  # noqa: E731
    n = 20000
    gen = torch.Generator().manual_seed(0)
    z1 = torch.cat([mu + s * torch.randn(n, 2, generator=gen), torch.ones(n, 1)], dim=1)
    source = RenoisedSource(mean=torch.tensor([mu, mu, 0.0]), scale=scale, eta=eta, generator=gen)
    out = ODESolver(field).sample(z1, time_grid(4, reverse=True), renoise=source, return_trajectory=True)
    torch.testing.assert_close(out.z[:, :2], torch.full((n, 2), a))
    torch.testing.assert_close(out.z[:, 2], torch.zeros(n))
    start = (z1[:, :2] - mu) / s
    for k, (state, t) in enumerate(zip(out.trajectory[1:-1], (0.75, 0.5, 0.25)), start=1):
        eps = (state[:, :2] - (1 - t) * a - t * mu) / (t * s)
        assert abs(float(eps.mean())) < 0.03 and abs(float(eps.std()) - 1) < 0.03
        # the noise is redrawn: after k steps it correlates with the start's as sqrt(1 - eta^2)^k
        assert float((eps * start).mean()) == pytest.approx((1 - eta**2) ** (k / 2), abs=0.03)


def test_stochastic_steps_are_refused_off_a_descending_euler_solve():
    from semflow.flow.solver import RenoisedSource

    source = RenoisedSource(mean=torch.zeros(1), scale=torch.ones(1), eta=0.5)
    for grid, method in ((time_grid(2), "euler"), (time_grid(2, reverse=True), "heun")):
        with pytest.raises(ValueError, match="stochastic steps"):
            ODESolver(lambda z, t: z).sample(torch.zeros(1, 1), grid, method=method, renoise=source)
