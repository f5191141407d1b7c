"""Open a package with the bioimageio.spec (and bioimageio.core) of the Python that runs this file.

Run by path in another environment, one holding a deployed reader's versions, so it imports
nothing of HazeMatching (`-I` keeps this file's folder off the import path):

    python -I reader_probe.py PACKAGE [--test]

It prints one JSON object: the versions found, whether the description is valid (with the
reader's first errors if not) and, with --test and bioimageio.core present, the status of
`test_model` with the names and first errors of its failed checks.
"""

import json
import sys


def _errors(summary: object) -> list[str]:
    """What a validation summary refused: per failed check, each top-level field with its first
    error (`check: field.location: message`), or the check's name when it lists no error."""
    found = []
    for detail in getattr(summary, "details", []):
        if detail.status == "passed":
            continue
        fields: dict[str, str] = {}
        for error in getattr(detail, "errors", None) or []:
            location = [str(part) for part in getattr(error, "loc", ())] or ["?"]
            fields.setdefault(location[0], f"{'.'.join(location)}: {error.msg}"[:200])
        found += [f"{detail.name}: {line}" for line in fields.values()] or [str(detail.name)]
    return found[:8]


def probe(package: str, run_tests: bool) -> dict:
    """What this environment's reader makes of `package`."""
    import bioimageio.spec
    from bioimageio.spec import InvalidDescr, load_description

    report: dict = {"spec": bioimageio.spec.__version__}
    try:
        import bioimageio.core

        report["core"] = bioimageio.core.__version__
    except ImportError:
        run_tests = False
    try:
        import torch

        report["torch"] = torch.__version__
    except ImportError:
        pass
    descr = load_description(package, perform_io_checks=True)
    report["valid"] = not isinstance(descr, InvalidDescr)
    if not report["valid"]:
        report["errors"] = _errors(descr.validation_summary)
    if run_tests and report["valid"]:
        from bioimageio.core import test_model

        summary = test_model(package)
        report["test_model"] = summary.status
        if summary.status != "passed":
            report["errors"] = _errors(summary)
    return report


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1], "--test" in sys.argv[2:])))
