"""Uncertainty: calibration maths (`calibration`) and the calibrate command (`calibrate`)."""
