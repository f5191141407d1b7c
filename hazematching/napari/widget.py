"""The napari dock widget: pick an image layer and a model, press Run, get MMSE and std layers.

Sampling runs in a worker thread (napari's `create_worker`), so the viewer stays responsive; the
progress bar counts the model's network passes over tiles (a package's: planes), and Cancel
stops the run at the next one. Every problem (a bad layer, a file that is not a model) is shown
in the widget as the one-line message the command line prints; the viewer never sees an
exception.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import Signal
from qtpy.QtGui import QPixmap
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..config import SamplingConfig
from ..errors import HazeMatchingError, IntensityRangeWarning
from ..inference.runner import intensity_warning
from .dehaze import (
    STD_NOTE,
    Cancelled,
    ModelChoice,
    calibration_plot,
    choose_model,
    dehaze,
    layer_planes,
    load,
    result_layers,
)

if TYPE_CHECKING:
    import napari

BUNDLED = "bundled model (hazematching-simulated)"
OTHER = "a package or checkpoint..."
#: Letters for unnamed layer axes in messages, the last two being Y, X.
AXES = "TZYX"


@dataclass(frozen=True)
class Failed:
    """A run's problem, returned from the worker thread (a returned exception would be raised)."""

    error: Exception


class DehazeWidget(QWidget):
    """Dehaze the selected image layer with a HazeMatching model."""

    progressed = Signal(int)  # network passes done, emitted from the worker thread
    planned = Signal(int)  # network passes the run will make, emitted from the worker thread

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self._cancel = threading.Event()
        self._choice: ModelChoice | None = None

        self.layer_box = QComboBox()
        self.model_box = QComboBox()
        self.model_box.addItems([BUNDLED, OTHER])
        self.model_path = QLineEdit()
        self.model_path.setPlaceholderText("model .zip, package folder, checkpoint .pt or run")
        self.browse = QPushButton("Browse...")
        self.samples = _spin(1, 1024, SamplingConfig().samples)
        self.steps = _spin(0, 1000, 0)
        self.steps.setSpecialValueText("model's own")
        self.seed = _spin(0, 2**31 - 1, 0)
        self.tile = _spin(0, 4096, 0)
        self.tile.setSpecialValueText("training patch size")
        self.keep_samples = QCheckBox("add the samples as a layer")
        self.model_note = QLabel()
        self.model_note.setWordWrap(True)
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.help_button = QPushButton("What does the std mean?")

        path_row = QHBoxLayout()
        path_row.addWidget(self.model_path)
        path_row.addWidget(self.browse)
        form = QFormLayout()
        form.addRow("image", self.layer_box)
        form.addRow("model", self.model_box)
        form.addRow("", path_row)
        form.addRow("", self.model_note)
        form.addRow("samples", self.samples)
        form.addRow("steps", self.steps)
        form.addRow("seed", self.seed)
        form.addRow("tile", self.tile)
        form.addRow("", self.keep_samples)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.help_button)
        layout.addStretch()

        self.model_box.currentIndexChanged.connect(self._model_changed)
        self.model_path.editingFinished.connect(self._model_changed)
        self.browse.clicked.connect(self._browse)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.help_button.clicked.connect(self.explain_std)
        self.progressed.connect(self._advance)  # methods of this widget: run in the GUI thread
        self.planned.connect(self._plan)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()
        self._model_changed()

    # --- choices ---------------------------------------------------------------------------

    def _refresh_layers(self, *_: object) -> None:
        import napari

        current = self.layer_box.currentText()
        self.layer_box.clear()
        names = [
            layer.name for layer in self.viewer.layers if isinstance(layer, napari.layers.Image)
        ]
        self.layer_box.addItems(names)
        if current in names:
            self.layer_box.setCurrentText(current)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "HazeMatching model", "", "Models (*.zip *.pt)")
        if path:
            self.model_path.setText(path)
            self._model_changed()

    def _model_changed(self, *_: object) -> None:
        """Check the chosen model and show what it lets the user set."""
        other = self.model_box.currentText() == OTHER
        self.model_path.setEnabled(other)
        self.browse.setEnabled(other)
        self._choice = None
        if other and not self.model_path.text().strip():
            self.model_note.setText("choose a model package (.zip or folder) or a checkpoint")
            return
        try:
            self._choice = choose_model(self.model_path.text().strip() if other else None)
        except HazeMatchingError as error:
            self.model_note.setText("")
            self._show_error(str(error))
            return
        self.status.setText("")
        baked = self._choice.package_sampling
        for field in (self.samples, self.steps, self.seed, self.tile, self.keep_samples):
            field.setEnabled(baked is None)
        if baked is not None:
            self.model_note.setText(
                f"a package samples as it was exported: {baked.samples} samples x "
                f"{baked.steps or 'its own'} steps, seed {baked.seed}"
            )
        else:
            self.model_note.setText("a checkpoint: choose samples, steps, seed and tiling")

    def sampling(self) -> SamplingConfig:
        """The sampling settings of the fields (steps and tile 0: the model's own)."""
        return SamplingConfig(
            samples=self.samples.value(),
            steps=self.steps.value() or None,
            seed=self.seed.value(),
            keep_samples=self.keep_samples.isChecked(),
            tile=self.tile.value() or None,
        )

    # --- running ---------------------------------------------------------------------------

    def run(self) -> None:
        """Start dehazing the selected layer in a worker thread."""
        from napari.qt.threading import create_worker

        self.status.setText("")
        if self._choice is None:
            self._show_error(self.model_note.text() or "choose a model")
            return
        self._refresh_layers()  # layers may have been renamed since
        name = self.layer_box.currentText()
        if not name:
            self._show_error("add an image layer to dehaze")
            return
        layer = self.viewer.layers[name]
        labels = "".join(str(label)[:1].upper() for label in layer.axis_labels)
        axes = labels if len(set(labels)) == len(labels) else AXES[-layer.ndim :]
        try:
            planes = layer_planes(layer.data, layer.rgb, name, axes.rjust(layer.ndim, "?"))
        except HazeMatchingError as error:
            self._show_error(str(error))
            return
        choice, sampling = self._choice, self.sampling()
        self._cancel.clear()
        self.progress.setValue(0)
        self.progress.setMaximum(0)  # busy until the model is loaded and the work is known

        def work() -> tuple[np.ndarray, list[str], str | None] | Failed:
            """The run, its problems returned rather than raised: napari would also show a
            raised one as an error notification."""
            try:
                runner = load(choice, sampling)
                self.planned.emit(runner.work(planes))
                with warnings.catch_warnings():  # shown in the status line instead
                    warnings.simplefilter("ignore", IntensityRangeWarning)
                    caution = intensity_warning(runner, planes, name)
                stack = dehaze(runner, planes, self.progressed.emit, self._cancel.is_set)
            except Exception as error:  # every problem ends in the status line
                return Failed(error)
            return stack, runner.channel_names, caution

        self.worker = create_worker(
            work,
            _connect={
                "returned": lambda result: self._done(layer, result),
                "finished": self._finished,
            },
            _start_thread=False,
        )
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"dehazing {name} ...")
        self.worker.start()

    def _advance(self, done: int) -> None:
        self.progress.setValue(self.progress.value() + done)

    def _plan(self, total: int) -> None:
        self.progress.setMaximum(total)

    def cancel(self) -> None:
        """Stop the running job at its next network pass."""
        self._cancel.set()
        self.status.setText("cancelling ...")

    def _done(
        self, layer: object, result: tuple[np.ndarray, list[str], str | None] | Failed
    ) -> None:
        """Back in the main thread: add the result layers or show the problem."""
        if isinstance(result, Failed):
            self._failed(result.error)
        else:
            self._add_results(layer, *result)

    def _finished(self) -> None:
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setMaximum(max(self.progress.maximum(), 1))
        self.worker = None

    def _add_results(
        self, layer: object, stack: np.ndarray, channels: list[str], caution: str | None
    ) -> None:
        for result in result_layers(
            layer.name,  # type: ignore[attr-defined]
            stack,
            channels,
            tuple(layer.scale),  # type: ignore[attr-defined]
            tuple(layer.translate),  # type: ignore[attr-defined]
            tuple(layer.data.shape[:-2]),  # type: ignore[attr-defined]
        ):
            if result.name in self.viewer.layers:
                self.viewer.layers.remove(result.name)
            self.viewer.add_image(result.data, name=result.name, **result.options)
        done = f"added the results of {layer.name}"  # type: ignore[attr-defined]
        self.status.setText(f"{done}; warning: {caution}" if caution else done)

    def _failed(self, error: Exception) -> None:
        if isinstance(error, Cancelled):
            self.status.setText("cancelled")
        elif isinstance(error, HazeMatchingError):
            self._show_error(str(error))
        else:
            self._show_error(f"{type(error).__name__}: {' '.join(str(error).split())}")

    def _show_error(self, message: str) -> None:
        self.status.setText(f"error: {message}")

    def explain_std(self) -> None:
        """What the std means, with the model's calibration plot when it ships one."""
        box = QMessageBox(self)
        box.setWindowTitle("The std layer")
        plot = calibration_plot(self._choice) if self._choice is not None else None
        box.setText(STD_NOTE)
        if plot is not None:
            box.setInformativeText(f"The calibration of this model ({plot.name}):")
            box.setIconPixmap(QPixmap(str(plot)).scaledToWidth(420))
        box.open()


def _spin(low: int, high: int, value: int) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    return spin
