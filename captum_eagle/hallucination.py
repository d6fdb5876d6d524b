r"""Hallucination: explain why a model gave a wrong yes/no answer, and remove the fewest regions
that fix it.

The model answered a yes/no question wrongly (e.g. "yes" to an object that is not in the image).

1. :func:`prepare_case` fixes the question, the model's answer and the correct answer, and prepares
   a sample whose target is the first token of the *counterfactual* (correct) answer word, spelled
   the way the model spelled its own answer ("Yes" → "No", " yes." → "no").
2. :func:`explain_hallucination` attributes that token with :class:`EagleAttribution`. Regions early
   in the Eagle order ``π`` support the correct answer; regions at the end add nothing or push
   towards the wrong answer: they form the *hallucination map*.
3. :func:`mitigate` removes regions from the hallucination-prone end one at a time (cumulatively,
   set to the baseline), regenerates the answer after each removal in batches, and stops at the
   first correct answer. It accepts any attribution map (Captum baselines), so methods can be
   compared.
4. :func:`captum_eagle.metrics.amcr` and :func:`captum_eagle.metrics.csr` summarise many cases
   (they moved to :mod:`captum_eagle.metrics`; importing them from here still works for one
   release, with a ``DeprecationWarning``).

Answers are compared as text, never by vocabulary id: the first word of the decoded answer,
lower-cased, without surrounding spaces or punctuation (``" Yes."``, ``"YES"`` and ``"yes,"`` are
all "yes").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from captum_eagle._deprecation import renamed_keywords, warn_deprecated
from captum_eagle.attribution import EagleAttribution, EagleResult
from captum_eagle.checks import check_int
from captum_eagle.images import ImageLike
from captum_eagle.maps import baseline_image, region_means, region_order
from captum_eagle.masks import FeatureMask, as_feature_mask
from captum_eagle.wrapper import MLLMForwardWrapper, PreparedSample

__all__ = [
    "HallucinationCase",
    "HallucinationResult",
    "answer_word",
    "explain_hallucination",
    "mitigate",
    "prepare_case",
]

YES_NO = ("yes", "no")
Rule = Literal["order", "gain"]
RULES = ("order", "gain")
"""How :func:`explain_hallucination` reads the Eagle explanation (see its ``rule``)."""
HallucinationEnd = Literal["low", "high"]

_FIRST_WORD = re.compile(r"\w+")


def answer_word(text: str) -> str | None:
    r"""The yes/no word an answer starts with, or ``None`` if it starts with another word.

    Case, leading spaces and punctuation are ignored; only the first word counts.

    Args:
        text (str): a decoded answer, e.g. ``" Yes."`` or ``"no, there is not"``.

    Returns:
        ``"yes"``, ``"no"`` or ``None``.

    Examples::

        >>> answer_word(" Yes."), answer_word("NO, it is not"), answer_word("maybe")
        ('yes', 'no', None)
    """
    match = _FIRST_WORD.search(text or "")
    if match is None:
        return None
    word = match.group().lower()
    return word if word in YES_NO else None


def _yes_no(text: str, what: str) -> str:
    word = answer_word(text)
    if word is None:
        raise ValueError(
            f"The {what} {text!r} is not a yes/no answer (its first word must be 'yes' or 'no', "
            "in any case). Ask a yes/no question, or pass the answer as 'yes' or 'no'."
        )
    return word


def _counterfactual_text(answer: str, correct: str) -> str:
    """The correct word spelled like the answer's yes/no word (same case style)."""
    match = _FIRST_WORD.search(answer)
    assert match is not None, "the answer was checked to be a yes/no answer"
    spoken = match.group()
    if spoken.isupper() and len(spoken) > 1:
        return correct.upper()
    if spoken[:1].isupper():
        return correct.capitalize()
    return correct


@dataclass(frozen=True)
class HallucinationCase:
    r"""A yes/no question the model answered wrongly, ready to explain and mitigate.

    Attributes:
        question (str): the question (prompt).
        answer (str): the model's answer as text (e.g. ``"yes"``).
        wrong (str): its yes/no word, lower case.
        correct (str): the correct yes/no word, lower case.
        sample (PreparedSample): ``sample.image`` is the image at the model's resolution; the
            answer is the correct word spelled like the model's (``"No"`` for ``"Yes"``) and the
            target is its first token — the counterfactual token Eagle explains and whose
            teacher-forced probability the mitigation curve tracks.
    """

    question: str
    answer: str
    wrong: str
    correct: str
    sample: PreparedSample

    @property
    def image(self) -> torch.Tensor:
        """The prepared image ``(1, 3, H, W)``."""
        return self.sample.image


