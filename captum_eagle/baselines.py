r"""Eagle and the Captum baselines, in one registry, and one forward counter.

Every method the dataset runner (:mod:`captum_eagle.run`) and the benchmarks compare is registered
here once, by name, with its settings and the name of its budget parameter, so a table of
``captum-eagle run --merge`` and a benchmark table mean the same thing by ``"lime"``:

============================  =================================  ===============================
name                          Captum method and settings         budget (default)
============================  =================================  ===============================
``eagle``                     :class:`EagleAttribution`, exact   fixed: ``N (N + 1)`` forwards
                              greedy search
``feature_ablation``          ``FeatureAblation`` over regions   fixed: ``N + 1`` forwards
``shapley``                   ``ShapleyValueSampling``           ``n_samples`` permutations (25)
``lime``                      ``Lime`` (Lasso, cosine kernel)    ``n_samples`` (25)
``kernel_shap``               ``KernelShap``                     ``n_samples`` (25)
``occlusion``                 ``Occlusion``: a square of 1/8 of  fixed
                              the image side, stride half a
                              window
``integrated_gradients``      ``IntegratedGradients`` from the   ``n_steps`` (50)
                              baseline image
``saliency``                  ``Saliency`` (absolute gradient)   fixed
``random``                    a uniformly random value per       fixed: no forward
                              region (torch's global generator)
============================  =================================  ===============================

The defaults are Captum 0.9's (``Lime.attribute``, ``KernelShap.attribute`` and
``ShapleyValueSampling.attribute`` draw 25 samples; ``IntegratedGradients`` takes 50 steps). A
caller that wants another budget passes it explicitly (``budget=``); every region method removes
regions to the same baseline value (black by default, as in the paper) and perturbs
``perturbations_per_eval = wrapper.batch_size`` images per forward.

:class:`ForwardCounter` counts the images the model encodes and the language-model calls it makes,
whoever calls it (the wrapper, Eagle's batched scorer, or Captum's ``LLMAttribution`` calling
``model.forward`` directly).

Examples::

    >>> from PIL import Image
    >>> from captum_eagle import FeatureMask, MLLMForwardWrapper
    >>> from captum_eagle.baselines import ForwardCounter, attribute, list_methods
    >>> from captum_eagle.testing import tiny_model
    >>> wrapper = MLLMForwardWrapper(*tiny_model("llava", image_size=32))
    >>> sample = wrapper.prepare(Image.new("RGB", (32, 32)), "describe the image .", "a cat")
    >>> mask = FeatureMask.grid(sample.image, 2, 2)
    >>> with ForwardCounter(wrapper) as counter:
    ...     attribution = attribute("kernel_shap", wrapper, sample, mask, budget=8)
    >>> attribution.shape, counter.images
    (torch.Size([1, 3, 32, 32]), 8)
    >>> "lime" in list_methods()
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import torch
from captum import attr as captum_attr
from torch import nn

from captum_eagle.attribution import EagleAttribution
from captum_eagle.checks import check_forward
from captum_eagle.maps import baseline_image
from captum_eagle.masks import FeatureMask, as_feature_mask
from captum_eagle.registry import Registry
from captum_eagle.wrapper import MLLMForwardWrapper, PreparedSample

__all__ = [
    "BaselineMethod",
    "ForwardCounter",
    "attribute",
    "get_method",
    "list_methods",
    "register_method",
]

Settings = Callable[[MLLMForwardWrapper, PreparedSample, FeatureMask, float], dict[str, Any]]
"""``(wrapper, sample, feature_mask, baselines) -> keyword arguments of the method's call``."""


