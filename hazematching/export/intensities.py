"""A model's normalisation as a package applies it: inside its sampler.

Packages declare no BioImage.IO pre- or postprocessing (only the spec's dtype casts): deployed
readers apply `scale_linear` per channel and `fixed_zero_mean_unit_variance` wrongly or not at
all (see `reader_rules.py`), so the sampler maps intensities itself, in its TorchScript and in
its state-dict architecture alike. This is the one place that translates a normalisation into
the sampler's arguments.
"""

from __future__ import annotations

from ..data.normalization import DatasetNormalization, Normalization


def package_intensities(normalization: Normalization) -> dict[str, object]:
    """`EulerSampler` keyword arguments that apply `normalization` to the package's input and
    invert it on its outputs."""
    if isinstance(normalization, DatasetNormalization):
        fixed = normalization.intensity_map()
        return {
            "input_offset": fixed.input_offset,
            "input_scale": fixed.input_scale,
            "output_offset": fixed.output_offset,
            "output_scale": fixed.output_scale,
        }
    return {
        "per_image": True,
        "low_percentile": normalization.low_percentile,
        "high_percentile": normalization.high_percentile,
    }
