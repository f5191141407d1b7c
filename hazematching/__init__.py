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
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time `__getattr__` imports lazily
    from .config import BlockConfig as BlockConfig
    from .config import IntensityAugmentation as IntensityAugmentation
    from .config import NetworkConfig as NetworkConfig
    from .config import SamplingConfig as SamplingConfig
    from .config import SimulationConfig as SimulationConfig
    from .config import TrainConfig as TrainConfig
    from .data.normalization import DatasetNormalization as DatasetNormalization
    from .data.normalization import PerImageNormalization as PerImageNormalization
    from .data.simulate import simulate as simulate
    from .errors import HazeMatchingError as HazeMatchingError
    from .errors import IntensityRangeWarning as IntensityRangeWarning
    from .evaluation.compute import PerceptualWeights as PerceptualWeights
    from .evaluation.compute import evaluate as evaluate
    from .export.check import check_package as check_package
    from .export.model import export_model as export_model
    from .export.package import export_package as export_package
    from .export.recipe import ExportRecipe as ExportRecipe
    from .export.recipe import load_recipe as load_recipe
    from .inference.loader import open_model as open_model
    from .inference.planes import predict_planes as predict_planes
    from .inference.predict import predict as predict
    from .model.calibration import Calibration as Calibration
    from .model.trained import load_trained_model as load_trained_model
    from .training.loop import train as train
    from .training.richardson_lucy import fit_richardson_lucy as fit_richardson_lucy
    from .uncertainty.calibrate import calibrate as calibrate


# Public name -> module that defines it. Modules are imported on first use, so that
# `import hazematching` and the command line start without loading torch or bioimageio.
_EXPORTS = {
    "BlockConfig": "config",
    "Calibration": "model.calibration",
    "DatasetNormalization": "data.normalization",
    "ExportRecipe": "export.recipe",
    "HazeMatchingError": "errors",
    "IntensityAugmentation": "config",
    "IntensityRangeWarning": "errors",
    "NetworkConfig": "config",
    "PerceptualWeights": "evaluation.compute",
    "PerImageNormalization": "data.normalization",
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
    "load_trained_model": "model.trained",
    "open_model": "inference.loader",
    "predict": "inference.predict",
    "predict_planes": "inference.planes",
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
