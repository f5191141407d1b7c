"""Domain randomisation: each simulated pair draws its own microscope and sample.

`draw_condition` turns a configuration with `randomize` ranges into the fixed configuration of
one pair. Photon levels set the noise; by default the gains then bring every image to the
intensity scale of the base configuration's photon levels, as a camera's gain would. The draw
uses its own random stream, seeded by (seed, pair index, 1), so the sample and noise streams of
a pair are the same whether or not it is randomised, and one seed still gives one data set.
"""

from __future__ import annotations

import numpy as np

from ..config import (
    DIRECT,
    DRAWN,
    NA_MARGIN,
    STRUCTURES,
    RandomizationConfig,
    SimulationConfig,
)

#: Factors drawn log-uniformly (they span decades); every other range is drawn uniformly.
LOG_UNIFORM = ("widefield_photons", "confocal_photons")


def _draw(rng: np.random.Generator, name: str, interval: tuple[float, float]) -> float:
    low, high = interval
    if low == high:
        return float(low)
    if name in LOG_UNIFORM:
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))
    return float(rng.uniform(low, high))


def draw_condition(config: SimulationConfig, index: int) -> SimulationConfig:
    """The fixed configuration of pair `index`: `config` itself if it has no ranges."""
    ranges: RandomizationConfig | None = config.randomize
    if ranges is None:
        return config
    rng = np.random.default_rng([config.seed, index, 1])
    values: dict[str, object] = {name: _draw(rng, name, getattr(ranges, name)) for name in DIRECT}
    values["psf_model"] = ranges.psf_models[int(rng.integers(len(ranges.psf_models)))]
    na_high = min(ranges.numerical_aperture[1], NA_MARGIN * float(values["immersion_index"]))
    values["numerical_aperture"] = _draw(
        rng, "numerical_aperture", (ranges.numerical_aperture[0], na_high)
    )
    values["excitation_nm"] = float(values["emission_nm"]) - _draw(
        rng, "stokes_shift_nm", ranges.stokes_shift_nm
    )
    names = list(ranges.structures)
    present = rng.random(len(names)) < ranges.structure_probability
    if not present.any():
        present[rng.integers(len(names))] = True
    for name in STRUCTURES:
        values[name] = 0.0
    for name, keep in zip(names, present, strict=True):
        density = _draw(rng, name, ranges.structures[name])
        if keep:
            values[name] = density
    if values["psf_model"] != "scalar":  # aberrations exist in the scalar pupil model only
        values["spherical_aberration"] = values["astigmatism"] = 0.0
    if ranges.standardize_intensity:
        values["widefield_gain"] = config.widefield_photons / float(values["widefield_photons"])
        values["confocal_gain"] = config.confocal_photons / float(values["confocal_photons"])
    return SimulationConfig.model_validate({**config.model_dump(), **values, "randomize": None})


def condition_record(condition: SimulationConfig) -> dict[str, object]:
    """The drawn factors of one pair, for simulation.json."""
    return {name: getattr(condition, name) for name in DRAWN}
