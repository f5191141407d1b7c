"""The `rdf.yaml` the deployed BioImage.IO readers open, made from the one bioimageio.spec writes.

bioimageio.spec 0.5.11 and newer write `documentation` and every `covers` entry as a file
description (`{source, sha256}`) and stamp the description with their own format version. The
readers people run read both as plain relative paths and refuse the mapping:

- bioimageio.spec <= 0.5.10, inside bioimageio.core 0.10.x (the bioimage.io website's test-run
  on BioEngine, ilastik's tiktorch): "Input should be a valid string";
- JDLL (deepImageJ, Icy): casts `documentation` to a String (`ModelDescriptor`);
- QuPath's bioimageio spec parser: `documentation` is a String, `covers` a list of Strings
  (`Resource`), so Gson fails.

bioimageio.spec 0.5.11 and newer still read plain paths in a description whose format version
is below 0.5.11 (they convert them on loading). So the package says format 0.5.10: the newest
format with plain paths there, and the one spec 0.5.10 implements. The packages use nothing
newer than that format (spec 0.5.10.2 validates them and bioimageio.core 0.10.4 passes them;
`tests/test_readers.py`).

No option of `save_bioimageio_package` writes this form, so the written description is adapted
here. The adaptation is strict: a form of these fields it does not know is an error, so a
bioimageio.spec that changes what it writes fails the export loudly, not silently.

YAML. bioimageio.spec writes and reads YAML 1.2; PyYAML and the Java readers' SnakeYAML read
YAML 1.1, where `no` is false and `1e3` a string. The description is read as YAML 1.2, every
string either version would take for something else is written quoted, and the text is refused
unless both versions read it back as the very description.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import ruyaml
import yaml

from ..errors import HazeMatchingError
from ..fileio import atomic_path
from .layout import PACKAGE_DESCRIPTION

READERS_FORMAT_VERSION = "0.5.10"
FILE_DESCRIPTION_KEYS = {"source", "sha256"}


class UnexpectedSpecOutput(HazeMatchingError):
    """bioimageio.spec wrote a description this adaptation was not made for."""


def for_deployed_readers(rdf: dict[str, Any]) -> dict[str, Any]:
    """The description as bioimageio.spec wrote it, in the form the deployed readers open.

    `documentation` and `covers` become the plain relative paths of their files and
    `format_version` becomes 0.5.10; everything else stays as written.
    """
    written = rdf.get("format_version")
    if not (isinstance(written, str) and written.startswith("0.5.")):
        raise UnexpectedSpecOutput(
            f"bioimageio.spec wrote format_version {written!r}; the adaptation for deployed "
            "readers (hazematching/bioimage/readers.py) knows format 0.5 only"
        )
    adapted = dict(rdf)
    adapted["format_version"] = READERS_FORMAT_VERSION
    adapted["documentation"] = _plain_path(rdf.get("documentation"), "documentation")
    covers = rdf.get("covers")
    if not isinstance(covers, list):
        raise UnexpectedSpecOutput(f"bioimageio.spec wrote covers as {covers!r}, not as a list")
    adapted["covers"] = [_plain_path(cover, "covers") for cover in covers]
    return adapted


def _plain_path(entry: object, field: str) -> str:
    """The relative path of a `{source, sha256}` file description of a file in the package."""
    if (
        isinstance(entry, dict)
        and set(entry) <= FILE_DESCRIPTION_KEYS
        and isinstance(source := entry.get("source"), str)
        and "://" not in source
    ):
        return source
    raise UnexpectedSpecOutput(
        f"bioimageio.spec wrote {field} as {entry!r}, not as the {{source, sha256}} description "
        "of a file in the package that hazematching/bioimage/readers.py turns into a path"
    )


def _load_yaml_1_2(text: str) -> Any:
    """YAML as bioimageio.spec reads it (version 1.2)."""
    return ruyaml.YAML(typ="safe", pure=True).load(io.StringIO(text))


def _read_as_other_type(value: str) -> bool:
    """Whether a YAML 1.1 or 1.2 reader would take the plain scalar `value` for something else."""
    try:
        return yaml.safe_load(value) != value or _load_yaml_1_2(value) != value
    except (yaml.YAMLError, ruyaml.YAMLError):
        return True


class _BothVersionsDumper(yaml.SafeDumper):
    """PyYAML's safe dumper, quoting the strings that YAML 1.1 or 1.2 would read otherwise."""


_BothVersionsDumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="'" if _read_as_other_type(value) else None
    ),
)


def readers_yaml(rdf: dict[str, Any]) -> str:
    """`rdf` as YAML that YAML 1.1 and 1.2 readers both read back as `rdf`."""
    text = yaml.dump(
        rdf, Dumper=_BothVersionsDumper, sort_keys=False, allow_unicode=True, width=100
    )
    if yaml.safe_load(text) != rdf or _load_yaml_1_2(text) != rdf:
        raise UnexpectedSpecOutput(
            "the description does not read back the same in YAML 1.1 and 1.2; "
            "see hazematching/bioimage/readers.py"
        )
    return text


def rewrite_for_deployed_readers(package: Path) -> None:
    """Replace the `rdf.yaml` of a zipped package by `for_deployed_readers` of it.

    The other members are copied unchanged; the zip is replaced atomically.
    """
    package = Path(package)
    with zipfile.ZipFile(package) as source:
        rdf = _load_yaml_1_2(source.read(PACKAGE_DESCRIPTION).decode())
        text = readers_yaml(for_deployed_readers(rdf))
        with atomic_path(package) as tmp, zipfile.ZipFile(tmp, "w") as target:
            for member in source.infolist():
                data = text.encode() if member.filename == PACKAGE_DESCRIPTION else None
                target.writestr(member, data if data is not None else source.read(member))
