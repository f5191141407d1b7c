"""The model: what training makes and inference runs, below both.

The velocity network and the sampler packages carry (`sampler`), building and tracing the
network (`network`), the checkpoint file (`checkpoint`), the std calibration it stores
(`calibration`), a checkpoint's network ready to sample (`trained`) and the Richardson-Lucy
model file (`richardson_lucy`).
"""
