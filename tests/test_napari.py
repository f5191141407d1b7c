"""The napari plugin on a real viewer (under Xvfb where there is no screen: `make test`):
result layers equal to `predict`, a run cancelled with the viewer still working, bad layers and
models shown as the CLI's one-line messages, and the manifest with its sample data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

# torch imports triton (with its own LLVM) the first time it builds an optimizer, as the
# session's training fixtures do; loaded after Mesa's llvmpipe (the viewer's OpenGL without a
# GPU), it crashes the process. Importing it first keeps the order safe whatever runs first.
import torch._dynamo  # noqa: F401
from npe2 import PluginManager, PluginManifest

from hazematching.config import SamplingConfig
from hazematching.inference.predict import predict
from hazematching.napari.widget import OTHER, DehazeWidget
from tests.helpers import EXAMPLES, PIXEL_UM, Z_UM, microscope_stack, write_czi

TIMEOUT_MS = 300_000


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


def _widget(viewer, qtbot, model: Path | None = None) -> DehazeWidget:
    widget = DehazeWidget(viewer)
    viewer.window.add_dock_widget(widget)
    if model is not None:
        widget.model_box.setCurrentText(OTHER)
        widget.model_path.setText(str(model))
        widget._model_changed()
    return widget


def _run(widget: DehazeWidget, qtbot, layer: str) -> None:
    widget.layer_box.setCurrentText(layer)
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)


def test_the_bundled_model_gives_the_layers_predict_gives(viewer, qtbot, main_command) -> None:
    image = tifffile.imread(EXAMPLES / "widefield_1.tif")
    viewer.add_image(image, name="widefield_1", scale=(0.5, 0.25), translate=(3.0, 4.0))
    widget = _widget(viewer, qtbot)
    assert "3 samples x 2 steps" in widget.model_note.text()  # baked into the package
    assert not any(f.isEnabled() for f in (widget.samples, widget.steps, widget.tile))
    _run(widget, qtbot, "widefield_1")
    assert [layer.name for layer in viewer.layers] == [
        "widefield_1",
        "widefield_1 mmse",
        "widefield_1 std",
    ], widget.status.text()
    expected = tifffile.imread(main_command / "widefield_1.tif")  # predict, same model
    for index, name in enumerate(("mmse", "std")):
        layer = viewer.layers[f"widefield_1 {name}"]
        assert layer.data.shape == image.shape
        np.testing.assert_allclose(layer.data, expected[index], rtol=1e-5, atol=1e-3)
        assert tuple(layer.scale) == (0.5, 0.25) and tuple(layer.translate) == (3.0, 4.0)
    assert viewer.layers["widefield_1 std"].colormap.name == "magma"
    assert widget.progress.value() == widget.progress.maximum() > 0
    assert "warning" not in widget.status.text()  # in the model's training intensities


def test_the_status_line_carries_the_intensity_guard(viewer, qtbot, dataset_model) -> None:
    """A model normalised with fixed statistics: a 16-bit-scale image gets its result and, in
    the status line, the guard's warning naming the layer and the numbers."""
    image = tifffile.imread(EXAMPLES / "widefield_1.tif")[:64, :64] * 150.0 + 100.0
    viewer.add_image(image, name="bright")
    widget = _widget(viewer, qtbot, dataset_model.best)
    _run(widget, qtbot, "bright")
    assert "bright mmse" in [layer.name for layer in viewer.layers], widget.status.text()
    status = widget.status.text()
    assert "warning: bright: intensities" in status and "far outside" in status


