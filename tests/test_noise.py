"""The counter-based Gaussian noise: exact integer hash, crop invariance, normal statistics."""

from __future__ import annotations

import numpy as np
import torch

from hazematching.model.sampler import gaussian_field, mix32

CPU = torch.device("cpu")


def _mix32_reference(x: int) -> int:
    """The same hash written with Python's unbounded integers (independent of int64 tricks)."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_mix32_matches_unbounded_integer_reference() -> None:
    rng = np.random.default_rng(0)
    values = [0, 1, 0xFFFFFFFF, 0x80000000, *rng.integers(0, 2**32, 500).tolist()]
    hashed = mix32(torch.tensor(values, dtype=torch.int64)).tolist()
    assert hashed == [_mix32_reference(v) for v in values]


def test_field_is_standard_normal() -> None:
    field = gaussian_field(7, 0, 0, 0, 512, 512, CPU).numpy().astype(np.float64)
    assert abs(field.mean()) < 0.01  # standard error 1/512 ~ 0.002
    assert abs(field.std() - 1.0) < 0.01
    # fraction beyond 2 sigma of a normal distribution is 4.55 %
    assert abs(np.mean(np.abs(field) > 2.0) - 0.0455) < 0.003
    # neighbouring pixels are uncorrelated
    assert abs(np.corrcoef(field[:, 1:].ravel(), field[:, :-1].ravel())[0, 1]) < 0.01


def test_field_depends_only_on_global_coordinates() -> None:
    whole = gaussian_field(3, 2, 0, 0, 64, 80, CPU)
    crop = gaussian_field(3, 2, 10, 30, 20, 17, CPU)
    assert torch.equal(whole[10:30, 30:47], crop)


def test_seed_and_sample_change_the_field() -> None:
    base = gaussian_field(1, 0, 0, 0, 32, 32, CPU)
    assert torch.equal(base, gaussian_field(1, 0, 0, 0, 32, 32, CPU))
    for other in (gaussian_field(2, 0, 0, 0, 32, 32, CPU), gaussian_field(1, 1, 0, 0, 32, 32, CPU)):
        assert abs(np.corrcoef(base.ravel(), other.ravel())[0, 1]) < 0.1


def test_scripted_field_equals_eager() -> None:
    scripted = torch.jit.script(gaussian_field)
    assert torch.equal(scripted(5, 3, 4, 9, 16, 24, CPU), gaussian_field(5, 3, 4, 9, 16, 24, CPU))
