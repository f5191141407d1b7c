"""What users see of problems: one exception stated in one line, and our warnings."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError


class HazeMatchingError(Exception):
    """A user-facing problem (bad file, bad option, bad checkpoint).

    The CLI prints the message on one line and exits non-zero; the message names the file it
    concerns, so no traceback is needed to find the culprit.
    """

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        text = " ".join(str(message).split())
        super().__init__(f"{path}: {text}" if path is not None else text)
        self.message = text  # without the path, to name another path instead
        self.path = Path(path) if path is not None else None


def describe_validation_error(error: ValidationError) -> str:
    """All problems of a pydantic validation error on one line: `field: message; ...` (a
    problem of the whole object, such as two fields that conflict, without a field)."""

    def one(problem: dict) -> str:
        message = problem["msg"].removeprefix("Value error, ")
        where = ".".join(str(part) for part in problem["loc"])
        return f"{where}: {message}" if where else message

    return "; ".join(one(problem) for problem in error.errors())


class IntensityRangeWarning(UserWarning):
    """An input lies far outside the intensities a dataset-normalised model was trained on."""


class CalibrationMismatch(UserWarning):
    """The std is calibrated with a fit made at other sampling settings than those in use."""
