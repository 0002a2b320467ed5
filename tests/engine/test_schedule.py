import pytest
import torch

from engine.prime import Schedule, time_grid

SCHEDULES = [Schedule("linear"), Schedule("polynomial", 3.0), Schedule("cosine")]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_endpoints_and_derivative(schedule):
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    assert float(schedule.alpha(torch.tensor(0.0, dtype=torch.float64))) == pytest.approx(1.0)
    assert float(schedule.alpha(torch.tensor(1.0, dtype=torch.float64))) == pytest.approx(0.0, abs=1e-12)
    h = 1e-6
    numeric = (schedule.alpha(t + h) - schedule.alpha(t - h)) / (2 * h)
    assert torch.allclose(schedule.alpha_prime(t), numeric, atol=1e-6)
    assert bool((schedule.weight(t) > 0).all())


def test_linear_weight_is_one_over_t():
    t = torch.tensor([0.1, 0.5, 1.0], dtype=torch.float64)
    assert torch.allclose(Schedule("linear").weight(t), 1 / t)


def test_time_grid_and_reveal_probability():
    grid = time_grid(4)
    assert grid.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    s = Schedule("linear")
    assert s.reveal_probability(1.0, 0.75) == pytest.approx(0.25)
    assert s.reveal_probability(0.5, 0.25) == pytest.approx(0.5)
    assert s.reveal_probability(0.25, 0.0) == pytest.approx(1.0)
    warped = time_grid(4, warp=2.0)
    assert warped[0] == 1.0 and warped[-1] == 0.0 and bool((warped[1:] < warped[:-1]).all())


def test_bad_schedule_names():
    with pytest.raises(ValueError, match="linear"):
        Schedule("sigmoid")
