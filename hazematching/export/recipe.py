"""Export recipes: per-model package settings and model-card text, kept as TOML in packaging/.

A recipe is validated like every other configuration: unknown fields are errors, so a typo in a
recipe fails loudly instead of being silently ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field

from ..bioimage.github import GITHUB_USER_MAX, GITHUB_USER_PATTERN
from ..config import SamplingConfig, StrictModel, load_toml

PAPER_URL = "https://arxiv.org/abs/2506.22397"
PAPER_CITATION = (
    "Ray, A., Ashesh, & Jug, F. (2025). Dehazing Light Microscopy Images with Guided Conditional "
    "Flow Matching: finding a sweet spot between fidelity and realism. arXiv:2506.22397."
)


# lower-case words of letters and digits joined by single hyphens: a zoo resource id, which JDLL
# also takes as a folder name and splits at "/"
NICKNAME_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"


NICKNAME_MAX = 64


def nickname_from(*words: str) -> str:
    """A nickname from words (a model name, its kind): lower case, every run of other
    characters one hyphen, a word already contained left out, cut at a hyphen to 64 characters."""
    slug = ""
    for word in words:
        part = re.sub(r"[^a-z0-9]+", "-", word.lower()).strip("-")
        if part and part not in slug:
            slug = f"{slug}-{part}" if slug else part
    if len(slug) > NICKNAME_MAX:
        slug = slug[: NICKNAME_MAX + 1].rsplit("-", 1)[0]
    return slug or "model"


class Person(StrictModel):
    """An author of the model; GitHub users go in `maintainers`."""

    name: str = Field(min_length=1)
    affiliation: str | None = None
    email: str | None = None
    orcid: str | None = None


class Maintainer(StrictModel):
    """Who answers for the package in the zoo, by GitHub user (the zoo requires at least one)."""

    github_user: str = Field(pattern=GITHUB_USER_PATTERN, max_length=GITHUB_USER_MAX)
    name: str | None = None


class CardText(StrictModel):
    """Free text for the model card; what is left empty is filled from the checkpoint."""

    training_data: str | None = Field(
        None, description="what the model was trained on; default: the data folder and counts"
    )
    intended_use: str = (
        "Remove out-of-focus haze from single-channel widefield fluorescence images similar to "
        "the training data, and estimate per-pixel uncertainty from posterior samples."
    )
    limitations: str = (
        "The model only knows the microscope, sample type, pixel size and noise level of its "
        "training data; on other images it can hallucinate or remove real structures. Each "
        "sample is one plausible image, not a measurement: use the MMSE for quantification and "
        "the std to see where the model is unsure. Retrain on your own pairs for real data."
    )
    metrics: str | None = Field(None, description="measured results to report (Markdown)")


class ExportRecipe(StrictModel):
    """Everything `hazematching export` needs besides the checkpoint.

    Name, description and authors have no defaults: a published model must say what it is and
    who made it. `default_recipe()` fills them for quick local exports.
    """

    name: str = Field(min_length=5, max_length=128)
    description: str = Field(min_length=10)
    authors: list[Person] = Field(min_length=1)
    maintainers: list[Maintainer] = Field(
        default_factory=list,
        description="GitHub users who maintain the package; the zoo requires one to upload",
    )
    license: str = "MIT"
    tags: list[str] = Field(
        default_factory=lambda: [
            "dehazing",
            "denoising",
            "fluorescence-light-microscopy",
            "2d",
            "pytorch",
            "flow-matching",
            "uncertainty",
            "widefield",
            "confocal",
        ]
    )
    version: str = "0.1.0"
    nickname: str | None = Field(
        None,
        pattern=NICKNAME_PATTERN,
        max_length=NICKNAME_MAX,
        description="`config.bioimageio.nickname`, the name JDLL (deepImageJ, Icy) lists the "
        "package by until the zoo assigns an id; default: derived from `name` and the model's "
        "kind (e.g. hazematching-dehazing-unet)",
    )
    sampling: SamplingConfig | None = Field(
        None,
        description="sampling baked into the package (a `[sampling]` table); None: the defaults "
        "of `SamplingConfig`, as `predict` uses them. Richardson-Lucy takes none.",
    )
    halo: int | None = Field(
        None,
        ge=0,
        description="pixels cropped from each side of the blocks of consumers that tile the "
        "image themselves; default: tile // 4",
    )
    test_image: Path | None = Field(
        None, description="hazy TIFF for the test tensors and cover (relative to the recipe)"
    )
    test_size: int | None = Field(
        None, ge=8, description="side of the square test tensor; default: the training patch size"
    )
    evaluation: Path | None = Field(
        None,
        description="report folder of `hazematching evaluate` holding this model; its table "
        "goes into the model card (relative to the recipe)",
    )
    robustness: Path | None = Field(
        None,
        description="robustness.json of `hazematching robustness` holding this model; its rows "
        "go into the model card (relative to the recipe)",
    )
    card: CardText = CardText()

    def package_nickname(self, kind: str) -> str:
        """The nickname a package of this kind of model carries: `nickname`, or one derived
        from `name` and `kind` (so that the kinds exported with one recipe differ)."""
        return self.nickname or nickname_from(self.name, kind)


def default_recipe() -> ExportRecipe:
    """The recipe used when none is given."""
    return ExportRecipe(
        name="HazeMatching dehazing",
        description="Dehazes widefield fluorescence images with guided conditional flow "
        "matching; outputs the MMSE estimate and the per-pixel standard deviation of posterior "
        "samples.",
        authors=[Person(name="HazeMatching contributors")],
    )


def load_recipe(path: Path) -> ExportRecipe:
    """Read and validate a TOML recipe; relative `test_image`, `evaluation` and `robustness`
    paths start at its folder."""
    path = Path(path)
    recipe = load_toml(path, ExportRecipe, "recipe")
    relative = {
        key: path.parent / value
        for key, value in (
            ("test_image", recipe.test_image),
            ("evaluation", recipe.evaluation),
            ("robustness", recipe.robustness),
        )
        if value is not None and not value.is_absolute()
    }
    return recipe.model_copy(update=relative)
