"""Make the README's napari screenshot from a real run of the plugin's widget.

Opens a napari viewer, adds the first example image, runs the Dehaze widget on it with the
bundled model, waits for the result layers and saves a screenshot of the whole window, widget
included. It needs a display with OpenGL; without a screen, a virtual one:

    xvfb-run -a .venv/bin/python docs/images/napari_screenshot.py --out docs/images/napari.png
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import napari
import tifffile
from qtpy.QtWidgets import QApplication

from hazematching.inference.bundled import example_image
from hazematching.napari.widget import DehazeWidget

TIMEOUT_S = 600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images/napari.png"))
    args = parser.parse_args()
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 800)
    viewer.add_image(tifffile.imread(example_image("widefield_1.tif")), name="widefield_1")
    widget = DehazeWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Dehaze", area="right")
    widget.layer_box.setCurrentText("widefield_1")
    widget.run()
    deadline = time.monotonic() + TIMEOUT_S
    while widget.worker is not None and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.05)
    if "widefield_1 std" not in viewer.layers:
        raise SystemExit(f"the run did not finish: {widget.status.text()}")
    viewer.grid.enabled = True  # input, MMSE and std side by side
    viewer.reset_view()
    QApplication.processEvents()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False)
    viewer.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
