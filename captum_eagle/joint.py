r"""Joint attribution over image regions and prompt words, in one Eagle search.

Captum's ``LLMAttribution`` explains either text features or image features. Eagle's subset
search does not care what a feature is, so :func:`explain_joint` orders both at once: feature ids
``0..N_img−1`` are the image regions of ``feature_mask`` and ``N_img..N_img+N_txt−1`` the prompt
features of :mod:`captum_eagle.text_features`, in prompt order. For a subset ``S``, insight keeps
only ``S`` visible (regions outside ``S`` become ``baselines``, words outside ``S`` the
``text_baseline`` token) and necessity removes ``S``; the objective and every search strategy are
the image-only ones. A subset changes the image and the prompt ids of the same row of a batch, so
every greedy step still runs in batched forwards.

:class:`JointForward` is the same features as a Captum forward function (a binary vector per
row), so FeatureAblation, KernelShap, Lime and ShapleyValueSampling explain the same features.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from captum.attr import ImageMaskInput, LLMAttributionResult
from torch import nn

from captum_eagle.attribution import EagleResult, SavedFields, summarise_search
from captum_eagle.masks import FeatureMask, as_feature_mask
from captum_eagle.objective import SubsetScorer
from captum_eagle.reliance import modality_reliance
from captum_eagle.search import SearchStrategy, get_search, search_state
from captum_eagle.text_features import (
    DEFAULT_TEXT_BASELINE,
    TextFeature,
    TextFeatureSpec,
    feature_positions,
    masked_prompt_ids,
    prompt_features,
    text_baseline_id,
)
from captum_eagle.wrapper import MLLMForwardWrapper, PreparedSample, TargetSelection


class JointScorer(SubsetScorer):
    r"""The Eagle objective on subsets of image regions and prompt features together.

    Subsets are ``(K, N_img + N_txt)`` bool: the first ``N_img`` columns are regions of
    ``feature_mask``, the rest the prompt features. Scores, cache, forward count and objective
    are those of :class:`~captum_eagle.objective.SubsetScorer`.

    Args:
        wrapper (MLLMForwardWrapper): the model.
        sample (PreparedSample): prompt, answer and target tokens.
        feature_mask (FeatureMask): the image regions.
        text_features (list[TextFeature]): from
            :func:`~captum_eagle.text_features.prompt_features`.
        baselines (float or Tensor): fill value of removed pixels in ``[0, 1]``. Default: 0.
        text_baseline (str or int): token of removed prompt features (see
            :func:`~captum_eagle.text_features.text_baseline_id`). Default: ``"pad"``.
        insight_weight (float): weight of the insight term. Default: 1.
        necessity_weight (float): weight of the necessity term. Default: 1.
        batch_size (int, optional): rows per model forward. Default: the wrapper's.
        image (Tensor, optional): the image to perturb. Default: ``sample.image``.

    Examples::

        >>> import torch
        >>> from PIL import Image
        >>> from captum_eagle import FeatureMask, MLLMForwardWrapper
        >>> from captum_eagle.joint import JointScorer
        >>> from captum_eagle.testing import tiny_model
        >>> from captum_eagle.text_features import prompt_features
        >>> wrapper = MLLMForwardWrapper(*tiny_model("llava"))
        >>> sample = wrapper.prepare(Image.new("RGB", (32, 32), "red"), "is there a cat?", "yes")
        >>> words = prompt_features(wrapper.tokenizer, sample)
        >>> scorer = JointScorer(wrapper, sample, FeatureMask.grid(sample.image, 2, 1), words)
        >>> scorer.n_regions, scorer.n_image_regions
        (7, 2)
        >>> scorer.score(torch.eye(7, dtype=torch.bool)).kept.shape
        torch.Size([7, 1])
    """

    def __init__(
        self,
        wrapper: MLLMForwardWrapper,
        sample: PreparedSample,
        feature_mask: FeatureMask,
        text_features: list[TextFeature],
        *,
        baselines: float | torch.Tensor = 0.0,
        text_baseline: str | int = DEFAULT_TEXT_BASELINE,
        insight_weight: float = 1.0,
        necessity_weight: float = 1.0,
        batch_size: int | str | None = None,
        image: torch.Tensor | None = None,
    ) -> None:
        if not text_features or not all(isinstance(f, TextFeature) for f in text_features):
            raise ValueError(
                "text_features must be a non-empty list of TextFeature; build it with "
                "captum_eagle.text_features.prompt_features(wrapper.tokenizer, sample)."
            )
        baseline_id = text_baseline_id(wrapper.tokenizer, text_baseline)
        super().__init__(
            wrapper,
            sample,
            feature_mask,
            baselines=baselines,
            insight_weight=insight_weight,
            necessity_weight=necessity_weight,
            batch_size=batch_size,
            image=image,
        )
        self.n_image_regions = feature_mask.n_regions
        self.text_features = list(text_features)
        self.n_regions = self.n_image_regions + len(self.text_features)
        self.text_baseline_id = baseline_id
        self._positions = feature_positions(self.text_features, sample.prompt_ids.shape[1])

    def prompt_ids(self, subsets: torch.Tensor, keep: torch.Tensor | bool) -> torch.Tensor:
        r"""Prompt ids ``(K, L)`` of each subset's kept (``keep``) or removed image.

        Args:
            subsets (Tensor): ``(K, N_img + N_txt)`` bool.
            keep (Tensor or bool): per subset, ``True`` keeps only the subset's features,
                ``False`` removes them.
        """
        inside = subsets[:, self.n_image_regions :].bool().cpu()
        keep = torch.as_tensor(keep).cpu().expand(subsets.shape[0])
        present = inside == keep[:, None]
        return masked_prompt_ids(
            self.sample.prompt_ids, self._positions, present, self.text_baseline_id
        )

    def model_inputs(
        self, subsets: torch.Tensor, keep: torch.Tensor
    ) -> tuple[Any, torch.Tensor | None]:
        r"""The masked images and prompt ids of a batch of joint subsets, in the same forward."""
        images, _ = super().model_inputs(subsets[:, : self.n_image_regions], keep)
        return images, self.prompt_ids(subsets, keep).to(self.wrapper.device)

    def feature_areas(self) -> torch.Tensor:
        r"""Region pixel counts, then one mean region area per prompt feature.

        The influence axis of a joint trajectory weighs each prompt feature like an average
        image region, so that neither modality dominates the x axis by construction.
        """
        areas = self.feature_mask.areas.double()
        text = areas.mean().expand(len(self.text_features))
        return torch.cat([areas, text])

    def image_key(self, subset: torch.Tensor, keep: bool) -> bytes:
        r"""Identifies the model input of ``subset``: its image (see the parent) and its words."""
        image = super().image_key(subset[: self.n_image_regions], keep)
        return image + (subset[self.n_image_regions :] == keep).numpy().tobytes()


@dataclass
class JointResult(SavedFields):
    r"""A joint explanation: one order over image regions and prompt features.

    Feature ids ``0..N_img−1`` are image regions, ``N_img..`` the prompt features. Saved and
    loaded like :class:`~captum_eagle.attribution.EagleResult` (``to_dict`` / ``from_dict`` /
    ``save`` / ``load``, field by field).

    Attributes:
        eagle (EagleResult): the order ``π`` over all features, gains, objective, per-token
            insertion / removal trajectories, per-token gains (``token_attribution``, ``(T, N)``
            by feature id), saliency (``region_attribution``, ``(N,)`` by feature id), forwards.
        feature_kinds (list[str]): ``"image"`` or ``"text"`` per feature id.
        text_features (list[TextFeature]): the prompt features (text, character span in the
            prompt, token positions in ``prompt_ids``), feature ids ``N_img..``.
        reliance (Tensor): ``(T,)`` per target token, the image's share of the positive
            insertion gains (:func:`captum_eagle.reliance.modality_reliance`); NaN where no
            feature raised the token.
        inputs: the Captum ``ImageMaskInput`` explained, if any (not saved).
    """

    eagle: EagleResult
    feature_kinds: list[str]
    text_features: list[TextFeature]
    reliance: torch.Tensor = field(repr=False)
    inputs: Any = field(default=None, repr=False, compare=False, metadata={"saved": False})

    @property
    def n_image_regions(self) -> int:
        return self.feature_kinds.count("image")

    @property
    def order(self) -> torch.Tensor:
        """``(N,)`` feature ids, most important first."""
        return self.eagle.order

    @property
    def feature_labels(self) -> list[str]:
        """``"region i"`` for image regions, the prompt text for prompt features."""
        return feature_labels(self.n_image_regions, self.text_features)

    @property
    def image_scores(self) -> torch.Tensor:
        """``(N_img,)`` saliency of each image region, on the joint scale ``[0, 1]``."""
        return self.eagle.region_attribution[: self.n_image_regions]

    @property
    def text_scores(self) -> torch.Tensor:
        """``(N_txt,)`` saliency of each prompt feature, on the joint scale ``[0, 1]``."""
        return self.eagle.region_attribution[self.n_image_regions :]

    @property
    def text_reliance(self) -> torch.Tensor:
        """``(T,)`` the prompt's share of the positive gains, ``1 − reliance``."""
        return 1.0 - self.reliance

    def attribution_map(self) -> torch.Tensor:
        """``(1, 1, H, W)`` the image regions' saliency per pixel."""
        return self.eagle.attribution_map()

    def to_captum(self) -> LLMAttributionResult:
        r"""As a Captum ``LLMAttributionResult`` over regions and prompt features.

        ``input_tokens`` are :attr:`feature_labels`, ``seq_attr`` the joint saliency,
        ``token_attr`` the per-token gains ``(T, N)``; ``plot_token_attr()`` draws them. If the
        explanation started from a Captum ``ImageMaskInput``
        (``EagleAttribution(wrapper).explain_joint(image_mask_input, ...)``),
        ``plot_image_heatmap()`` draws the image regions' columns on its image.
        """
        inp = self.inputs if isinstance(self.inputs, ImageMaskInput) else None
        if inp is not None and inp.n_itp_features != self.n_image_regions:
            raise ValueError(
                f"The ImageMaskInput has {inp.n_itp_features} regions but the attribution "
                f"{self.n_image_regions}; some regions vanished when resized to the model's grid."
            )
        return LLMAttributionResult(
            input_tokens=self.feature_labels,
            output_tokens=list(self.eagle.target_tokens),
            seq_attr=self.eagle.region_attribution.clone(),
            token_attr=self.eagle.token_attribution.clone(),
            output_probs=self.eagle.trajectories[:, -1].clone(),
            inp=inp,
        )

    def show(self, sample: PreparedSample, *, show: bool = False, **kwargs: Any) -> Any:
        r"""The joint figure: image heatmap, prompt words shaded by score, reliance per token.

        Returns ``(fig, axes)`` from :func:`captum_eagle.viz.plot_joint`; ``show=True`` also
        displays it.
        """
        from captum_eagle.viz import plot_joint

        return plot_joint(self, sample, show=show, **kwargs)


