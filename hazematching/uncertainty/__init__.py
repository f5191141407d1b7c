"""Uncertainty: the calibrate command and its plots (the maths is in `model/calibration.py`)."""
