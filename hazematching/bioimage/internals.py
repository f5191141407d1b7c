"""The two things we need of bioimageio.spec that its public API does not offer.

Both live here and nowhere else, and `tests/test_bioimage.py` fails loudly when a release of
bioimageio.spec moves them, so an upgrade breaks one test instead of the package checks.
"""

from __future__ import annotations

from typing import Any


def known_github_users() -> set[str]:
    """bioimageio.spec's set of GitHub user names it accepts without asking the GitHub API.

    Used (by `github.unverified_github_users`) to test packages with maintainers offline; there
    is no public way to say "do not look these users up".
    """
    from bioimageio.spec._internal.constants import KNOWN_GITHUB_USERS

    return KNOWN_GITHUB_USERS


def is_spdx_license(license_field: Any) -> bool:
    """Whether a validated `license` field holds an SPDX identifier (not a free-text licence).

    bioimageio.spec validates licences into `LicenseId` (SPDX) or `DeprecatedLicenseId`; only
    the former is public in name, the class lives in an internal module.
    """
    from bioimageio.spec._internal.license_id import LicenseId

    return isinstance(license_field, LicenseId)
