"""HazeMatching: dehaze widefield fluorescence images with guided conditional flow matching.

The public API mirrors the command line, one function per step, each taking validated
configuration objects:

    from hazematching import SimulationConfig, TrainConfig, SamplingConfig
    from hazematching import simulate, train, predict

    simulate("data", SimulationConfig(pairs=64, size=128))
    result = train("data", "run", TrainConfig(steps=2000))
    predict(result.best, ["hazy.tif"], "out", SamplingConfig(samples=16))
"""

__version__ = "0.1.0"

from .calibrate import calibrate
from .calibration import Calibration
from .check import check_package
from .config import NetworkConfig, SamplingConfig, SimulationConfig, TrainConfig
from .data.simulate import simulate
from .deconvolution import fit_richardson_lucy
from .errors import HazeMatchingError
from .evaluate import PerceptualWeights, evaluate
from .export.package import export_package
from .export.recipe import ExportRecipe, load_recipe
from .predict import load_trained_model, predict, predict_planes
from .train import train

__all__ = [
    "Calibration",
    "ExportRecipe",
    "HazeMatchingError",
    "NetworkConfig",
    "PerceptualWeights",
    "SamplingConfig",
    "SimulationConfig",
    "TrainConfig",
    "calibrate",
    "check_package",
    "evaluate",
    "export_package",
    "fit_richardson_lucy",
    "load_recipe",
    "load_trained_model",
    "predict",
    "predict_planes",
    "simulate",
    "train",
]