def explain_joint(
    wrapper: MLLMForwardWrapper,
    sample: PreparedSample,
    feature_mask: FeatureMask | torch.Tensor,
    text_features: TextFeatureSpec = "words",
    baselines: float | torch.Tensor = 0.0,
    text_baseline: str | int = DEFAULT_TEXT_BASELINE,
    target: TargetSelection = None,
    search: str | SearchStrategy = "exact",
    insight_weight: float = 1.0,
    necessity_weight: float = 1.0,
    batch_size: int | str | None = None,
    show_progress: bool = False,
    *,
    image: torch.Tensor | None = None,
) -> JointResult:
    r"""Order image regions and prompt words together by the Eagle objective.

    Args:
        wrapper (MLLMForwardWrapper): the model.
        sample (PreparedSample): from :meth:`MLLMForwardWrapper.prepare`.
        feature_mask (FeatureMask or Tensor): image regions ``(1, 1, H, W)``, ids ``0..N_img−1``.
        text_features (str or list): ``"words"`` (default: every word of ``sample.prompt``), or
            character ranges ``(start, end)`` of the prompt and/or ``range`` objects of word
            indices (see :func:`~captum_eagle.text_features.prompt_features`).
        baselines (float or Tensor): value of removed pixels in ``[0, 1]``. Default: 0 (black).
        text_baseline (str or int): token that replaces a removed prompt feature: ``"pad"``
            (default, chosen by measurement, see :mod:`captum_eagle.text_features`), ``"unk"``,
            a one-token word or a token id.
        target: which answer tokens to explain (see :meth:`PreparedSample.with_target_tokens`).
            Default: the sample's targets.
        search (str or SearchStrategy): a search strategy name or instance. Default: ``"exact"``.
        insight_weight (float): weight of the insight term. Default: 1.
        necessity_weight (float): weight of the necessity term. Default: 1.
        batch_size (int or "auto", optional): rows per forward. Default: the wrapper's.
        show_progress (bool): show a progress bar. Default: False.
        image (Tensor, optional): the image to perturb, ``(1, 3, H, W)`` at the sample's size.
            Default: ``sample.image``.

    Returns:
        JointResult

    Examples::

        >>> from PIL import Image
        >>> from captum_eagle import FeatureMask, MLLMForwardWrapper
        >>> from captum_eagle.joint import explain_joint
        >>> from captum_eagle.testing import tiny_model
        >>> wrapper = MLLMForwardWrapper(*tiny_model("llava"))
        >>> sample = wrapper.prepare(Image.new("RGB", (32, 32), "red"), "is there a cat?", "yes")
        >>> result = explain_joint(wrapper, sample, FeatureMask.grid(sample.image, 2, 1))
        >>> result.feature_labels
        ['region 0', 'region 1', 'is', 'there', 'a', 'cat', '?']
        >>> result.order.shape, result.reliance.shape
        (torch.Size([7]), torch.Size([1]))
    """
    started = time.perf_counter()
    scorer = _joint_scorer(
        wrapper,
        sample,
        feature_mask,
        text_features,
        baselines=baselines,
        text_baseline=text_baseline,
        target=target,
        insight_weight=insight_weight,
        necessity_weight=necessity_weight,
        batch_size=batch_size,
        image=image,
    )
    strategy = get_search(search)
    state = search_state(strategy, scorer, show_progress=show_progress)
    order = torch.tensor(state.order)
    eagle = summarise_search(
        scorer, order, strategy.name, map_gains=strategy.map_gains(state, scorer)
    )
    eagle.search_options = strategy.options()
    eagle.seconds = time.perf_counter() - started
    kinds = ["image"] * scorer.n_image_regions + ["text"] * len(scorer.text_features)
    is_image = torch.tensor([kind == "image" for kind in kinds])
    return JointResult(
        eagle=eagle,
        feature_kinds=kinds,
        text_features=scorer.text_features,
        reliance=modality_reliance(eagle.trajectories, order, is_image),
    )