def prepare_case(
    wrapper: MLLMForwardWrapper,
    image: ImageLike,
    question: str,
    *,
    answer: str | None = None,
    correct: str | None = None,
    max_new_tokens: int = 8,
) -> HallucinationCase:
    r"""Fix the question, the model's wrong answer and the counterfactual target.

    Args:
        wrapper (MLLMForwardWrapper): the model.
        image: the image (PIL, ``(H, W, 3)`` uint8 array or ``(3, H, W)`` float tensor).
        question (str): a yes/no question (the prompt, without the image placeholder).
        answer (str, optional): the model's answer. Default: generated greedily on ``image``.
        correct (str, optional): the true answer, ``"yes"`` or ``"no"`` (any case or
            punctuation). Default: the opposite of ``answer`` (you state that it is wrong).
        max_new_tokens (int): generation length when ``answer`` is generated. Default: 8.

    Returns:
        HallucinationCase

    Raises:
        ValueError: if the answer (or ``correct``) is not a yes/no answer, or if the model's
            answer is already correct (nothing to mitigate).

    Examples::

        >>> from PIL import Image
        >>> from captum_eagle import MLLMForwardWrapper
        >>> from captum_eagle.hallucination import prepare_case
        >>> from captum_eagle.testing import tiny_model
        >>> wrapper = MLLMForwardWrapper(*tiny_model("llava"))
        >>> image = Image.new("RGB", (32, 32))
        >>> case = prepare_case(wrapper, image, "is there a cat ?", answer="Yes.")
        >>> case.wrong, case.correct, case.sample.target_tokens  # "No" is not in its vocabulary
        ('yes', 'no', ['no'])
    """
    if answer is None:
        answer = wrapper.prepare(image, question, max_new_tokens=max_new_tokens).answer
    wrong = _yes_no(answer, "model's answer")
    if correct is None:
        correct = YES_NO[1 - YES_NO.index(wrong)]
    else:
        correct = _yes_no(correct, "correct answer")
    if correct == wrong:
        raise ValueError(
            f"The model answered {answer!r}, which is correct ({correct!r}): there is no "
            "hallucination to explain or mitigate. Pick a case the model gets wrong."
        )
    try:
        sample = wrapper.prepare(
            image, question, _counterfactual_text(answer, correct), target_tokens=0
        )
    except ValueError:  # the model's spelling (e.g. "NO") is not in the vocabulary
        sample = wrapper.prepare(image, question, correct, target_tokens=0)
    first = sample.target_tokens[0].strip().lower()
    if not first or not correct.startswith(re.sub(r"\W", "", first)):
        raise ValueError(
            f"The tokenizer splits {correct!r} as {sample.answer_tokens}; its first token "
            f"{sample.target_tokens[0]!r} does not start the word. Use a model whose tokenizer "
            "spells yes/no as a word-initial token."
        )
    return HallucinationCase(question, answer, wrong, correct, sample)


# -- orders and maps -------------------------------------------------------------------------------
def _removal_order(
    attribution: Any, mask: FeatureMask | torch.Tensor, hallucination_end: HallucinationEnd
) -> tuple[torch.Tensor, torch.Tensor]:
    """Regions hallucination-prone first (ties by id) and their scores in ``[0, 1]``."""
    if hallucination_end not in ("low", "high"):
        raise ValueError(f"hallucination_end must be 'low' or 'high'; got {hallucination_end!r}.")
    means = region_means(attribution, mask)
    order = region_order(attribution, mask, descending=hallucination_end == "high")
    return order, _unit(-means if hallucination_end == "low" else means).float()


