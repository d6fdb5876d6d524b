"""Captum's own attribution methods run unchanged on the wrapper and a FeatureMask."""

from __future__ import annotations

import pytest
import torch
from captum._utils.models.linear_model import SkLearnLinearRegression
from captum.attr import (
    FeatureAblation,
    IntegratedGradients,
    KernelShap,
    Lime,
    Occlusion,
    Saliency,
    ShapleyValueSampling,
)

from captum_eagle import FeatureMask

METHODS = {
    "FeatureAblation": lambda w, s, m: FeatureAblation(w).attribute(
        s.image, additional_forward_args=(s,), feature_mask=m, perturbations_per_eval=4
    ),
    "ShapleyValueSampling": lambda w, s, m: ShapleyValueSampling(w).attribute(
        s.image,
        additional_forward_args=(s,),
        feature_mask=m,
        n_samples=2,
        perturbations_per_eval=4,
    ),
    # Lime's default Lasso zeroes the tiny effects of a random model; plain regression does not.
    "Lime": lambda w, s, m: Lime(w, interpretable_model=SkLearnLinearRegression()).attribute(
        s.image,
        additional_forward_args=(s,),
        feature_mask=m,
        n_samples=12,
        perturbations_per_eval=4,
    ),
    "KernelShap": lambda w, s, m: KernelShap(w).attribute(
        s.image,
        additional_forward_args=(s,),
        feature_mask=m,
        n_samples=12,
        perturbations_per_eval=4,
    ),
    "Occlusion": lambda w, s, m: Occlusion(w).attribute(
        s.image,
        additional_forward_args=(s,),
        sliding_window_shapes=(3, 8, 8),
        strides=(3, 8, 8),
        perturbations_per_eval=4,
    ),
    "IntegratedGradients": lambda w, s, m: IntegratedGradients(w).attribute(
        s.image, additional_forward_args=(s,), n_steps=4, internal_batch_size=4
    ),
    "Saliency": lambda w, s, m: Saliency(w).attribute(s.image, additional_forward_args=(s,)),
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_captum_method_runs_on_wrapper(wrapper, sample, method) -> None:
    mask = FeatureMask.grid(sample.image, 2, 3).mask
    attribution = METHODS[method](wrapper, sample, mask)
    assert attribution.shape == sample.image.shape
    assert torch.isfinite(attribution).all()
    assert attribution.abs().sum() > 0
    if method in ("FeatureAblation", "ShapleyValueSampling", "Lime", "KernelShap"):
        per_region = [attribution[0, 0][mask[0, 0] == r].unique().numel() for r in range(6)]
        assert per_region == [1] * 6
