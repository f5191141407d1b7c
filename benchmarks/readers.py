"""Compatibility matrix: packages opened by the BioImage.IO readers people run, in their own
environments.

Four packages: the bundled one (model_zoo/hazematching-simulated), a fresh export of its
checkpoint (2 samples x 1 step, 64 px test tensor), that export saved again by this
environment's bioimageio.spec without the adaptation for deployed readers (the form packages
had before it), and a Richardson-Lucy package fitted on 8 simulated pairs (the one kind whose
package is not built around the sampler). Each goes through
`hazematching/bioimage/reader_probe.py` in this environment and in every reader environment of
`tools/reader_envs.sh` whose variable is set: validation and, where bioimageio.core is
installed, `test_model`.

Usage (after `make setup` and `bash tools/reader_envs.sh`, with the variables it prints set):
    .venv/bin/python benchmarks/readers.py --out benchmarks/results/readers.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hazematching.bioimage import reader_probe
from hazematching.config import SamplingConfig, SimulationConfig
from hazematching.data.simulate import PSF_FILE, simulate
from hazematching.export.deconvolution_package import export_richardson_lucy
from hazematching.export.package import export_package
from hazematching.export.recipe import default_recipe, load_recipe
from hazematching.fileio import write_json
from hazematching.inference.bundled import bundled_model
from hazematching.training.richardson_lucy import fit_richardson_lucy

REPO = Path(__file__).resolve().parents[1]
READERS = {
    "this environment": sys.executable,
    "bioengine": os.environ.get("HAZEMATCHING_BIOENGINE_PYTHON"),
    "ilastik": os.environ.get("HAZEMATCHING_ILASTIK_PYTHON"),
    "spec-newest": os.environ.get("HAZEMATCHING_SPEC_NEWEST_PYTHON"),
}


def packages(folder: Path) -> dict[str, Path]:
    """The bundled package, a fresh export of its checkpoint, and the spec's own form of it."""
    from bioimageio.spec import load_description, save_bioimageio_package

    recipe = load_recipe(REPO / "packaging" / "hazematching-simulated.toml").model_copy(
        update={"sampling": SamplingConfig(samples=2, steps=1, seed=0), "test_size": 64}
    )
    fresh = export_package(bundled_model() / "training" / "best.pt", folder / "fresh.zip", recipe)
    written = folder / "as-spec-writes.zip"
    save_bioimageio_package(load_description(fresh.path), output_path=written)
    simulate(folder / "sim", SimulationConfig(pairs=8, size=48, seed=3), progress=False)
    fit_richardson_lucy(
        folder / "sim" / PSF_FILE, folder / "sim", folder / "rl", max_iterations=2, progress=False
    )
    deconvolution = export_richardson_lucy(
        folder / "rl", folder / "rl.zip", default_recipe().model_copy(update={"test_size": 32})
    )
    return {
        "bundled": bundled_model() / "rdf.yaml",
        "fresh export": fresh.path,
        "as bioimageio.spec writes": written,
        "richardson-lucy": deconvolution.path,
    }


def probe(python: str, package: Path) -> dict:
    """The reader's report on `package`, with the seconds it took."""
    start = time.perf_counter()
    done = subprocess.run(
        [python, "-I", reader_probe.__file__, str(package), "--test"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    seconds = round(time.perf_counter() - start, 1)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:], "seconds": seconds}
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    out = parser.parse_args().out
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        found = packages(Path(tmp))
        for reader, python in READERS.items():
            if python is None:
                print(f"{reader}: skipped (variable unset)")
                continue
            results[reader] = {name: probe(python, path) for name, path in found.items()}
            for name, report in results[reader].items():
                print(f"{reader:17} {name:26} {json.dumps(report)}")
    write_json(out, {"python": sys.version.split()[0], "readers": results})


if __name__ == "__main__":
    main()
