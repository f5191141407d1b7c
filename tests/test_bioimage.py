"""What we use of bioimageio.spec beyond its public API, and the package layout helpers.

If a release of bioimageio.spec moves either internal, these tests fail first and name it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from pydantic import TypeAdapter

from hazematching.bioimage.github import unverified_github_users
from hazematching.bioimage.internals import is_spdx_license, known_github_users
from hazematching.bioimage.layout import PACKAGE_DESCRIPTION, is_package, read_raw_description


def test_known_github_users_is_the_set_bioimageio_spec_consults() -> None:
    from bioimageio.spec._internal import constants

    known = known_github_users()
    assert known is constants.KNOWN_GITHUB_USERS and isinstance(known, set)
    name = "hazematching-test-user"
    assert name not in known
    with unverified_github_users([name.upper()]):
        assert name in known  # GitHub names are case-insensitive: stored lower-case
    assert name not in known


def test_spdx_licences_are_told_from_free_text() -> None:
    from bioimageio.spec.model import v0_5

    field = v0_5.ModelDescr.model_fields["license"]
    spdx = TypeAdapter(field.annotation).validate_python("MIT")
    assert is_spdx_license(spdx)
    assert not is_spdx_license("MIT")  # a plain string is not a validated SPDX identifier


def test_package_layout(tmp_path: Path) -> None:
    folder = tmp_path / "unpacked"
    folder.mkdir()
    assert not is_package(folder)
    (folder / PACKAGE_DESCRIPTION).write_text("name: x\nmaintainers: [{github_user: a}]\n")
    assert is_package(folder) and is_package(tmp_path / "model.zip")
    assert read_raw_description(folder) == {"name": "x", "maintainers": [{"github_user": "a"}]}
    with zipfile.ZipFile(tmp_path / "model.zip", "w") as archive:
        archive.writestr(PACKAGE_DESCRIPTION, "name: y\n")
    assert read_raw_description(tmp_path / "model.zip") == {"name": "y"}
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    assert read_raw_description(tmp_path / "broken.zip") is None
    (folder / PACKAGE_DESCRIPTION).write_text("- a list, not a description\n")
    assert read_raw_description(folder) is None
