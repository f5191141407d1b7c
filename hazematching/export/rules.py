"""The result of one rule of `hazematching check`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuleResult:
    """One rule: its name, whether it holds, and what was found."""

    rule: str
    passed: bool
    detail: str
