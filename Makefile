# Two entry points: `make demo` (set up, then dehaze an example image with the bundled model) and
# `make test` (set up, then test). `make pipeline` runs every step on a tiny model of its own
# (and a reflow student of it).
# The virtual environment is created on first use and refreshed when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO := out/demo
PIPELINE := out/pipeline

.PHONY: setup demo pipeline test test-slow lint bench clean display

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/hazematching predict examples/widefield_1.tif --out $(DEMO)

pipeline: setup
	rm -rf $(PIPELINE)
	$(BIN)/hazematching simulate $(PIPELINE)/data --pairs 32 --size 64 --seed 0
	$(BIN)/hazematching train $(PIPELINE)/data --out $(PIPELINE)/run --steps 60 --patch-size 64 \
		--batch-size 8 --width 32 --channel-mult 1,2 --seed 0
	$(BIN)/hazematching calibrate $(PIPELINE)/run/best.pt $(PIPELINE)/data --samples 8 --steps 10 --bins 10
	$(BIN)/hazematching train $(PIPELINE)/data --out $(PIPELINE)/fast --method reflow \
		--teacher $(PIPELINE)/run --teacher-steps 10 --reflow-pairs 64 --time-grid 2 --steps 30 \
		--batch-size 8 --seed 0
	$(BIN)/hazematching calibrate $(PIPELINE)/fast $(PIPELINE)/data --samples 8 --steps 1 --bins 10
	$(BIN)/hazematching predict $(PIPELINE)/fast $(PIPELINE)/data/test/*.tif \
		--out $(PIPELINE)/pred-fast --samples 8 --steps 1 --seed 0 --channel 1
	$(BIN)/hazematching predict $(PIPELINE)/run/best.pt $(PIPELINE)/data/test/*.tif \
		--out $(PIPELINE)/pred --samples 4 --steps 20 --seed 0 --channel 1
	$(BIN)/hazematching export $(PIPELINE)/run/best.pt --out $(PIPELINE)/model.zip \
		--recipe packaging/example.toml
	$(BIN)/hazematching evaluate $(PIPELINE)/run/best.pt $(PIPELINE)/data --out $(PIPELINE)/report \
		--samples 4 --steps 10 --no-progress

lint: setup
	$(BIN)/ruff check hazematching tests benchmarks packaging
	$(BIN)/ruff format --check hazematching tests benchmarks packaging

# napari's tests need an OpenGL display. Without a screen (no DISPLAY) they run on a virtual one,
# Debian's Xvfb, with the X libraries Qt 6 loads; both are installed here when missing and the
# user may install packages (root, as on CI), otherwise the message says what to install.
XVFB_PACKAGES := xvfb libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 \
	libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1
DISPLAY_RUN := $(if $(DISPLAY),,xvfb-run -a)

display:
	@[ -n "$$DISPLAY" ] || { command -v xvfb-run >/dev/null && \
		dpkg -s libxcb-cursor0 >/dev/null 2>&1; } || \
	{ [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(XVFB_PACKAGES) >/dev/null; } || \
	{ echo "no display: install $(XVFB_PACKAGES) (Debian/Ubuntu), or run on a desktop"; exit 1; }

test: lint display
	$(DISPLAY_RUN) $(BIN)/python -m pytest -q

test-slow: setup display
	$(DISPLAY_RUN) $(BIN)/python -m pytest -q -m slow

bench: setup
	$(BIN)/python benchmarks/throughput.py --out benchmarks/results/throughput.json
	$(BIN)/python benchmarks/tiling.py --out benchmarks/results/tiling.json
	$(BIN)/python benchmarks/cli_startup.py --out benchmarks/results/cli_startup.json
	$(BIN)/python benchmarks/blockwise.py --out benchmarks/results/blockwise.json

clean:
	rm -rf $(VENV) out