def region_order_from_map(
    attribution: Any,
    feature_mask: FeatureMask | torch.Tensor,
    hallucination_end: HallucinationEnd = "low",
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Deprecated: order regions for removal by their mean attribution, hallucination-prone
    first.

    Use :func:`captum_eagle.maps.region_order` (``descending=False`` for a map of the correct
    answer, ``True`` for a map of the wrong answer) and :func:`captum_eagle.maps.region_means`;
    :func:`mitigate` accepts the map itself (``attribution=``). This alias warns and will be
    removed in the next release.

    Returns:
        ``(order, region_map)``: ``order`` ``(N,)`` region ids to remove first-to-last (ties by
        region id); ``region_map`` ``(N,)`` hallucination scores in ``[0, 1]``, high = removed
        early.
    """
    warn_deprecated(
        "region_order_from_map",
        "captum_eagle.maps.region_order (and region_means), or pass attribution= to mitigate",
    )
    return _removal_order(attribution, feature_mask, hallucination_end)


def _unit(values: torch.Tensor) -> torch.Tensor:
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else torch.zeros_like(values)


def _eagle_order(result: EagleResult, rule: Rule) -> tuple[torch.Tensor, torch.Tensor]:
    """Removal order and per-region hallucination scores from an Eagle explanation."""
    if rule == "order":
        order = result.order.flip(0)
        return order, (1.0 - result.region_attribution).float()
    if rule == "gain":
        gains = torch.empty_like(result.gains)
        gains[result.order] = result.gains
        reverse = result.order.flip(0)
        order = reverse[torch.sort(gains[reverse], stable=True).indices]
        return order, _unit(-gains).float()
    raise ValueError(
        f"rule must be 'order' (end of the Eagle order first) or 'gain'; got {rule!r}."
    )


# -- the result ------------------------------------------------------------------------------------
@dataclass
class HallucinationResult:
    r"""One mitigation run: which regions were removed, and when the answer turned correct.

    Attributes:
        question (str): the question.
        answer (str): the model's (wrong) answer on the full image.
        wrong (str), correct (str): the yes/no words.
        method (str): what ordered the regions (``"eagle"``, ``"eagle-gain"``, a Captum method...).
        removal_order (Tensor): ``(N,)`` all region ids, hallucination-prone first.
        flip_point (int or None): regions removed when the answer first turned correct (at most
            ``N − 1``), or ``None`` if it never did.
        probabilities (Tensor): ``(N + 1,)`` teacher-forced probability of the correct answer's
            first token after removing ``0..N`` regions (index 0: the full image).
        answers (list[str]): regenerated answers after removing ``0, 1, ...`` regions (index 0:
            the model's answer), up to the last generated batch (at most ``N − 1`` removed).
        hallucination_map (Tensor): ``(1, 1, H, W)``, high = hallucination-prone.
        feature_mask (Tensor): ``(1, 1, H, W)`` region ids.
        image (Tensor): ``(1, 3, H, W)`` the prepared image.
        explanation (EagleResult or None): the Eagle explanation, when Eagle ordered the regions.
    """

    question: str
    answer: str
    wrong: str
    correct: str
    method: str
    removal_order: torch.Tensor
    flip_point: int | None
    probabilities: torch.Tensor
    answers: list[str]
    hallucination_map: torch.Tensor
    feature_mask: torch.Tensor
    image: torch.Tensor
    explanation: EagleResult | None = field(default=None, repr=False)

    @property
    def n_regions(self) -> int:
        return int(self.removal_order.numel())

    @property
    def corrected(self) -> bool:
        """Whether removing at most ``N − 1`` regions turned the answer correct.

        A flip that only the fully blank image (all ``N`` regions removed) would bring does not
        count: an answer about an empty image explains nothing (the authors try ``0 … N − 1``).
        """
        return self.flip_point is not None and self.flip_point < self.n_regions

    @property
    def removed_regions(self) -> list[int]:
        """Region ids removed up to the flip (all regions if the answer never flipped)."""
        stop = self.flip_point if self.corrected else self.n_regions
        return self.removal_order[:stop].tolist()

    @property
    def fraction_removed(self) -> float:
        """Fraction of the regions removed at the flip; 1.0 if never corrected."""
        if self.flip_point is None or not self.corrected:
            return 1.0
        return self.flip_point / self.n_regions

    @property
    def area_removed(self) -> float:
        """Fraction of the image area removed at the flip (AMCR's unit); 1.0 if never
        corrected."""
        if not self.corrected:
            return 1.0
        areas = torch.bincount(self.feature_mask.flatten(), minlength=self.n_regions)
        return float(areas[self.removal_order[: self.flip_point]].sum() / areas.sum())

    def removed_mask(self) -> torch.Tensor:
        """``(H, W)`` boolean mask of the pixels removed up to the flip."""
        labels = self.feature_mask[0, 0]
        return torch.isin(labels, torch.tensor(self.removed_regions, dtype=labels.dtype))

    def plot(self, *, show: bool = False, **kwargs: Any) -> Any:
        r"""The hallucination figure (:func:`captum_eagle.viz.plot_hallucination`).

        Returns:
            ``(fig, axes)``.
        """
        from captum_eagle.viz import plot_hallucination

        return plot_hallucination(
            self.image,
            self.hallucination_map,
            self.removed_mask(),
            self.probabilities,
            self.flip_point if self.corrected else None,
            question=self.question,
            answers=(self.wrong, self.correct),
            feature_mask=self.feature_mask,
            show=show,
            **kwargs,
        )


# -- mitigation ------------------------------------------------------------------------------------
def _check_mitigation(
    wrapper: Any,
    case: Any,
    generate_batch_size: object,
    max_new_tokens: object,
    explanation: object,
) -> None:
    """Raise before any forward unless the mitigation's inputs are usable."""
    if not all(
        callable(getattr(wrapper, name, None)) for name in ("token_probabilities", "generate")
    ):
        raise TypeError(f"wrapper must be an MLLMForwardWrapper; got {type(wrapper).__name__}.")
    if not isinstance(case, HallucinationCase):
        raise TypeError(
            f"case must be a HallucinationCase from prepare_case(wrapper, image, question); got "
            f"{type(case).__name__}."
        )
    if generate_batch_size is not None:
        check_int("generate_batch_size", generate_batch_size, least=1)
    check_int("max_new_tokens", max_new_tokens, least=1)
    if explanation is not None and not isinstance(explanation, EagleResult):
        raise TypeError(
            f"explanation must be an EagleResult or None; got {type(explanation).__name__}."
        )


def _removal_images(
    image: torch.Tensor, mask: FeatureMask, order: torch.Tensor, baselines: float | torch.Tensor
) -> torch.Tensor:
    """``(N + 1, 3, H, W)``: image ``k`` has the first ``k`` regions of ``order`` removed."""
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    pixel_rank = rank[mask.mask]
    steps = torch.arange(order.numel() + 1).view(-1, 1, 1, 1)
    return torch.where(pixel_rank < steps, baseline_image(baselines, image), image)


@renamed_keywords(baseline="baselines")
def mitigate(
    wrapper: MLLMForwardWrapper,
    case: HallucinationCase,
    feature_mask: FeatureMask | torch.Tensor,
    *,
    removal_order: torch.Tensor | Sequence[int] | None = None,
    attribution: Any = None,
    hallucination_end: HallucinationEnd = "low",
    hallucination_map: torch.Tensor | None = None,
    baselines: float | torch.Tensor = 0.0,
    generate_batch_size: int | None = None,
    max_new_tokens: int = 4,
    method: str = "custom",
    explanation: EagleResult | None = None,
) -> HallucinationResult:
    r"""Remove regions hallucination-prone first until the regenerated answer is correct.

    Builds all ``N`` cumulative-removal images (region ``k`` of the order is set to the baseline
    together with all before it), regenerates the answer after removing ``1 … N − 1`` regions in
    batches of ``generate_batch_size`` and stops after the first batch that contains a correct
    answer (no later batch is generated); the flip point is the first correct one. The fully
    blank image (all ``N`` removed) is not tried: as in the authors' protocol, an answer that
    only an empty image corrects is not a correction. The teacher-forced
    probability of the correct first token is computed for all ``N + 1`` images in batched
    forwards (``wrapper.batch_size`` per forward).

    Give either ``removal_order`` or ``attribution`` (any map, e.g. from a Captum method; regions
    are ordered by their mean value, see :func:`captum_eagle.maps.region_order`).

    Args:
        wrapper (MLLMForwardWrapper): the model.
        case (HallucinationCase): from :func:`prepare_case`.
        feature_mask (FeatureMask or Tensor): the regions ``(1, 1, H, W)`` of ``case.image``.
        removal_order (Tensor or list, optional): all region ids, first-removed first.
        attribution (Tensor, optional): a map of ``case.image`` to order the regions by.
        hallucination_end (str): for ``attribution``: ``"low"`` (default; the map explains the
            correct answer, so its lowest regions are hallucination-prone) or ``"high"`` (the map
            explains the wrong answer).
        hallucination_map (Tensor, optional): ``(N,)`` per-region hallucination scores to store
            with ``removal_order``. Default: from the order (first removed = 1, last = 0).
        baselines (float or Tensor): value of removed pixels, in ``[0, 1]``. Default: 0 (black).
            The old keyword ``baseline=`` still works for one release (``DeprecationWarning``).
        generate_batch_size (int, optional): removal images per generation batch; smaller
            batches waste less work after an early flip. Default: ``wrapper.batch_size``.
        max_new_tokens (int): generation length; only the first word is read. Default: 4.
        method (str): a name stored in the result. Default: ``"custom"``.
        explanation (EagleResult, optional): stored in the result.

    Returns:
        HallucinationResult

    Examples::

        >>> import torch
        >>> from PIL import Image
        >>> from captum_eagle import FeatureMask, MLLMForwardWrapper
        >>> from captum_eagle.hallucination import mitigate, prepare_case
        >>> from captum_eagle.testing import tiny_model
        >>> wrapper = MLLMForwardWrapper(*tiny_model("llava"))
        >>> image = Image.new("RGB", (32, 32))
        >>> case = prepare_case(wrapper, image, "is there a cat ?", answer="yes")
        >>> mask = FeatureMask.grid(case.image, 2, 2)
        >>> result = mitigate(wrapper, case, mask, attribution=torch.rand(32, 32))
        >>> result.probabilities.shape, len(result.removal_order)
        (torch.Size([5]), 4)
    """
    _check_mitigation(wrapper, case, generate_batch_size, max_new_tokens, explanation)
    if not isinstance(method, str):
        raise TypeError(
            f"method must be a str (a name for the result); got {type(method).__name__}."
        )
    image = case.image
    mask = as_feature_mask(feature_mask, image)
    n_regions = mask.n_regions
    if (removal_order is None) == (attribution is None):
        raise ValueError("Pass exactly one of removal_order= (region ids) or attribution= (a map).")
    if attribution is not None:
        order, region_map = _removal_order(attribution, mask, hallucination_end)
    else:
        order = torch.as_tensor(removal_order)
        if order.is_floating_point() or order.is_complex() or order.dtype == torch.bool:
            raise TypeError(f"removal_order must hold integer region ids; got {order.dtype}.")
        order = order.long().flatten().cpu()
        if sorted(order.tolist()) != list(range(n_regions)):
            raise ValueError(
                f"removal_order must list every region id 0..{n_regions - 1} exactly once; got "
                f"{order.tolist()}."
            )
        if hallucination_map is None:
            region_map = torch.empty(n_regions)
            region_map[order] = torch.linspace(1.0, 0.0, n_regions)
        else:
            region_map = torch.as_tensor(hallucination_map).float().flatten().cpu()
            if region_map.numel() != n_regions:
                raise ValueError(
                    f"hallucination_map must hold one value per region ({n_regions}); got "
                    f"{region_map.numel()}."
                )
            if not torch.isfinite(region_map).all():
                raise ValueError("hallucination_map contains NaN or infinite values.")
    batch = wrapper.batch_size if generate_batch_size is None else generate_batch_size
    images = _removal_images(image, mask, order, baselines)
    with torch.no_grad():
        probabilities = wrapper.token_probabilities(images, case.sample)[:, 0].float().cpu()
    answers = [case.answer]
    flip_point = None
    # Removals 1 .. N - 1 only: a flip on the fully blank image does not count as a correction.
    for start in range(1, n_regions, batch):
        texts = wrapper.generate(
            images[start : min(start + batch, n_regions)],
            case.sample,
            max_new_tokens=max_new_tokens,
        )
        answers.extend(texts)
        hits = [i for i, text in enumerate(texts) if answer_word(text) == case.correct]
        if hits:
            flip_point = start + hits[0]
            break
    return HallucinationResult(
        question=case.question,
        answer=case.answer,
        wrong=case.wrong,
        correct=case.correct,
        method=method,
        removal_order=order,
        flip_point=flip_point,
        probabilities=probabilities,
        answers=answers,
        hallucination_map=region_map[mask.mask].float(),
        feature_mask=mask.mask.clone(),
        image=image,
        explanation=explanation,
    )


@renamed_keywords(baseline="baselines")
def explain_hallucination(
    wrapper: MLLMForwardWrapper,
    case: HallucinationCase,
    feature_mask: FeatureMask | torch.Tensor | None = None,
    *,
    n_segments: int = 32,
    rule: Rule = "order",
    search: str = "exact",
    baselines: float | torch.Tensor = 0.0,
    batch_size: int | str | None = None,
    generate_batch_size: int | None = None,
    max_new_tokens: int = 4,
    explanation: EagleResult | None = None,
) -> HallucinationResult:
    r"""Explain the counterfactual answer with Eagle and mitigate from the hallucination-prone end.

    Eagle attributes the correct answer's first token (``case.sample``). The hallucination-prone
    regions are, by ``rule``:

    - ``"order"`` (default, the paper's reading): the end of the Eagle order ``π``; regions are
      removed from ``π_N`` backwards. The map is ``1 −`` Eagle's saliency.
    - ``"gain"``: the most negative marginal gains first (regions whose insertion lowered the
      objective of the correct answer most); the map is the min-max normalised negative gain.

    Args:
        wrapper (MLLMForwardWrapper): the model.
        case (HallucinationCase): from :func:`prepare_case`.
        feature_mask (FeatureMask or Tensor, optional): the regions. Default: SLICO superpixels of
            ``case.image`` with ``n_segments``.
        n_segments (int): regions requested from SLICO when no mask is given. Default: 32.
        rule (str): ``"order"`` or ``"gain"`` (see above).
        search (str): Eagle search strategy. Default: ``"exact"``.
        baselines (float or Tensor): value of removed pixels (Eagle and removal), in ``[0, 1]``.
            Default: 0. The old keyword ``baseline=`` still works for one release.
        batch_size (int or "auto", optional): images per Eagle forward. Default: the wrapper's.
        generate_batch_size (int, optional): removal images per generation batch (see
            :func:`mitigate`). Default: the wrapper's ``batch_size``.
        max_new_tokens (int): generation length of the regenerated answers. Default: 4.
        explanation (EagleResult, optional): reuse an Eagle explanation of ``case.sample`` on the
            same regions (e.g. to compare both rules without searching twice).

    Returns:
        HallucinationResult: with the Eagle explanation in ``.explanation``.

    Examples::

        >>> from PIL import Image
        >>> from captum_eagle import FeatureMask, MLLMForwardWrapper
        >>> from captum_eagle.hallucination import explain_hallucination, prepare_case
        >>> from captum_eagle.testing import tiny_model
        >>> wrapper = MLLMForwardWrapper(*tiny_model("llava"))
        >>> image = Image.new("RGB", (32, 32))
        >>> case = prepare_case(wrapper, image, "is there a cat ?", answer="yes")
        >>> result = explain_hallucination(wrapper, case, FeatureMask.grid(case.image, 2, 2))
        >>> result.method, result.hallucination_map.shape
        ('eagle', torch.Size([1, 1, 32, 32]))
    """
    _check_mitigation(wrapper, case, generate_batch_size, max_new_tokens, explanation)
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}; got {rule!r}.")
    if explanation is not None and list(explanation.target_tokens) != case.sample.target_tokens:
        raise ValueError(
            f"The given explanation explains {list(explanation.target_tokens)} but the case's "
            f"counterfactual target is {case.sample.target_tokens}; explain case.sample."
        )
    if feature_mask is None:
        mask = FeatureMask.slico(case.image, n_segments=n_segments)
    else:
        mask = as_feature_mask(feature_mask, case.image)
    if explanation is None:
        explanation = EagleAttribution(wrapper).explain(
            case.image,
            baselines=baselines,
            additional_forward_args=(case.sample,),
            feature_mask=mask,
            search=search,
            batch_size=batch_size,
        )
    elif not torch.equal(explanation.feature_mask, mask.mask):
        raise ValueError("The given explanation was computed on other regions; pass its mask.")
    order, region_map = _eagle_order(explanation, rule)
    return mitigate(
        wrapper,
        case,
        mask,
        removal_order=order,
        hallucination_map=region_map,
        baselines=baselines,
        generate_batch_size=generate_batch_size,
        max_new_tokens=max_new_tokens,
        method="eagle" if rule == "order" else "eagle-gain",
        explanation=explanation,
    )


_MOVED_TO_METRICS = ("amcr", "csr")


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_METRICS:
        warn_deprecated(f"captum_eagle.hallucination.{name}", f"captum_eagle.metrics.{name}")
        from captum_eagle import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
