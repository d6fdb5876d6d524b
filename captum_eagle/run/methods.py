r"""The methods a run explains a sample with: :mod:`captum_eagle.baselines`, seeded per sample."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from captum_eagle import baselines
from captum_eagle.attribution import EagleAttribution, EagleResult
from captum_eagle.masks import FeatureMask
from captum_eagle.run.config import RunConfig
from captum_eagle.wrapper import MLLMForwardWrapper, PreparedSample

__all__ = ["Explanation", "explain", "list_methods", "register_method"]

RunMethod = Callable[[MLLMForwardWrapper, PreparedSample, FeatureMask, RunConfig], torch.Tensor]
"""``(wrapper, sample, feature_mask, config) -> map`` of :func:`register_method`."""

_TAKES_CONFIG: set[str] = set()  # methods registered by register_method: called with the config


@dataclass
class Explanation:
    r"""One map of a run: ``attribution`` ``(1, 1, H, W)`` float32 on CPU (channels summed), the
    forwards (images) it cost, its seconds, and Eagle's full result when the method is Eagle."""

    attribution: torch.Tensor
    forwards: int
    seconds: float
    eagle: EagleResult | None = None


def list_methods() -> list[str]:
    """Names of the methods :func:`captum_eagle.run.run` accepts (the baseline registry's)."""
    return sorted(baselines.list_methods())


def register_method(name: str, attribute: RunMethod) -> None:
    r"""Add a method (e.g. a benchmark's Grad-CAM baseline) that :func:`run` can use by name.

    It is registered in :mod:`captum_eagle.baselines` (so ``list_methods`` shows it everywhere)
    and called with the run's :class:`RunConfig`.

    Args:
        name (str): the name for ``RunConfig(method=name)``; must be new.
        attribute (callable): ``attribute(wrapper, sample, feature_mask, config)`` returning a map
            of ``sample.image``: ``(1, C, H, W)`` (channels are summed) or ``(H, W)``. Its
            forwards through the model are counted; it is seeded per sample like the others.

    Raises:
        ValueError: a method of that name exists already.

    Examples::

        >>> from captum.attr import Saliency
        >>> from captum_eagle.run import RunConfig, register_method
        >>> def absolute_saliency(wrapper, sample, feature_mask, config):
        ...     grads = Saliency(wrapper).attribute(sample.image, additional_forward_args=(sample,))
        ...     return grads.abs()
        >>> register_method("absolute_saliency", absolute_saliency)
        >>> RunConfig(method="absolute_saliency").method
        'absolute_saliency'
    """
    if name in baselines.list_methods():
        raise ValueError(f"A method named {name!r} exists already; pick another name.")
    baselines.register_method(name, attribute)
    _TAKES_CONFIG.add(name)


def sample_seed(config: RunConfig, sample_id: str) -> int:
    """The seed of one sample: from the run's seed and the sample id, not from the sharding."""
    return (config.seed * 1_000_003 + zlib.crc32(sample_id.encode())) % (2**63)


def explain(
    wrapper: MLLMForwardWrapper,
    sample: PreparedSample,
    mask: FeatureMask,
    config: RunConfig,
    sample_id: str,
) -> Explanation:
    r"""Explain ``sample`` with ``config.method``, seeded from ``sample_id``; count its forwards."""
    torch.manual_seed(sample_seed(config, sample_id))
    eagle = None
    with baselines.ForwardCounter(wrapper) as counter:
        started = time.perf_counter()
        if config.method == "eagle":
            settings = baselines.get_method("eagle").settings(
                wrapper, sample, mask, config.baseline
            )
            settings.update(search=config.search, batch_size=config.batch_size)
            eagle = EagleAttribution(wrapper).explain(
                sample.image, additional_forward_args=(sample,), **settings
            )
            attribution = eagle.attribution_map()
        elif config.method in _TAKES_CONFIG:
            method = baselines.get_method(config.method).method
            attribution = method(wrapper, sample, mask, config)
        else:
            attribution = baselines.attribute(
                config.method,
                wrapper,
                sample,
                mask,
                baselines=config.baseline,
                budget=config.budget,
            )
        seconds = time.perf_counter() - started
    attribution = attribution.detach().float().cpu()
    if attribution.ndim == 2:
        attribution = attribution[None, None]
    return Explanation(attribution.sum(dim=1, keepdim=True), counter.images, seconds, eagle)
