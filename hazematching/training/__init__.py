"""Training: the flow-matching objective, the loop, reflow, unpaired training, the RL fit."""
