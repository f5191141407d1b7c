"""Training: the flow-matching objective, velocity network, checkpoints, loop, Richardson-Lucy."""
