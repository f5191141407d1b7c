"""Start-up time of the command line: `hazematching --help` and every `COMMAND --help`.

Help must answer in well under a second, which holds only while the command line imports
neither torch nor bioimageio before a command runs (the package's `__init__` is lazy). Each
invocation runs as a fresh process, as a user types it, and the wall time from start to exit is
measured several times; the median is compared with `python -c pass` (the interpreter's own
start-up, the floor). The commands are listed from the typer app, so a new command is measured
without editing this script. One extra run per command records whether it imported torch or
bioimageio, the usual reason for a slow start.

    python benchmarks/cli_startup.py --out benchmarks/results/cli_startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import typer

from hazematching.cli import app

EXE = str(Path(sys.executable).parent / "hazematching")
LIMIT_S = 1.0  # what a user waits for help at most
HEAVY = ("torch", "bioimageio.core")
# runs the app in-process as the console script does, then says which heavy modules it loaded
PROBE = """
import json, sys
from hazematching.cli import app
try:
    app(sys.argv[1:], prog_name="hazematching")
except SystemExit:
    pass
print(json.dumps([name for name in {heavy!r} if name in sys.modules]))
"""


def command_names() -> list[str]:
    """The subcommands as typer names them (`richardson_lucy` -> `richardson-lucy`)."""
    return sorted(typer.main.get_command(app).commands)


def wall_times(argv: list[str], repeats: int) -> list[float]:
    """Seconds from start to exit of `argv` in a fresh process, after one unmeasured warm-up."""
    times = []
    for attempt in range(repeats + 1):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        if attempt:
            times.append(time.perf_counter() - start)
    return times


def heavy_imports(args: list[str]) -> list[str]:
    """Which of torch and bioimageio.core `hazematching ARGS` imports."""
    code = PROBE.format(heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, stdout=subprocess.PIPE, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cli_startup.json"))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    baseline = statistics.median(wall_times([sys.executable, "-c", "pass"], args.repeats))
    print(json.dumps({"command": "python -c pass", "median_s": baseline}), flush=True)
    rows = []
    for extra in [[], *([name, "--help"] for name in command_names())]:
        help_args = extra or ["--help"]
        times = wall_times([EXE, *help_args], args.repeats)
        median = statistics.median(times)
        rows.append(
            {
                "command": " ".join(["hazematching", *help_args]),
                "median_s": median,
                "ratio_to_python": median / baseline,
                "runs_s": times,
                "heavy_imports": heavy_imports(help_args),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    slowest = max(rows, key=lambda row: row["median_s"])
    result = {
        "what": "wall time of a fresh process, median of the runs after one warm-up",
        "repeats": args.repeats,
        "limit_s": LIMIT_S,
        "python_pass_median_s": baseline,
        "slowest": slowest["command"],
        "slowest_median_s": slowest["median_s"],
        "all_under_limit": slowest["median_s"] < LIMIT_S,
        "commands": rows,
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_average_1min": load_before,
            "python": platform.python_version(),
            "torch": version("torch"),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
