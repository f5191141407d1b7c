"""GitHub user names in a package: what the zoo requires, and how to test such a package offline.

The zoo needs maintainers named by their GitHub user. bioimageio.spec verifies every such name
against the GitHub API whenever it performs IO checks, which `bioimageio.core.test_model` always
does, and an unreachable API raises an uncaught connection error there (a timeout only warns).
Whether an account exists says nothing about the model, so while we validate, test or run a
package, the names it lists are entered in bioimageio.spec's own set of verified users, and
`verify_github_user` checks the accounts separately, saying so when it cannot (offline).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .internals import known_github_users
from .layout import read_raw_description

# letters, digits and single inner hyphens, at most GITHUB_USER_MAX characters
GITHUB_USER_PATTERN = r"^[A-Za-z0-9](?:-?[A-Za-z0-9])*$"
GITHUB_USER_MAX = 39
GITHUB_API = "https://api.github.com/users/{}"
VERIFY_TIMEOUT_S = 5.0


def is_github_user(name: str) -> bool:
    """Whether `name` is a syntactically valid GitHub user name."""
    return len(name) <= GITHUB_USER_MAX and re.fullmatch(GITHUB_USER_PATTERN, name) is not None


def package_github_users(path: Path) -> list[str]:
    """GitHub user names listed by the maintainers and authors of a package (.zip or folder).

    Unreadable packages give an empty list: loading them reports the actual problem.
    """
    rdf = read_raw_description(path)
    if rdf is None:
        return []
    people = [*(rdf.get("maintainers") or []), *(rdf.get("authors") or [])]
    return [str(p["github_user"]) for p in people if isinstance(p, dict) and p.get("github_user")]


@contextmanager
def unverified_github_users(names: Iterable[str]) -> Iterator[None]:
    """bioimageio.spec accepts `names` without asking GitHub while the context is open."""
    known = known_github_users()
    added = {name.lower() for name in names} - known
    known.update(added)
    try:
        yield
    finally:
        known.difference_update(added)


def verify_github_user(name: str) -> tuple[bool | None, str]:
    """(exists, how we know): True or False from the GitHub API, None when it cannot be asked."""
    import httpx

    if not is_github_user(name):
        return False, "not a valid GitHub user name"
    try:
        response = httpx.get(GITHUB_API.format(name), timeout=VERIFY_TIMEOUT_S)
    except httpx.HTTPError as error:
        return None, f"not verified: GitHub unreachable ({type(error).__name__})"
    if response.status_code == 200:
        return True, "verified on GitHub"
    if response.status_code == 404:
        return False, "no such GitHub user"
    return None, f"not verified: GitHub answered {response.status_code}"
