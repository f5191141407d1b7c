"""Open a package with the bioimageio.spec (and bioimageio.core) of the Python that runs this file.

Run by path in another environment, one holding a deployed reader's versions, so it imports
nothing of HazeMatching:

    python reader_probe.py PACKAGE [--test]

It prints one JSON object: the versions found, whether the description is valid (with the
reader's first errors if not) and, with --test and bioimageio.core present, the status of
`test_model` with the names and first errors of its failed checks.
"""

import json
import sys


def _errors(summary: object) -> list[str]:
    """The first errors of a validation summary, as `check: location: message` lines."""
    found = []
    for detail in getattr(summary, "details", []):
        if detail.status == "passed":
            continue
        for error in list(getattr(detail, "errors", []))[:3]:
            location = ".".join(str(part) for part in getattr(error, "loc", ()))
            found.append(f"{detail.name}: {location}: {error.msg}"[:300])
        if not getattr(detail, "errors", None):
            found.append(str(detail.name))
    return found[:6]


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
