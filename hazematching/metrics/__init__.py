"""Metrics: distortion, structural similarity, perceptual, sliced Wasserstein, resolution."""
