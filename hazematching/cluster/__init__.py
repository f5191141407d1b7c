"""Prediction on a Dask cluster (local or existing): many images in parallel, resumable."""
