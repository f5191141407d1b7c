"""Inference: the sampler packages carry, building and driving it, prediction, running packages."""
