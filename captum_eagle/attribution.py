r"""``EagleAttribution``: Eagle as a Captum perturbation attribution method, and its result."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from captum.attr import ImageMaskInput, LLMAttributionResult
from captum.attr._utils.attribution import PerturbationAttribution
from captum.log import log_usage

from captum_eagle.influence import INFLUENCE_VARIANTS, influence_area, token_influence
from captum_eagle.masks import FeatureMask, as_feature_mask
from captum_eagle.objective import SubsetScorer
from captum_eagle.search import SearchStrategy, get_search, run_search
from captum_eagle.wrapper import MLLMForwardWrapper, PreparedSample, TargetSelection


@dataclass
class EagleResult:
    r"""Everything one Eagle explanation found.

    ``r`` below indexes prefixes of the order: ``r = 0`` is the empty set, ``r = N`` all regions.

    Attributes:
        order (Tensor): ``(N,)`` region ids, most important first (``π``).
        objective (Tensor): ``(N + 1,)`` ``F(π_:r)``.
        gains (Tensor): ``(N,)`` marginal gains ``F(π_:r) − F(π_:r−1)``, ``r = 1..N``.
        insight (Tensor): ``(N + 1,)`` mean ``p_t(π_:r)`` (image restricted to the prefix).
        necessity (Tensor): ``(N + 1,)`` mean ``1 − p_t(V \ π_:r)`` (prefix removed).
        trajectories (Tensor): ``(T, N + 1)`` per-token insertion probabilities ``p_t(π_:r)``.
        removal_trajectories (Tensor): ``(T, N + 1)`` per-token ``p_t(V \ π_:r)``.
        region_attribution (Tensor): ``(N,)`` the saliency value of each region id, in ``[0, 1]``.
        token_attribution (Tensor): ``(T, N)`` per-token marginal gain of each region id along
            ``π`` (positive: the region raised that token's objective).
        influence (dict): per-token influence normalised across the answer, by variant name.
        influence_area (dict): per-token influence as an absolute area in ``[0, 1]``.
        target_tokens (list[str]): the explained tokens.
        answer (str): the explained answer.
        search (str): the search strategy.
        forwards (int): model forwards (images) spent.
        seconds (float): wall time of the attribution.
        feature_mask (Tensor): ``(1, 1, H, W)`` the regions.
    """

    order: torch.Tensor
    objective: torch.Tensor
    gains: torch.Tensor
    insight: torch.Tensor
    necessity: torch.Tensor
    trajectories: torch.Tensor
    removal_trajectories: torch.Tensor
    region_attribution: torch.Tensor
    token_attribution: torch.Tensor
    influence: dict[str, torch.Tensor]
    influence_area: dict[str, torch.Tensor]
    target_tokens: list[str]
    answer: str
    search: str
    forwards: int
    seconds: float
    feature_mask: torch.Tensor
    inputs: Any = field(default=None, repr=False, compare=False)

    @property
    def n_regions(self) -> int:
        return int(self.order.numel())

    def attribution_map(self) -> torch.Tensor:
        """The saliency map ``(1, 1, H, W)``: each pixel takes its region's value."""
        return self.region_attribution[self.feature_mask]

    def to_captum(self) -> LLMAttributionResult:
        r"""As a Captum ``LLMAttributionResult`` (regions as input features).

        ``seq_attr`` is the region saliency, ``token_attr`` the per-token gains ``(T, N)``, and
        ``output_probs`` the full-image probabilities of the target tokens. If the attribution
        started from a Captum ``ImageMaskInput``, ``plot_image_heatmap()`` works on it.
        """
        inp = self.inputs if isinstance(self.inputs, ImageMaskInput) else None
        if inp is not None and inp.n_itp_features != self.n_regions:
            raise ValueError(
                f"The ImageMaskInput has {inp.n_itp_features} regions but the attribution "
                f"{self.n_regions}; some regions vanished when resized to the model's grid."
            )
        return LLMAttributionResult(
            input_tokens=[f"region {r}" for r in range(self.n_regions)],
            output_tokens=list(self.target_tokens),
            seq_attr=self.region_attribution.clone(),
            token_attr=self.token_attribution.clone(),
            output_probs=self.trajectories[:, -1].clone(),
            inp=inp,
        )

    def show(self, sample: PreparedSample, *, show: bool = False, **kwargs: Any) -> Any:
        r"""One-figure summary (image, overlay, token influence, insertion curve).

        Returns ``(fig, axes)`` from :func:`captum_eagle.viz.plot_explanation`; ``show=True``
        also displays it.
        """
        from captum_eagle.viz import plot_explanation

        return plot_explanation(self, sample, show=show, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (tensors as lists)."""
        data = {k: v for k, v in asdict(self).items() if k != "inputs"}
        return json.loads(json.dumps(data, default=_jsonable))

    def save(self, path: str | Path) -> None:
        """Save to a ``.json`` file (lossless for the numbers, float32 precision)."""
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> EagleResult:
        """Load a result written by :meth:`save`."""
        data = json.loads(Path(path).read_text())
        tensors = {}
        for key, value in data.items():
            if key in ("target_tokens", "answer", "search", "forwards", "seconds"):
                tensors[key] = value
            elif isinstance(value, dict):
                tensors[key] = {k: torch.tensor(v) for k, v in value.items()}
            else:
                dtype = torch.long if key in ("order", "feature_mask") else torch.float32
                tensors[key] = torch.tensor(value, dtype=dtype)
        return cls(**tensors)


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    raise TypeError(f"Cannot serialise {type(value).__name__}")


def saliency_from_gains(order: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    r"""The paper's saliency walk, per region id, min-max normalised to ``[0, 1]``.

    ``A_1 = 0``, ``A_i = A_{i−1} − |gain_i|`` for ``i > 1``; region ``π_i`` gets ``A_i``. Earlier
    regions score higher and big gains open big gaps.

    Examples::

        >>> import torch
        >>> saliency_from_gains(torch.tensor([2, 0, 1]), torch.tensor([0.9, 0.3, -0.1]))
        tensor([0.2500, 0.0000, 1.0000])
    """
    steps = gains.abs().clone()
    steps[0] = 0.0
    walk = -torch.cumsum(steps, dim=0)
    span = walk.max() - walk.min()
    normalised = (walk - walk.min()) / span if span > 0 else torch.ones_like(walk)
    values = torch.empty_like(normalised)
    values[order] = normalised
    return values


class EagleAttribution(PerturbationAttribution):
    r"""Eagle: greedy region ordering by insight + necessity, as a Captum attribution method.

    Regions (superpixels) are ordered greedily by the objective
    ``F(S) = w_i · mean_t p_t(S) + w_n · mean_t (1 − p_t(V \ S))`` under teacher forcing of the
    answer; the order and the marginal gains become a saliency map shaped like the input.
    The full explanation (order, gains, per-token trajectories and influence, forwards, time) is
    kept in :attr:`last_result` and returned by :meth:`explain`.

    Args:
        forward_func (MLLMForwardWrapper): the wrapped model (the same object Captum's methods
            take as ``forward_func``).

    Examples::

        >>> from captum_eagle import EagleAttribution, FeatureMask, MLLMForwardWrapper
        >>> from captum_eagle.testing import tiny_model
        >>> from PIL import Image
        >>> wrapper = MLLMForwardWrapper(*tiny_model("llava"))
        >>> sample = wrapper.prepare(Image.new("RGB", (32, 32), "red"), "describe", "a red cat")
        >>> mask = FeatureMask.grid(sample.image, 2, 2)
        >>> eagle = EagleAttribution(wrapper)
        >>> attribution = eagle.attribute(
        ...     sample.image, feature_mask=mask.mask, additional_forward_args=(sample,)
        ... )
        >>> attribution.shape, eagle.last_result.forwards
        (torch.Size([1, 3, 32, 32]), 22)
    """

    def __init__(self, forward_func: MLLMForwardWrapper) -> None:
        if not isinstance(forward_func, MLLMForwardWrapper):
            raise TypeError(
                "EagleAttribution needs an MLLMForwardWrapper (it reads per-token probabilities); "
                f"got {type(forward_func).__name__}."
            )
        super().__init__(forward_func)
        self.last_result: EagleResult | None = None

    @log_usage(part_of_slo=True)
    def attribute(
        self,
        inputs: torch.Tensor | ImageMaskInput,
        baselines: float | torch.Tensor = 0.0,
        target: TargetSelection = None,
        additional_forward_args: tuple[PreparedSample] | PreparedSample | None = None,
        feature_mask: FeatureMask | torch.Tensor | None = None,
        search: str | SearchStrategy = "exact",
        insight_weight: float = 1.0,
        necessity_weight: float = 1.0,
        batch_size: int | str | None = None,
        show_progress: bool = False,
    ) -> torch.Tensor:
        r"""Attribute the sample's target tokens to image regions.

        Args:
            inputs (Tensor or ImageMaskInput): the prepared image ``sample.image``
                ``(1, 3, H, W)``, or a Captum ``ImageMaskInput`` whose mask gives the regions.
            baselines (float or Tensor): value of removed pixels in ``[0, 1]`` (scalar or
                ``(1, 3, H, W)``). Default: 0 (black, as in the paper).
            target: which answer tokens to explain: ``None`` (the sample's targets), a word,
                an index, a ``slice`` or a list of indices.
            additional_forward_args: ``(sample,)`` from :meth:`MLLMForwardWrapper.prepare`.
            feature_mask (FeatureMask or Tensor): regions ``(1, 1, H, W)`` with ids ``0..N-1``;
                optional only for an ``ImageMaskInput``.
            search (str or SearchStrategy): ``"exact"`` (default), ``"lazy"``, ``"stochastic"``,
                ``"bidirectional"``, ``"early_stop"``, ``"efficient"`` (see
                :func:`captum_eagle.search.list_searches`), or an instance with options, e.g.
                ``StochasticGreedy(fraction=0.3, seed=0)``.
            insight_weight (float): weight of the insight term (0 for necessity only).
            necessity_weight (float): weight of the necessity term (0 for insight only).
            batch_size (int or "auto", optional): images per forward; "auto" measures the
                largest batch that fits (halving on out-of-memory). Default: the wrapper's. The
                result does not depend on it.
            show_progress (bool): show a tqdm progress bar. Default: False.

        Returns:
            Tensor shaped like the image ``(1, 3, H, W)``: each pixel holds its region's saliency.
        """
        result = self.explain(
            inputs,
            baselines=baselines,
            target=target,
            additional_forward_args=additional_forward_args,
            feature_mask=feature_mask,
            search=search,
            insight_weight=insight_weight,
            necessity_weight=necessity_weight,
            batch_size=batch_size,
            show_progress=show_progress,
        )
        sample_image = _sample_from(additional_forward_args).image
        return result.attribution_map().to(sample_image.dtype).expand_as(sample_image).clone()

    def explain(
        self,
        inputs: torch.Tensor | ImageMaskInput,
        baselines: float | torch.Tensor = 0.0,
        target: TargetSelection = None,
        additional_forward_args: tuple[PreparedSample] | PreparedSample | None = None,
        feature_mask: FeatureMask | torch.Tensor | None = None,
        search: str | SearchStrategy = "exact",
        insight_weight: float = 1.0,
        necessity_weight: float = 1.0,
        batch_size: int | str | None = None,
        show_progress: bool = False,
    ) -> EagleResult:
        r"""Same arguments as :meth:`attribute`; returns the full :class:`EagleResult`."""
        started = time.perf_counter()
        wrapper: MLLMForwardWrapper = self.forward_func
        sample = _sample_from(additional_forward_args)
        if target is not None:
            sample = sample.with_targets(target)
        image = _check_inputs(inputs, sample)
        if feature_mask is None:
            if not isinstance(inputs, ImageMaskInput):
                raise ValueError("feature_mask is required; build one with FeatureMask.slico.")
            feature_mask = FeatureMask.from_image_mask_input(inputs, wrapper)
        mask = as_feature_mask(feature_mask, image)
        strategy = get_search(search)
        scorer = SubsetScorer(
            wrapper,
            sample,
            mask,
            baseline=baselines,
            insight_weight=insight_weight,
            necessity_weight=necessity_weight,
            batch_size=batch_size,
        )
        order = run_search(strategy, scorer, show_progress=show_progress)
        result = _summarise(scorer, torch.tensor(order), strategy.name, sample)
        result.seconds = time.perf_counter() - started
        result.inputs = inputs if isinstance(inputs, ImageMaskInput) else None
        self.last_result = result
        return result


def _sample_from(additional_forward_args: Any) -> PreparedSample:
    args = additional_forward_args
    if isinstance(args, tuple | list) and len(args) == 1:
        args = args[0]
    if not isinstance(args, PreparedSample):
        raise ValueError(
            "Pass the prepared sample as additional_forward_args=(sample,), with "
            "sample = wrapper.prepare(image, prompt)."
        )
    return args


def _check_inputs(inputs: torch.Tensor | ImageMaskInput, sample: PreparedSample) -> torch.Tensor:
    if isinstance(inputs, ImageMaskInput):
        return sample.image
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(
            f"inputs must be a tensor or an ImageMaskInput; got {type(inputs).__name__}."
        )
    if inputs.shape != sample.image.shape:
        raise ValueError(
            f"inputs {tuple(inputs.shape)} must be the prepared image {tuple(sample.image.shape)}."
        )
    if not torch.isfinite(inputs).all():
        raise ValueError("inputs contain NaN or infinite values.")
    if not torch.equal(inputs.detach().cpu().float(), sample.image):
        raise ValueError(
            "inputs differ from sample.image: Eagle perturbs the prepared image; pass "
            "sample.image (prepare the sample from the image you want explained)."
        )
    return sample.image


def _summarise(
    scorer: SubsetScorer, order: torch.Tensor, search: str, sample: PreparedSample
) -> EagleResult:
    n_regions = scorer.n_regions
    prefixes = torch.zeros(n_regions + 1, n_regions, dtype=torch.bool)
    for r in range(1, n_regions + 1):
        prefixes[r, order[:r]] = True
    # The trajectories need both images even when the objective weighs one term only.
    scores = scorer.score(prefixes, terms=(True, False))
    kept, removed = scores.kept, scores.removed
    token_objective = scorer.token_objective(scores)
    objective = token_objective.mean(dim=1)
    gains = objective[1:] - objective[:-1]
    token_gains = (token_objective[1:] - token_objective[:-1]).T
    token_attribution = torch.empty_like(token_gains)
    token_attribution[:, order] = token_gains
    trajectories = kept.T.contiguous()
    return EagleResult(
        order=order,
        objective=objective,
        gains=gains,
        insight=kept.mean(dim=1),
        necessity=(1 - removed).mean(dim=1),
        trajectories=trajectories,
        removal_trajectories=removed.T.contiguous(),
        region_attribution=saliency_from_gains(order, gains),
        token_attribution=token_attribution,
        influence={v: token_influence(trajectories[:, 1:], v) for v in INFLUENCE_VARIANTS},
        influence_area={v: influence_area(trajectories[:, 1:], v) for v in INFLUENCE_VARIANTS},
        target_tokens=sample.target_tokens,
        answer=sample.answer,
        search=search,
        forwards=scorer.forwards,
        seconds=0.0,
        feature_mask=scorer.feature_mask.mask.clone(),
    )
