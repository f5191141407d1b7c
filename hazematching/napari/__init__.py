"""The napari plugin: a dock widget that dehazes image layers, and the example images.

Installed with `pip install "hazematching[napari]"`; napari finds it through the
`napari.manifest` entry point (`napari.yaml`). `dehaze.py` holds what runs without Qt,
`widget.py` the Qt widget, `samples.py` the sample data, `reader.py` opens microscope files
(the `formats` extra) with their pixel size.
"""