def test_a_checkpoint_adds_its_samples_as_a_stack(viewer, qtbot, trained, tmp_path) -> None:
    image = tifffile.imread(EXAMPLES / "widefield_2.tif")[:64, :80]
    viewer.add_image(image, name="crop")
    widget = _widget(viewer, qtbot, trained.best)
    assert widget.samples.isEnabled()
    widget.samples.setValue(3)
    widget.steps.setValue(2)
    widget.seed.setValue(4)
    widget.keep_samples.setChecked(True)
    _run(widget, qtbot, "crop")
    tifffile.imwrite(tmp_path / "crop.tif", image)
    sampling = SamplingConfig(samples=3, steps=2, seed=4, keep_samples=True)
    (path,) = predict(
        trained.best, [tmp_path / "crop.tif"], tmp_path / "out", sampling, progress=False
    )
    expected = tifffile.imread(path)
    samples = viewer.layers["crop samples"]
    assert samples.data.shape == (3, 64, 80) and tuple(samples.scale) == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(samples.data, expected[2:], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(viewer.layers["crop mmse"].data, expected[0], rtol=1e-5, atol=1e-4)


def test_cancel_stops_the_run_and_the_viewer_keeps_working(viewer, qtbot, trained) -> None:
    image = tifffile.imread(EXAMPLES / "widefield_3.tif")
    viewer.add_image(image, name="big")
    widget = _widget(viewer, qtbot, trained.best)
    widget.samples.setValue(64)
    widget.steps.setValue(50)
    widget.layer_box.setCurrentText("big")
    widget.run()
    qtbot.waitUntil(lambda: widget.progress.value() > 0, timeout=TIMEOUT_MS)
    widget.cancel()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=TIMEOUT_MS)
    assert widget.status.text() == "cancelled"
    assert widget.progress.value() < widget.progress.maximum()
    assert [layer.name for layer in viewer.layers] == ["big"]
    # the viewer and the widget still work: a short run completes
    viewer.add_image(image[:48, :48], name="small")
    widget.samples.setValue(2)
    widget.steps.setValue(1)
    _run(widget, qtbot, "small")
    assert "small mmse" in viewer.layers and widget.run_button.isEnabled()


def test_bad_layers_and_models_are_one_line_messages(viewer, qtbot, tmp_path) -> None:
    widget = _widget(viewer, qtbot)
    viewer.add_image(np.zeros((32, 32, 3), np.uint8), name="colour", rgb=True)
    viewer.add_image(np.zeros((2, 3, 32, 32), np.float32), name="hyper")
    nan = np.ones((32, 32), np.float32)
    nan[4, 4] = np.nan
    viewer.add_image(nan, name="holes")
    for layer, message in (
        ("colour", "expected 1 channel, found 3 channel(s)"),
        ("hyper", "expected a 2D image or one stack of 2D planes"),
        ("holes", "contains NaN or infinite values"),
    ):
        widget.layer_box.setCurrentText(layer)
        widget.run()
        text = widget.status.text()
        assert text.startswith(f"error: {layer}: ") and message in text and "\n" not in text
        assert widget.worker is None
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    widget.model_box.setCurrentText(OTHER)
    widget.model_path.setText(str(tmp_path / "model.pt"))
    widget._model_changed()
    assert "not a readable checkpoint" in widget.status.text()
    widget.run()
    assert widget.worker is None and len(viewer.layers) == 3


def test_manifest_offers_the_widget_and_the_example_images() -> None:
    manifest = PluginManifest.from_distribution("hazematching")
    assert [w.display_name for w in manifest.contributions.widgets] == ["Dehaze"]
    (reader,) = manifest.contributions.readers
    assert {"*.czi", "*.nd2", "*.lif", "*.ome.tif"} <= set(reader.filename_patterns)
    samples = {s.key: s for s in manifest.contributions.sample_data}
    assert set(samples) == {"widefield", "widefield_and_confocal"}
    command = {c.id: c for c in manifest.contributions.commands}[samples["widefield"].command]
    PluginManager.instance().discover()  # registered as napari registers it (no viewer needed)
    ((data, options, kind),) = command.exec()
    assert kind == "image" and options["name"] == "widefield_1"
    assert np.array_equal(data, tifffile.imread(EXAMPLES / "widefield_1.tif"))


def test_a_czi_opens_with_its_scale_and_the_results_overlay_it(
    viewer, qtbot, trained, sim_dir, tmp_path
) -> None:
    """The plugin's reader: one layer per named channel in micrometres; the widget's results
    take that scale."""
    path = write_czi(tmp_path / "cells.czi", microscope_stack(sim_dir))
    viewer.open(path, plugin="hazematching")
    assert [layer.name for layer in viewer.layers] == ["cells.czi DAPI", "cells.czi GFP"]
    scale = (Z_UM, PIXEL_UM, PIXEL_UM)
    assert tuple(viewer.layers["cells.czi GFP"].scale) == pytest.approx(scale)
    widget = _widget(viewer, qtbot, trained.best)
    widget.samples.setValue(2)
    widget.steps.setValue(2)
    _run(widget, qtbot, "cells.czi GFP")
    mmse = viewer.layers["cells.czi GFP mmse"]
    assert mmse.data.shape == viewer.layers["cells.czi GFP"].data.shape, widget.status.text()
    assert tuple(mmse.scale) == pytest.approx(scale)
