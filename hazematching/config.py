"""Validated configuration objects for every step of the pipeline.

Each object can be saved as JSON and loaded back (`model_dump(mode="json")` /
`model_validate`), and travels inside checkpoints, so a run is always reproducible from what it
wrote to disk.
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Literal, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import HazeMatchingError, describe_validation_error

Method = Literal["hazematching", "reflow", "indi", "unet", "cyclegan"]
METHODS: tuple[str, ...] = ("hazematching", "reflow", "indi", "unet", "cyclegan")
POINT_PREDICTORS: tuple[str, ...] = ("unet", "cyclegan")
PsfModel = Literal["scalar", "vectorial", "gaussian"]
Structure = Literal["filaments", "blobs", "membranes", "puncta", "tissue", "vesicles"]
Interval = tuple[float, float]
NormalizationMode = Literal["per-image", "dataset"]
#: Randomised NAs stay below this fraction of the immersion index (sin(theta) < 0.95).
NA_MARGIN = 0.95


class StrictModel(BaseModel):
    """Strict base of every configuration: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


M = TypeVar("M", bound=StrictModel)


def load_toml(path: Path, model: type[M], what: str) -> M:
    """Read and validate a TOML file as `model`; errors name the file and the problem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as error:
        raise HazeMatchingError(f"{what} not found", path) from error
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise HazeMatchingError(f"cannot read {what} ({error})", path) from error
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise HazeMatchingError(
            f"invalid {what} ({describe_validation_error(error)})", path
        ) from error


def _check_interval(name: str, value: Interval, low: float, high: float) -> None:
    """Raise if `value` is not an ordered pair within [low, high]."""
    if not (low <= value[0] <= value[1] <= high):
        raise ValueError(f"{name} must be an ordered pair (low <= high) within [{low}, {high}]")


class RandomizationConfig(StrictModel):
    """Ranges from which every simulated pair draws its own microscope and sample.

    Domain randomisation: a model trained on pairs that differ in optics, noise and structure
    learns what they share instead of one simulator's quirks. Each pair draws every factor
    independently (photon levels log-uniformly, the rest uniformly); a range with equal ends pins
    a factor. The NA is drawn below NA_MARGIN x the drawn immersion index. Each structure type of
    `structures` is present with probability `structure_probability` (at least one per pair) at a
    density drawn from its range (objects per 100 um^2; for `tissue` the brightness of the
    texture). The defaults are the ranges of the bundled model.
    """

    psf_models: tuple[PsfModel, ...] = Field(
        ("scalar", "vectorial", "gaussian"), min_length=1, description="PSF models to draw from"
    )
    numerical_aperture: Interval = (0.8, 1.35)
    immersion_index: Interval = (1.33, 1.52)
    emission_nm: Interval = (450.0, 680.0)
    stokes_shift_nm: Interval = Field((20.0, 60.0), description="emission - excitation")
    pixel_um: Interval = (0.065, 0.16)
    thickness_um: Interval = (3.0, 10.0)
    defocus_brightness: Interval = (0.5, 2.0)
    background: Interval = Field((0.0, 0.2), description="widefield offset / signal peak")
    widefield_photons: Interval = (30.0, 1000.0)
    confocal_photons: Interval = (1000.0, 5000.0)
    read_noise: Interval = (0.5, 4.0)
    spherical_aberration: Interval = Field((0.0, 0.0), description="waves RMS (scalar PSF)")
    astigmatism: Interval = Field((0.0, 0.0), description="waves RMS (scalar PSF)")
    structures: dict[Structure, Interval] = Field(
        default_factory=lambda: {
            "filaments": (2.0, 12.0),
            "blobs": (0.3, 2.0),
            "membranes": (0.3, 2.0),
            "puncta": (10.0, 60.0),
            "tissue": (0.1, 0.5),
        },
        min_length=1,
    )
    structure_probability: float = Field(0.5, gt=0, le=1)
    standardize_intensity: bool = Field(
        True,
        description="set each pair's gains to (photon level of the base configuration) / (its "
        "drawn photon level), so every image has the same intensity scale and only its noise "
        "differs: the confocal brightness says nothing about the widefield one, and a model "
        "cannot learn an intensity scale that varies at random",
    )

    @model_validator(mode="after")
    def _ranges_are_physical(self) -> RandomizationConfig:
        _check_interval("numerical_aperture", self.numerical_aperture, 0.1, 1.5)
        _check_interval("immersion_index", self.immersion_index, 1.0, 1.6)
        _check_interval("emission_nm", self.emission_nm, 250.0, 1150.0)
        _check_interval("stokes_shift_nm", self.stokes_shift_nm, 0.0, 200.0)
        _check_interval("pixel_um", self.pixel_um, 1e-3, 10.0)
        _check_interval("thickness_um", self.thickness_um, 0.3, 100.0)
        _check_interval("defocus_brightness", self.defocus_brightness, 1e-3, 100.0)
        _check_interval("background", self.background, 0.0, 10.0)
        _check_interval("widefield_photons", self.widefield_photons, 1e-3, 1e9)
        _check_interval("confocal_photons", self.confocal_photons, 1e-3, 1e9)
        _check_interval("read_noise", self.read_noise, 0.0, 1e6)
        _check_interval("spherical_aberration", self.spherical_aberration, 0.0, 2.0)
        _check_interval("astigmatism", self.astigmatism, 0.0, 2.0)
        for name, interval in self.structures.items():
            _check_interval(f"structures.{name}", interval, 0.0, 1e4)
        if self.numerical_aperture[0] >= NA_MARGIN * self.immersion_index[0]:
            raise ValueError(
                f"the lowest NA must be below {NA_MARGIN} x the lowest immersion index"
            )
        return self


class SimulationConfig(StrictModel):
    """Physics and bookkeeping of the paired widefield/confocal simulator.

    Distances are in micrometres, wavelengths in nanometres, photon levels are the expected photon
    count at the 99.9th percentile of the noise-free image.
    """

    pairs: int = Field(64, ge=1, description="number of image pairs to write")
    size: int = Field(128, ge=16, le=4096, description="side of each square image in pixels")
    seed: int = Field(0, ge=0, description="seed of every random choice of the simulation")
    split: tuple[float, float, float] = Field(
        (0.8, 0.1, 0.1),
        description="fractions of pairs for train, val and test (0,0,1: a test set only)",
    )
    pixel_um: float = Field(0.1, gt=0, description="lateral pixel size")
    z_step_um: float = Field(0.3, gt=0, description="axial voxel size of the 3D sample")
    thickness_um: float = Field(6.0, gt=0, description="sample thickness; thicker = more haze")
    numerical_aperture: float = Field(1.1, gt=0.1, le=1.5)
    immersion_index: float = Field(1.33, ge=1.0, le=1.6)
    excitation_nm: float = Field(488.0, gt=200, lt=1200)
    emission_nm: float = Field(520.0, gt=200, lt=1200)
    pinhole_au: float = Field(1.0, gt=0, description="confocal pinhole diameter in Airy units")
    widefield_photons: float = Field(200.0, gt=0)
    confocal_photons: float = Field(2000.0, gt=0)
    read_noise: float = Field(2.0, ge=0, description="Gaussian camera read noise (photons)")
    filaments: float = Field(6.0, ge=0, description="filaments per 100 um^2 of field")
    blobs: float = Field(1.0, ge=0, description="nucleus-like blobs per 100 um^2 of field")
    membranes: float = Field(1.0, ge=0, description="membrane shells per 100 um^2 of field")
    puncta: float = Field(0.0, ge=0, description="sub-resolution spots per 100 um^2 of field")
    tissue: float = Field(0.0, ge=0, description="brightness of a dense tissue-like texture")
    vesicles: float = Field(0.0, ge=0, description="small hollow vesicles per 100 um^2 of field")
    defocus_brightness: float = Field(
        1.0, gt=0, description="brightness of structures away from the focal plane (haze source)"
    )
    psf_model: PsfModel = Field("scalar", description="optical model of both PSFs")
    spherical_aberration: float = Field(0.0, ge=0, description="waves RMS (scalar PSF only)")
    astigmatism: float = Field(0.0, ge=0, description="waves RMS (scalar PSF only)")
    background: float = Field(
        0.0, ge=0, description="widefield background (stray light, autofluorescence) / signal peak"
    )
    widefield_gain: float = Field(1.0, gt=0, description="widefield camera gain (counts/photon)")
    confocal_gain: float = Field(1.0, gt=0, description="confocal detector gain (counts/photon)")
    randomize: RandomizationConfig | None = Field(
        None,
        description="draw every pair's microscope and sample from these ranges instead of using "
        "the fixed values above (domain randomisation)",
    )
    unpaired: bool = Field(
        False,
        description="write unmatched widefield/ and confocal/ folders, each image of its own "
        "sample, instead of pairs (for unpaired training)",
    )

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(value) < 0 or abs(sum(value) - 1.0) > 1e-6:
            raise ValueError("split must be three non-negative fractions summing to 1")
        return value

    @model_validator(mode="after")
    def _na_below_immersion_index(self) -> SimulationConfig:
        if self.numerical_aperture >= self.immersion_index:
            raise ValueError("numerical_aperture must be below immersion_index")
        if self.psf_model != "scalar" and (self.spherical_aberration or self.astigmatism):
            raise ValueError("aberrations need psf_model 'scalar' (the others are aberration-free)")
        return self

    @model_validator(mode="after")
    def _drawn_factors_not_fixed(self) -> SimulationConfig:
        if self.randomize is None:
            return self
        fixed = [
            name
            for name in DRAWN
            if getattr(self, name) != SimulationConfig.model_fields[name].default
        ]
        if fixed:
            raise ValueError(
                f"{', '.join(fixed)}: drawn from the ranges (randomize) for every pair, which "
                "would replace the value given; pin their ranges there instead"
            )
        return self

    @property
    def planes(self) -> int:
        """Number of axial planes of the simulated volume."""
        return max(1, round(self.thickness_um / self.z_step_um))


#: Range fields of RandomizationConfig drawn straight into the SimulationConfig field of that
#: name (the NA is drawn below the immersion index, the structures one by one).
DIRECT = tuple(
    name
    for name in RandomizationConfig.model_fields
    if name in SimulationConfig.model_fields and name != "numerical_aperture"
)
STRUCTURES: tuple[str, ...] = get_args(Structure)
#: What a draw sets: recorded per pair in simulation.json.
DRAWN = (
    *DIRECT,
    "psf_model",
    "numerical_aperture",
    "excitation_nm",
    "widefield_gain",
    "confocal_gain",
    *STRUCTURES,
)


class CameraRecording(StrictModel):
    """Pairs as a camera writes them: `bits` deep, a `baseline` offset in counts, the image's
    99.8th percentile at `fill` of the range above the baseline, or, with `saturated` > 0, the
    gain at which that share of pixels exceeds the full scale (`data/camera.py`)."""

    bits: Literal[8, 12, 16]
    baseline: float = Field(0.0, ge=0)
    fill: float = Field(0.9, gt=0, le=1)
    saturated: float = Field(0.0, ge=0, lt=0.05)

    @model_validator(mode="after")
    def _baseline_below_full_scale(self) -> CameraRecording:
        if self.baseline >= 2**self.bits - 1:
            raise ValueError(f"baseline {self.baseline} is not below the {self.bits}-bit range")
        return self


class RobustnessCondition(StrictModel):
    """One held-out test condition of a robustness evaluation: how its pairs are simulated."""

    description: str = Field(..., min_length=1, description="what is different, for the table")
    out_of_range: str = Field(
        "", description="the factor outside the training ranges ('' for an in-range condition)"
    )
    reference: bool = Field(
        False, description="the in-range condition that every other gain is compared with"
    )
    randomize: bool = Field(True, description="draw each pair from `ranges`")
    ranges: RandomizationConfig = Field(
        default_factory=RandomizationConfig, description="ranges; unnamed fields keep defaults"
    )
    simulation: dict[str, float | str] = Field(
        default_factory=dict,
        description="fixed SimulationConfig values (without randomize: the whole condition)",
    )
    data: Path | None = Field(
        None,
        description="a folder of paired test images to use instead of simulating (e.g. pairs "
        "from another simulator or real pairs from another microscope; its test/ if present)",
    )
    camera: CameraRecording | None = Field(
        None, description="record the simulated pairs as this camera would (intensity units)"
    )

    @field_validator("simulation")
    @classmethod
    def _no_bookkeeping(cls, value: dict[str, float | str]) -> dict[str, float | str]:
        reserved = {"pairs", "size", "seed", "split", "randomize", "unpaired"} & set(value)
        if reserved:
            raise ValueError(f"{sorted(reserved)} are set by the plan, not per condition")
        return value

    @model_validator(mode="after")
    def _data_or_simulation(self) -> RobustnessCondition:
        if self.data is not None and (
            self.simulation or self.ranges != RandomizationConfig() or self.camera
        ):
            raise ValueError(
                "a condition with `data` is not simulated: drop ranges/simulation/camera"
            )
        return self


class RobustnessPlan(StrictModel):
    """Held-out conditions on which `hazematching robustness` measures a model.

    Every condition gets `pairs` test pairs of `size` px simulated with `seed` (a seed no
    training set uses), so all models meet the same images.
    """

    pairs: int = Field(20, ge=1)
    size: int = Field(128, ge=32, le=4096)
    seed: int = Field(303, ge=0)
    conditions: dict[str, RobustnessCondition] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _one_reference_and_plain_names(self) -> RobustnessPlan:
        references = [name for name, c in self.conditions.items() if c.reference]
        if len(references) != 1:
            raise ValueError(f"exactly one condition must be the reference, got {references}")
        for name in self.conditions:
            if not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"condition name {name!r} may only hold letters, digits, - and _")
        return self


class NetworkConfig(StrictModel):
    """Architecture of the velocity network (torchcfm's `UNetModel`).

    The defaults are the paper's network: 32 channels, multipliers 1,1,2,3,4, one residual block
    per level and attention at 1/16 of the resolution (3.7 M parameters).
    """

    model_channels: int = Field(32, ge=32, description="width of the first level")
    channel_mult: tuple[int, ...] = Field((1, 1, 2, 3, 4), min_length=1, max_length=7)
    num_res_blocks: int = Field(1, ge=1, le=4)
    attention_downsample: tuple[int, ...] = Field(
        (16,), description="downsampling factors at which self-attention is used"
    )
    num_heads: int = Field(1, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    mmse_head: bool = Field(
        False,
        description="a second output channel, the MMSE head: at t = 0, x_0 plus it estimates "
        "E[x_1 | hazy], so the sampler's first evaluation of each sample also gives the MMSE",
    )

    @model_validator(mode="after")
    def _widths_fit_group_norm(self) -> NetworkConfig:
        # torchcfm's U-Net normalises with 32 groups: every level's width must divide by 32.
        widths = [self.model_channels * mult for mult in self.channel_mult]
        if any(width % 32 for width in widths):
            raise ValueError(f"level widths {widths} must all be multiples of 32 (GroupNorm)")
        return self

    @property
    def size_multiple(self) -> int:
        """Image sides must be multiples of this (one factor 2 per downsampling)."""
        return 2 ** (len(self.channel_mult) - 1)


class CycleGANConfig(StrictModel):
    """Settings of unpaired training (method "cyclegan"), after Lim et al.'s CycleGAN with a blur
    kernel: cycle losses x ~ G(h * x) and y ~ h * G(y), LSGAN losses of multi-scale PatchGAN
    discriminators fed from a history buffer, and an l1 penalty on the blind kernel.
    """

    kernel_size: int = Field(
        31, ge=3, le=127, description="side of the learned blur kernel in pixels (odd)"
    )
    initial_sigma: float = Field(
        2.0, gt=0, description="blind mode: std (px) of the Gaussian the kernel starts from"
    )
    psf: str | None = Field(
        None,
        description="non-blind mode: a TIFF of the widefield PSF; its shape is kept fixed (only "
        "an overall gain is learned); None: the kernel is learned (blind)",
    )
    kernel_l1: float = Field(1e-3, ge=0, description="weight of the l1 penalty on the kernel")
    cycle_weight: float = Field(10.0, gt=0, description="weight of the two cycle losses")
    scales: int = Field(
        3, ge=1, le=4, description="PatchGAN discriminators per domain, at 1, 1/2, 1/4 ... scale"
    )
    discriminator_width: int = Field(32, ge=8, description="channels of the first PatchGAN layer")
    history: int = Field(
        50, ge=0, description="generated patches kept to feed the discriminators (0: none)"
    )

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError("kernel_size must be odd (the kernel has a centre pixel)")
        return value


class IntensityAugmentation(StrictModel):
    """Camera-like intensity variety for training (`data/camera.py`).

    With `probability`, each drawn patch comes from its image as a camera of one of
    `bit_depths` records it: the image's bright percentile at a random `fill` of the range above
    a random `baseline` (both fractions of the full scale), or, in `saturation_probability` of
    those draws, a gain at which `saturated` of its pixels exceed the full scale and clip.
    """

    probability: float = Field(0.75, ge=0, le=1, description="share of patches augmented")
    bit_depths: tuple[Literal[8, 12, 16], ...] = Field((8, 12, 16), min_length=1)
    fill: Interval = Field(
        (0.05, 0.9), description="bright percentile / range above the baseline (uniform)"
    )
    baseline: Interval = Field((0.0, 0.05), description="camera offset / full scale (uniform)")
    saturation_probability: float = Field(0.2, ge=0, le=1)
    saturated: float = Field(0.001, gt=0, lt=0.05, description="share of pixels that saturate")

    @field_validator("fill", "baseline")
    @classmethod
    def _fractions(cls, value: Interval) -> Interval:
        if not 0 <= value[0] <= value[1] <= 1:
            raise ValueError("expected an interval of fractions 0 <= low <= high <= 1")
        return value


class TrainConfig(StrictModel):
    """Everything that determines a training run.

    `method` picks what is learned with the same network and the same loss (the velocity from a
    start x_0 to the target, regressed along the straight path between them):
    - "hazematching": x_0 is Gaussian noise, the hazy image guides (the paper's method);
    - "reflow": a few-step HazeMatching student distilled from a HazeMatching `teacher`
      checkpoint: it regresses the straight path from each noise to the teacher's
      `teacher_steps`-step sample from it, at the `time_grid` times it is sampled at (see
      `training/reflow.py`); architecture and normalisation come from the teacher;
    - "indi": x_0 is the hazy image plus `indi_noise` x Gaussian noise (InDI, Delbracio and
      Milanfar 2023); sampled with 1 step it is a point predictor, with more steps iterative;
    - "unet": x_0 is the hazy image and only t = 0 is trained: a U-Net regressing the residual
      target - hazy with the MSE, i.e. a plain point predictor;
    - "cyclegan": the same point predictor G(y) = y + v(0, [y, y]) trained WITHOUT pairs, from
      unmatched widefield/ and confocal/ folders, as a CycleGAN whose second generator is one
      blur kernel h (see `training/cyclegan.py` and `CycleGANConfig`).
    """

    method: Method = Field("hazematching", description="what is learned (see the class doc)")
    indi_noise: float = Field(
        0.1, ge=0.0, description="InDI only: std of the noise added to the hazy start (z-scores)"
    )
    steps: int = Field(1000, ge=1, description="total optimizer steps")
    patch_size: int = Field(128, ge=8)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(1e-4, gt=0)
    time_grid: int = Field(
        20,
        ge=1,
        description="t is drawn from {0, 1/T, ..., (T-1)/T}: the Euler points of T steps; the "
        "sampler's default number of steps",
    )
    teacher: str | None = Field(
        None, description="reflow only: the HazeMatching checkpoint whose samples are distilled"
    )
    teacher_steps: int = Field(
        20, ge=1, description="reflow only: Euler steps of the teacher's samples"
    )
    reflow_pairs: int = Field(
        2048, ge=1, description="reflow only: teacher samples (patches) drawn to train on"
    )
    cyclegan: CycleGANConfig = CycleGANConfig()
    ema_decay: float = Field(0.999, ge=0.0, lt=1.0)
    val_every: int = Field(100, ge=1, description="steps between validations and checkpoints")
    val_patches: int = Field(32, ge=1, description="fixed validation patches per validation")
    val_fraction: float = Field(
        0.1, gt=0, lt=1, description="held-out fraction when DATA_DIR has no val/ folder"
    )
    seed: int = Field(0, ge=0)
    device: str = Field("auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'")
    network: NetworkConfig = NetworkConfig()
    normalization: NormalizationMode | None = Field(
        None,
        description="per-image: each image by its own percentiles (any gain, offset or bit "
        "depth); dataset: fixed statistics of the training images (one microscope's units). "
        "None: per-image, dataset for cyclegan (its two domains hold different scenes); "
        "a student, a resumed run and a fine-tuning keep their model's mode unless told",
    )
    augmentation: IntensityAugmentation | None = Field(
        None, description="camera-like intensity variety of the training patches (None: off)"
    )
    init: str | None = Field(
        None,
        description="fine-tuning: start from this checkpoint, run folder or package (the same "
        "network), keeping its normalisation mode unless `normalization` is given",
    )

    @property
    def normalization_mode(self) -> NormalizationMode:
        """The mode a fresh training starts with: the one chosen, else per-image (dataset for
        cyclegan)."""
        if self.normalization is not None:
            return self.normalization
        return "dataset" if self.method == "cyclegan" else "per-image"

    @property
    def point_predictor(self) -> bool:
        """Whether the model maps the hazy image to one estimate (one step, no noise, no std)."""
        return self.method in POINT_PREDICTORS

    @property
    def start_input(self) -> float:
        """Weight of the hazy image in the start state x_0."""
        return 0.0 if self.method in ("hazematching", "reflow") else 1.0

    @property
    def start_noise(self) -> float:
        """Standard deviation of the Gaussian noise in the start state x_0."""
        if self.point_predictor:
            return 0.0
        return {"hazematching": 1.0, "reflow": 1.0, "indi": self.indi_noise}[self.method]

    @property
    def times(self) -> int:
        """Size of the grid training times are drawn from (only t = 0 for the U-Net)."""
        return 1 if self.point_predictor else self.time_grid

    @model_validator(mode="after")
    def _unpaired_normalises_by_dataset(self) -> TrainConfig:
        if self.method == "cyclegan" and self.normalization == "per-image":
            raise ValueError(
                "cyclegan trains on two domains of different scenes, which share no image to "
                "scale by: normalization must be 'dataset'"
            )
        if self.method in ("reflow", "cyclegan") and self.init is not None:
            raise ValueError(
                "init (fine-tuning) is for hazematching, indi and unet: a reflow student starts "
                "from its teacher, cyclegan from scratch"
            )
        return self

    @model_validator(mode="after")
    def _head_needs_noise_start(self) -> TrainConfig:
        if self.network.mmse_head and self.method not in ("hazematching", "reflow"):
            raise ValueError(
                "an MMSE head estimates E[x_1 | hazy] from a noise start: only hazematching and "
                "reflow models have one"
            )
        return self

    @model_validator(mode="after")
    def _reflow_has_teacher(self) -> TrainConfig:
        if (self.method == "reflow") != (self.teacher is not None):
            raise ValueError("a teacher checkpoint is needed by, and only by, method 'reflow'")
        return self

    @model_validator(mode="after")
    def _kernel_fits_patch(self) -> TrainConfig:
        if self.method == "cyclegan" and self.cyclegan.kernel_size // 2 >= self.patch_size:
            raise ValueError(
                f"kernel_size {self.cyclegan.kernel_size} is too large for patch_size "
                f"{self.patch_size} (its half-width must be smaller than the patch)"
            )
        smallest = self.patch_size // 2 ** (self.cyclegan.scales - 1)
        if self.method == "cyclegan" and smallest < 16:
            raise ValueError(
                f"{self.cyclegan.scales} discriminator scales shrink patch_size {self.patch_size} "
                f"to {smallest} px, under the 16 px a PatchGAN needs: use fewer scales"
            )
        return self

    @model_validator(mode="after")
    def _patch_fits_network(self) -> TrainConfig:
        multiple = self.network.size_multiple
        if self.patch_size % multiple:
            raise ValueError(
                f"patch_size {self.patch_size} must be a multiple of {multiple} "
                f"(the network downsamples {len(self.network.channel_mult) - 1} times)"
            )
        return self


class OutputFormat(StrEnum):
    """How `predict` writes results: ImageJ hyperstacks (`<name>.tif`, what Fiji opens
    natively) or OME-TIFF (`<name>.ome.tif`, read by Bio-Formats, bioio and OMERO)."""

    TIFF = "tiff"
    OME_TIFF = "ome-tiff"

    def file_name(self, name: str) -> str:
        """The output file of the input named `name`."""
        return f"{name}.ome.tif" if self is OutputFormat.OME_TIFF else f"{name}.tif"


class BlockConfig(StrictModel):
    """How images too large for one pass are cut into blocks (`inference/blocks.py`)."""

    block: int = Field(512, ge=16, description="side of the blocks an image is cut into, px")
    halo: int = Field(
        32,
        ge=0,
        description="context added on every side of a block, px; neighbours are blended over "
        "2 x halo px",
    )
    above: int = Field(
        4096 * 4096,
        ge=1,
        description="TIFF planes with more pixels than this are sampled block by block "
        "(OME-Zarr images always are)",
    )

    @model_validator(mode="after")
    def _halo_fits(self) -> BlockConfig:
        if self.block < 2 * self.halo:
            raise ValueError(
                f"block size {self.block} px is smaller than twice the halo ({self.halo} px): "
                "blocks are blended with their neighbours over 2 x halo px"
            )
        return self


class SamplingConfig(StrictModel):
    """How posterior samples are drawn at prediction time."""

    samples: int = Field(8, ge=1, le=1024, description="posterior samples per image (K)")
    steps: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Euler steps from noise to image (T); None: the model's own, the steps its "
        "std was calibrated at, else its training time grid (20 for HazeMatching)",
    )
    seed: int = Field(0, ge=0, lt=2**31)
    batch_size: int = Field(8, ge=1, description="samples pushed through the network at once")
    keep_samples: bool = Field(False, description="also write every sample, not only mean/std")
    tile: int | None = Field(
        None,
        ge=0,
        description="tile stride; the network sees tile + overlap px; None: the training patch "
        "size, 0: whole image",
    )
    overlap: int | None = Field(
        None, ge=0, description="tile overlap; None: tile // 8, at least 16 px, at most tile // 4"
    )

    def tiling(self, patch_size: int) -> tuple[int, int]:
        """(tile, overlap) with defaults resolved for a model trained on `patch_size` patches.

        The default overlap is tile // 8 but not under 16 px: the network's view is disturbed
        within a few pixels of a tile's edge, and blending over fewer than about 16 px leaves
        a measurable step in single samples (benchmarks/results/seams.json). `EulerSampler`
        validates the pair against the network's size multiple.
        """
        tile = patch_size if self.tile is None else self.tile
        if self.overlap is not None:
            return tile, self.overlap
        return tile, min(tile // 4, max(16, tile // 8))
