"""HazeMatching: dehaze widefield fluorescence images with guided conditional flow matching.

The public API mirrors the command line, one function per step, each taking validated
configuration objects:

    from hazematching import SimulationConfig, TrainConfig, SamplingConfig
    from hazematching import simulate, train, predict

    simulate("data", SimulationConfig(pairs=64, size=128))
    result = train("data", "run", TrainConfig(steps=2000))
    predict(result.best, ["hazy.tif"], "out", SamplingConfig(samples=16))
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# Public name -> module that defines it. Modules are imported on first use, so that
# `import hazematching` and the command line start without loading torch or bioimageio.
_EXPORTS = {
    "BlockConfig": "config",
    "Calibration": "uncertainty.calibration",
    "ExportRecipe": "export.recipe",
    "HazeMatchingError": "errors",
    "NetworkConfig": "config",
    "PerceptualWeights": "evaluation.compute",
    "SamplingConfig": "config",
    "SimulationConfig": "config",
    "TrainConfig": "config",
    "calibrate": "uncertainty.calibrate",
    "check_package": "export.check",
    "evaluate": "evaluation.compute",
    "export_model": "export.model",
    "export_package": "export.package",
    "fit_richardson_lucy": "training.richardson_lucy",
    "load_recipe": "export.recipe",
    "load_trained_model": "inference.loader",
    "open_model": "inference.loader",
    "predict": "inference.predict",
    "predict_planes": "inference.predict",
    "simulate": "data.simulate",
    "train": "training.loop",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the module of a public name on first access (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hazematching' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