class JointForward(nn.Module):
    r"""Image regions and prompt features as one binary input, for Captum's baselines.

    ``forward(features)`` takes ``(B, N_img + N_txt)`` values in ``{0, 1}`` (1: the feature is
    shown, 0: replaced by its baseline) and returns the mean target-token probability ``(B,)``,
    so FeatureAblation, KernelShap, Lime and ShapleyValueSampling explain the joint features with
    ``inputs=torch.ones(1, N)``, ``baselines=0`` and ``feature_mask=torch.arange(N)[None]``.
    Arguments as in :func:`explain_joint`; :attr:`scorer` is the :class:`JointScorer` it uses
    (cached and counted).

    Examples::

        >>> import torch
        >>> from captum.attr import FeatureAblation
        >>> from PIL import Image
        >>> from captum_eagle import FeatureMask, MLLMForwardWrapper
        >>> from captum_eagle.joint import JointForward
        >>> from captum_eagle.testing import tiny_model
        >>> wrapper = MLLMForwardWrapper(*tiny_model("llava"))
        >>> sample = wrapper.prepare(Image.new("RGB", (32, 32), "red"), "is there a cat?", "yes")
        >>> joint = JointForward(wrapper, sample, FeatureMask.grid(sample.image, 2, 1))
        >>> n = joint.n_features
        >>> FeatureAblation(joint).attribute(
        ...     torch.ones(1, n), baselines=0.0, feature_mask=torch.arange(n)[None]
        ... ).shape
        torch.Size([1, 7])
    """

    def __init__(
        self,
        wrapper: MLLMForwardWrapper,
        sample: PreparedSample,
        feature_mask: FeatureMask | torch.Tensor,
        text_features: TextFeatureSpec = "words",
        *,
        baselines: float | torch.Tensor = 0.0,
        text_baseline: str | int = DEFAULT_TEXT_BASELINE,
        target: TargetSelection = None,
        batch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.scorer = _joint_scorer(
            wrapper,
            sample,
            feature_mask,
            text_features,
            baselines=baselines,
            text_baseline=text_baseline,
            target=target,
            batch_size=batch_size,
        )

    @property
    def n_features(self) -> int:
        return self.scorer.n_regions

    @property
    def feature_labels(self) -> list[str]:
        return feature_labels(self.scorer.n_image_regions, self.scorer.text_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        r"""Mean target-token probability with only the features marked 1 shown, ``(B,)``."""
        if not isinstance(features, torch.Tensor) or features.ndim != 2:
            raise ValueError(
                f"features must be a (B, {self.n_features}) tensor; got "
                f"{getattr(features, 'shape', type(features).__name__)}."
            )
        if features.shape[1] != self.n_features:
            raise ValueError(
                f"features has {features.shape[1]} columns; this forward has {self.n_features} "
                f"features ({self.feature_labels})."
            )
        if not ((features == 0) | (features == 1)).all():
            raise ValueError(
                "JointForward takes binary feature vectors (1 shown, 0 removed); use it with "
                "perturbation methods and baselines=0, not gradient or interpolation methods."
            )
        kept = self.scorer.score(features.bool(), terms=(True,)).kept
        return kept.mean(dim=1).to(features.device)


def feature_labels(n_image_regions: int, text_features: list[TextFeature]) -> list[str]:
    r"""Labels of joint feature ids: ``"region i"``, then the text of each prompt feature.

    Examples::

        >>> from captum_eagle.text_features import TextFeature
        >>> feature_labels(2, [TextFeature("red", 11, 14, (21,))])
        ['region 0', 'region 1', 'red']
    """
    regions = [f"region {r}" for r in range(n_image_regions)]
    return regions + [feature.text for feature in text_features]


def _joint_scorer(
    wrapper: MLLMForwardWrapper,
    sample: PreparedSample,
    feature_mask: FeatureMask | torch.Tensor,
    text_features: TextFeatureSpec,
    *,
    target: TargetSelection,
    **options: Any,
) -> JointScorer:
    """Validate everything (no forward yet) and build the joint scorer."""
    if not isinstance(wrapper, MLLMForwardWrapper):
        raise TypeError(f"wrapper must be an MLLMForwardWrapper; got {type(wrapper).__name__}.")
    if not isinstance(sample, PreparedSample):
        raise TypeError(
            f"sample must be a PreparedSample from wrapper.prepare(...); got {type(sample)}."
        )
    if target is not None:
        sample = sample.with_target_tokens(target)
    mask = as_feature_mask(feature_mask, sample.image)
    features = prompt_features(wrapper.tokenizer, sample, text_features)
    return JointScorer(wrapper, sample, mask, features, **options)