@dataclass(frozen=True)
class BaselineMethod:
    r"""How one registered method is called.

    Attributes:
        method: a Captum attribution class (built as ``method(wrapper)``, then
            ``.attribute(sample.image, additional_forward_args=(sample,), **settings)``), or a
            function ``method(wrapper, sample, feature_mask, **settings)`` returning a map.
        settings (callable): ``(wrapper, sample, feature_mask, baselines) -> dict`` of keyword
            arguments (``feature_mask``, ``baselines``, window sizes, batch sizes ...).
        budget (str, optional): the keyword that sets the method's cost (``"n_samples"``,
            ``"n_steps"``); ``None`` when the cost is fixed by the image and the regions.
        default_budget (int, optional): its value when no budget is given.
        per_region (bool): one unit of budget costs a forward per region (Shapley permutations),
            rather than one forward (Lime, KernelShap samples); used by :meth:`budget_for`.
    """

    method: type | Callable[..., torch.Tensor]
    settings: Settings
    budget: str | None = None
    default_budget: int | None = None
    per_region: bool = False

    def budget_for(self, forwards: int, n_regions: int) -> int | None:
        r"""The budget that spends about ``forwards`` model forwards (``None`` if fixed cost).

        Args:
            forwards (int): the forwards to spend (e.g. Eagle's on the same sample).
            n_regions (int): the number of regions of the feature mask.

        Returns:
            int or None: ``forwards // n_regions`` (at least 1) for per-region budgets,
            ``forwards`` otherwise; ``None`` for a method whose cost is fixed.
        """
        if self.budget is None:
            return None
        return max(1, forwards // n_regions) if self.per_region else forwards


_METHODS: Registry[BaselineMethod] = Registry("attribution method")


def _region_settings(
    wrapper: MLLMForwardWrapper, sample: PreparedSample, mask: FeatureMask, baselines: float
) -> dict[str, Any]:
    return {
        "baselines": baselines,
        "feature_mask": mask.mask,
        "perturbations_per_eval": wrapper.batch_size,
    }


def _eagle_settings(
    wrapper: MLLMForwardWrapper, sample: PreparedSample, mask: FeatureMask, baselines: float
) -> dict[str, Any]:
    return {"baselines": baselines, "feature_mask": mask, "search": "exact"}


def _occlusion_settings(
    wrapper: MLLMForwardWrapper, sample: PreparedSample, mask: FeatureMask, baselines: float
) -> dict[str, Any]:
    height, width = sample.image.shape[-2:]
    window = (3, max(1, math.ceil(height / 8)), max(1, math.ceil(width / 8)))
    return {
        "sliding_window_shapes": window,
        "strides": (3, max(1, window[1] // 2), max(1, window[2] // 2)),
        "baselines": baselines,
        "perturbations_per_eval": wrapper.batch_size,
    }


def _gradient_settings(
    wrapper: MLLMForwardWrapper, sample: PreparedSample, mask: FeatureMask, baselines: float
) -> dict[str, Any]:
    return {"baselines": baselines, "internal_batch_size": wrapper.batch_size}


def _no_settings(
    wrapper: MLLMForwardWrapper, sample: PreparedSample, mask: FeatureMask, baselines: float
) -> dict[str, Any]:
    return {}


def random_regions(
    wrapper: MLLMForwardWrapper, sample: PreparedSample, feature_mask: FeatureMask
) -> torch.Tensor:
    r"""A uniformly random value per region from torch's global generator (seed it first)."""
    values = torch.rand(feature_mask.n_regions, dtype=torch.float64)
    return values[feature_mask.mask].float()


def register_method(
    name: str,
    method: type | Callable[..., torch.Tensor],
    settings: Settings = _no_settings,
    *,
    budget: str | None = None,
    default_budget: int | None = None,
    per_region: bool = False,
    replace: bool = False,
) -> BaselineMethod:
    r"""Add a method that :func:`attribute`, the runner and the benchmarks can use by name.

    Args:
        name (str): the new name.
        method: a Captum attribution class, or a function
            ``method(wrapper, sample, feature_mask, **settings) -> Tensor``.
        settings (callable): ``(wrapper, sample, feature_mask, baselines) -> dict`` of keyword
            arguments for the call. Default: none.
        budget (str, optional): keyword of the budget parameter. Default: fixed cost.
        default_budget (int, optional): its default value.
        per_region (bool): a unit of budget costs one forward per region. Default: False.
        replace (bool): replace an existing method of that name. Default: False.

    Returns:
        BaselineMethod: the registered entry.

    Raises:
        ValueError: ``name`` exists already (and ``replace`` is False), or ``default_budget`` is
            given without ``budget``.

    Examples::

        >>> from captum.attr import InputXGradient
        >>> from captum_eagle.baselines import list_methods, register_method
        >>> _ = register_method("input_x_gradient", InputXGradient)
        >>> "input_x_gradient" in list_methods()
        True
    """
    if default_budget is not None and budget is None:
        raise ValueError("default_budget needs budget= (the keyword that takes it).")
    entry = BaselineMethod(method, settings, budget, default_budget, per_region)
    return _METHODS.add(name, entry, replace=replace)


def list_methods() -> list[str]:
    r"""Names of the registered methods (Eagle first, then the Captum baselines)."""
    return _METHODS.names()


def get_method(name: str) -> BaselineMethod:
    r"""The registered method ``name``; :class:`~captum_eagle.registry.UnknownNameError` (a
    ``ValueError`` listing the valid names) if there is none."""
    return _METHODS.get(name)


def _check_budget(budget: int | None) -> None:
    if budget is None:
        return
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise TypeError(f"budget must be a positive int or None; got {budget!r}.")
    if budget < 1:
        raise ValueError(f"budget must be a positive int (samples or steps); got {budget}.")


def attribute(
    name: str,
    wrapper: MLLMForwardWrapper,
    sample: PreparedSample,
    feature_mask: FeatureMask,
    *,
    baselines: float = 0.0,
    budget: int | None = None,
    **options: Any,
) -> torch.Tensor:
    r"""Run the registered method ``name`` on one prepared sample.

    Args:
        name (str): one of :func:`list_methods`.
        wrapper (MLLMForwardWrapper): the forward function.
        sample (PreparedSample): prompt, answer and target tokens (``wrapper.prepare``).
        feature_mask (FeatureMask): the regions (pixel methods ignore them).
        baselines (float): value of removed pixels in ``[0, 1]``. Default: 0 (black).
        budget (int, optional): the method's budget parameter (samples, permutations or steps).
            Default: the registered default. Ignored by fixed-cost methods.
        **options: keyword arguments that replace registered settings (e.g. ``search="lazy"``
            for Eagle).

    Returns:
        Tensor: the attribution map, shaped like ``sample.image`` or ``(1, 1, H, W)``.

    Raises:
        UnknownNameError: ``name`` is not registered.
        TypeError / ValueError: ``budget`` is not a positive int, ``baselines`` outside
            ``[0, 1]``.
    """
    entry = get_method(name)
    _check_budget(budget)
    check_forward(wrapper, sample)
    baseline_image(baselines, sample.image)  # raises unless a number or tensor in [0, 1] that fits
    feature_mask = as_feature_mask(feature_mask, sample.image)
    kwargs = entry.settings(wrapper, sample, feature_mask, baselines)
    if entry.budget is not None:
        kwargs[entry.budget] = entry.default_budget if budget is None else budget
    kwargs.update(options)
    if isinstance(entry.method, type):
        attribution: torch.Tensor = entry.method(wrapper).attribute(
            sample.image, additional_forward_args=(sample,), **kwargs
        )
        return attribution
    return entry.method(wrapper, sample, feature_mask, **kwargs)


_SAMPLES, _STEPS, _IG = "n_samples", "n_steps", captum_attr.IntegratedGradients
for _name, _method, _settings, _budget, _default, _per_region in (
    ("eagle", EagleAttribution, _eagle_settings, None, None, False),
    ("feature_ablation", captum_attr.FeatureAblation, _region_settings, None, None, False),
    ("shapley", captum_attr.ShapleyValueSampling, _region_settings, _SAMPLES, 25, True),
    ("lime", captum_attr.Lime, _region_settings, _SAMPLES, 25, False),
    ("kernel_shap", captum_attr.KernelShap, _region_settings, _SAMPLES, 25, False),
    ("occlusion", captum_attr.Occlusion, _occlusion_settings, None, None, False),
    ("integrated_gradients", _IG, _gradient_settings, _STEPS, 50, False),
    ("saliency", captum_attr.Saliency, _no_settings, None, None, False),
    ("random", random_regions, _no_settings, None, None, False),
):
    register_method(
        _name,
        _method,
        _settings,
        budget=_budget,
        default_budget=_default,
        per_region=_per_region,
    )
del _name, _method, _settings, _budget, _default, _per_region, _IG


# -- counting forwards -------------------------------------------------------------------------
_VISION_MODULES = ("vision_tower", "visual", "vision_model")
_LANGUAGE_MODULES = ("language_model", "text_model")


class ForwardCounter:
    r"""Counts the images a model encodes and the language-model calls it makes.

    Forward pre-hooks sit on the model's vision encoder and on its language model: a
    language-model call that follows an image encoding counts one image per row of its batch
    (however the family tiles or flattens the pixels), and every call counts as a call. Forwards
    are counted whether a method calls the model through the wrapper, through Eagle's batched
    scorer, or calls ``model.forward`` directly (Captum's ``LLMAttribution``); cached generation
    steps, which encode no image, add calls only.
    Entering the ``with`` block resets the counts; they stay readable after it.

    Args:
        model (MLLMForwardWrapper or nn.Module): the wrapper, or a Hugging Face model with a
            vision encoder (``vision_tower`` / ``visual`` / ``vision_model``) and a
            language model (``language_model`` / ``text_model``), directly or under ``.model``.

    Attributes:
        images (int): images encoded inside the last ``with`` block.
        calls (int): language-model calls inside it.

    Examples::

        >>> from captum_eagle import MLLMForwardWrapper
        >>> from captum_eagle.baselines import ForwardCounter
        >>> from captum_eagle.testing import tiny_model
        >>> wrapper = MLLMForwardWrapper(*tiny_model("llava", image_size=32), batch_size=4)
        >>> sample = wrapper.prepare(torch.zeros(3, 32, 32), "describe the image .", "a cat")
        >>> with ForwardCounter(wrapper) as counter:
        ...     _ = wrapper(sample.image.repeat(6, 1, 1, 1), sample)
        >>> counter.images, counter.calls
        (6, 2)
    """

    def __init__(self, model: MLLMForwardWrapper | nn.Module) -> None:
        network = model.model if isinstance(model, MLLMForwardWrapper) else model
        owner = getattr(network, "model", network)
        vision = next((getattr(owner, n) for n in _VISION_MODULES if hasattr(owner, n)), None)
        language = next((getattr(owner, n) for n in _LANGUAGE_MODULES if hasattr(owner, n)), None)
        if vision is None or language is None:
            raise ValueError(
                f"ForwardCounter needs a model with a vision encoder ({', '.join(_VISION_MODULES)})"
                f" and a language model ({', '.join(_LANGUAGE_MODULES)}); "
                f"{type(network).__name__} has not both. Pass the "
                "MLLMForwardWrapper or its Hugging Face model."
            )
        self.vision: nn.Module = vision
        self.language: nn.Module = language
        self.images = 0
        self.calls = 0
        self._image_pending = False
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def _saw_image(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._image_pending = True

    def _count_call(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.calls += 1
        if self._image_pending:  # the encoded images feed this call: one per row of its batch
            embeds = kwargs.get("inputs_embeds")
            rows: torch.Tensor = embeds if embeds is not None else kwargs.get("input_ids", args[0])
            self.images += int(rows.shape[0])
            self._image_pending = False

    def __enter__(self) -> ForwardCounter:
        if self._handles:
            raise RuntimeError("This ForwardCounter is counting already; nest a new one.")
        self.images = self.calls = 0
        self._image_pending = False
        self._handles = [
            self.vision.register_forward_pre_hook(self._saw_image, with_kwargs=True),
            self.language.register_forward_pre_hook(self._count_call, with_kwargs=True),
        ]
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def counting(self) -> ForwardCounter:
        r"""The counter itself, for ``with counter.counting():`` (same as ``with counter:``)."""
        return self
