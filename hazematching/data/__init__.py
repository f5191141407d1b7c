"""Data: simulation of paired images, TIFF input/output, datasets and normalisation."""
