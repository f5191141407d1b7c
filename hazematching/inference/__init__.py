"""Inference: building and driving the sampler, runners, prediction, blocks, running packages."""
