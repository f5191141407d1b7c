#!/usr/bin/env bash
# Builds the Python environments of the BioImage.IO readers our packages must open, each with
# exactly the versions a deployed consumer runs, and prints the variables that point the reader
# tests (tests/test_readers.py, `-m readers`) at them.
#
#   bash tools/reader_envs.sh [FOLDER]      # default FOLDER: ~/.cache/hazematching-readers
#
# - bioengine: bioimageio.core 0.10.4 + bioimageio.spec 0.5.10.2 + torch 2.5.1, the versions of
#   the bioimage.io website's test-run (BioEngine);
# - ilastik: bioimageio.core 0.10.2 + torch 2.7.1, what ilastik's tiktorch 26.5 ships;
# - spec-newest: bioimageio.spec 0.5.14.3 alone, the newest validator of the zoo;
# - torch20: torch 2.0.1, the libtorch JDLL runs in deepImageJ and Icy (tests/test_runtimes.py).
# The two bioimageio.core environments also get torchcfm, which the packages' environment.yaml
# asks for (their state-dict weights build its U-Net), and pydantic < 2.14: bioimageio.spec 0.5.10
# and older predate pydantic 2.14 and fail on it in the file-description serializer.
# PyPI's Linux torch wheels are CUDA builds: each torch environment needs 3-6 GB and runs on the CPU.
# An environment whose marker file exists is kept; delete the folder to rebuild it.
set -euo pipefail
ROOT="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/hazematching-readers}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$ROOT"

build() {  # name, then pip requirements
    local name="$1" dir="$ROOT/$1"
    shift
    if [ ! -f "$dir/.installed" ]; then
        rm -rf "$dir"
        "$PYTHON" -m venv "$dir"
        "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
        touch "$dir/.installed"
    fi
}

TORCHCFM="torchcfm==$(sed -n 's/.*"torchcfm==\([^"]*\)".*/\1/p' "$(dirname "$0")/../pyproject.toml")"
build bioengine "bioimageio.core==0.10.4" "bioimageio.spec==0.5.10.2" "torch==2.5.1" "$TORCHCFM" \
    "pydantic<2.14"
build ilastik "bioimageio.core==0.10.2" "torch==2.7.1" "$TORCHCFM" "pydantic<2.14"
build spec-newest "bioimageio.spec==0.5.14.3"
build torch20 "torch==2.0.1" "numpy<2"

echo "export HAZEMATCHING_BIOENGINE_PYTHON=$ROOT/bioengine/bin/python"
echo "export HAZEMATCHING_ILASTIK_PYTHON=$ROOT/ilastik/bin/python"
echo "export HAZEMATCHING_SPEC_NEWEST_PYTHON=$ROOT/spec-newest/bin/python"
echo "export HAZEMATCHING_TORCH20_PYTHON=$ROOT/torch20/bin/python"
