r"""``EagleAttribution``: Eagle as a Captum perturbation attribution method, and its result."""

from __future__ import annotations

import inspect
import json
import time
import warnings
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_args, get_origin, get_type_hints

import torch
from captum.attr import ImageMaskInput, LLMAttributionResult, PerturbationAttribution
from captum.log import log_usage

from captum_eagle.images import check_pixels, to_image_tensor
from captum_eagle.influence import INFLUENCE_VARIANTS, influence_area, token_influence
from captum_eagle.masks import FeatureMask, as_feature_mask
from captum_eagle.objective import SubsetScorer, check_batch_size
from captum_eagle.search import SearchState, SearchStrategy, get_search, search_state
from captum_eagle.wrapper import MLLMForwardWrapper, PreparedSample, TargetSelection

if TYPE_CHECKING:
    from captum_eagle.joint import JointResult
    from captum_eagle.text_features import TextFeatureSpec

Baselines = float | torch.Tensor | tuple[float | torch.Tensor] | None


_Result = TypeVar("_Result")


class SavedFields:
    r"""``to_dict`` / ``from_dict`` / ``save`` / ``load`` of a dataclass, driven by its fields.

    Saved fields are those without ``metadata={"saved": False}``; tensors are stored as nested
    lists (integers come back as ``int64``, reals as ``float32``), nested dataclasses as objects,
    by :func:`fields_to_dict` / :func:`fields_from_dict`.
    """

    def to_dict(self) -> dict[str, Any]:
        r"""JSON-ready dictionary, one key per saved field; :meth:`from_dict` inverts it."""
        return fields_to_dict(self)

    @classmethod
    def from_dict(cls: type[_Result], data: dict[str, Any]) -> _Result:
        r"""Rebuild a result from :meth:`to_dict` (fields with a default may be missing).

        Examples::

            >>> import torch
            >>> result = EagleResult(
            ...     order=torch.tensor([1, 0]), objective=torch.zeros(3), gains=torch.zeros(2),
            ...     insight=torch.zeros(3), necessity=torch.zeros(3),
            ...     trajectories=torch.zeros(1, 3), removal_trajectories=torch.zeros(1, 3),
            ...     region_attribution=torch.tensor([0.0, 1.0]),
            ...     token_attribution=torch.zeros(1, 2),
            ...     influence={}, influence_area={}, target_tokens=["cat"], answer="cat",
            ...     search="stochastic", forwards=6, seconds=0.1,
            ...     feature_mask=torch.tensor([[[[0, 1]]]]), search_options={"seed": 3},
            ... )
            >>> loaded = EagleResult.from_dict(result.to_dict())
            >>> loaded.order, loaded.search_options, loaded.region_attribution.dtype
            (tensor([1, 0]), {'seed': 3}, torch.float32)
        """
        return fields_from_dict(cls, data)

    def save(self, path: str | Path) -> None:
        """Save :meth:`to_dict` to a ``.json`` file (lossless for the numbers)."""
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls: type[_Result], path: str | Path) -> _Result:
        """Load a result written by :meth:`save`."""
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"No {cls.__name__} file at {str(path)!r}; pass the .json written by save()."
            )
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{str(path)!r} is not a JSON file written by save(): {error}"
            ) from None
        return fields_from_dict(cls, data)

    @staticmethod
    def validate_saved(values: dict[str, Any]) -> None:
        r"""Check loaded field values that must agree with each other (nothing by default)."""


@dataclass
class EagleResult(SavedFields):
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
        region_attribution (Tensor): ``(N,)`` the saliency value of each region id, in ``[0, 1]``:
            the saliency walk over ``gains`` (over the gains the search measured, for a search
            that draws its map itself, such as ``"budget"``).
        token_attribution (Tensor): ``(T, N)`` per-token marginal gain of each region id along
            ``π`` (positive: the region raised that token's objective).
        influence (dict): per-token influence normalised across the answer, by variant name.
        influence_area (dict): per-token influence as an absolute area in ``[0, 1]``.
        target_tokens (list[str]): the explained tokens.
        answer (str): the explained answer.
        search (str): the search strategy's name.
        forwards (int): model forwards (images) spent, the trajectory's included; identical
            masked images are scored once.
        seconds (float): wall time of the attribution.
        feature_mask (Tensor): ``(1, 1, H, W)`` the regions.
        search_options (dict): the strategy's settings, seed included
            (:meth:`SearchStrategy.options`); empty in files saved before it was recorded.
        inputs: the Captum ``ImageMaskInput`` explained, if any (not saved).
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
    search_options: dict[str, Any] = field(default_factory=dict)
    inputs: Any = field(default=None, repr=False, compare=False, metadata={"saved": False})

    @property
    def n_regions(self) -> int:
        return int(self.order.numel())

    @staticmethod
    def validate_saved(values: dict[str, Any]) -> None:
        r"""A loaded order, mask, saliency and tokens must describe the same regions."""
        _check_saved_regions(values)

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


def fields_to_dict(result: Any) -> dict[str, Any]:
    r"""A dataclass result as a JSON-ready dictionary, one key per saved field.

    Tensors become nested lists, nested dataclasses dictionaries (recursively), tuples lists;
    fields with ``metadata={"saved": False}`` are left out. :func:`fields_from_dict` inverts it
    from the type hints. Used by :class:`EagleResult` and :class:`~captum_eagle.joint.JointResult`.
    """
    plain: dict[str, Any] = json.loads(json.dumps(_encode(result)))
    return plain


def fields_from_dict(cls: type[_Result], data: dict[str, Any]) -> _Result:
    r"""Rebuild a dataclass result of type ``cls`` from :func:`fields_to_dict`.

    Values are converted by the field's type hint: tensors (integers as ``int64``, reals as
    ``float32``), nested dataclasses, ``list[...]``, ``tuple[..., ...]`` and ``dict[str, ...]``.
    Fields with a default may be missing (older files).

    Raises:
        ValueError: ``data`` has a key that is not a saved field, or lacks a required one.
    """
    if not isinstance(data, dict):
        raise TypeError(f"A saved {cls.__name__} is a JSON object; got {type(data).__name__}.")
    saved = _saved_fields(cls)
    unknown = sorted(set(data) - {item.name for item in saved})
    if unknown:
        raise ValueError(f"Unknown {cls.__name__} keys {unknown}; is this a {cls.__name__}?")
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for item in saved:
        if item.name not in data:
            if item.default_factory is MISSING and item.default is MISSING:
                raise ValueError(f"The saved {cls.__name__} lacks {item.name!r}; it is required.")
            continue
        values[item.name] = _decode(data[item.name], hints[item.name], f"{item.name!r}")
    validate = getattr(cls, "validate_saved", None)  # SavedFields subclasses
    if validate is not None:
        validate(values)
    return cls(**values)


def _saved_fields(cls: type) -> list[Any]:
    return [item for item in fields(cls) if item.metadata.get("saved", True)]


def _encode(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if is_dataclass(value) and not isinstance(value, type):
        saved = _saved_fields(type(value))
        return {item.name: _encode(getattr(value, item.name)) for item in saved}
    if isinstance(value, dict):
        return {key: _encode(entry) for key, entry in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(entry) for entry in value]
    return value


def _decode(value: Any, hint: Any, name: str) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if hint is torch.Tensor:
        return _tensor(value, name)
    if isinstance(hint, type) and is_dataclass(hint):
        return fields_from_dict(hint, value)
    if origin is dict and args:
        if not isinstance(value, dict):
            raise ValueError(f"The saved result's {name} must be a dict; the file is corrupt.")
        return {key: _decode(entry, args[1], name) for key, entry in value.items()}
    if origin in (list, tuple) and args and not isinstance(value, list):
        what = "a list of strings" if args[0] is str else "a list"
        raise ValueError(f"The saved {name.strip(repr(''))} must be {what}; the file is corrupt.")
    if origin is list and args:
        return [_decode(entry, args[0], name) for entry in value]
    if origin is tuple and args:
        return tuple(_decode(entry, args[0], name) for entry in value)
    return value


def _tensor(values: Any, name: str) -> torch.Tensor:
    """A nested list back to a tensor: integers as ``int64``, reals as ``float32``."""
    try:
        tensor = torch.tensor(values)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(
            f"The saved result's {name} is not a (nested) list of numbers; the file is corrupt."
        ) from None
    return tensor.float() if tensor.is_floating_point() else tensor


def _check_saved_regions(values: dict[str, Any]) -> None:
    """Raise unless a loaded order, mask, saliency and tokens describe the same regions."""
    order, mask = values["order"], values["feature_mask"]
    n_regions = values["region_attribution"].numel()
    if order.is_floating_point() or sorted(order.flatten().tolist()) != list(range(n_regions)):
        raise ValueError(
            f"The saved order {order.tolist()} is not a permutation of the {n_regions} region "
            "ids; the file is corrupt or from another result."
        )
    if mask.is_floating_point() or mask.ndim != 4 or mask.numel() == 0:
        raise ValueError("The saved feature_mask must be (1, 1, H, W) integer region ids.")
    # A joint (image + prompt) order also ranks prompt features, which the mask does not hold.
    if int(mask.max()) + 1 > n_regions or int(mask.min()) < 0:
        raise ValueError(
            f"The saved feature_mask does not hold the {n_regions} regions of the saved order."
        )
    tokens = values["target_tokens"]
    if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
        raise ValueError("The saved target_tokens must be a list of strings.")
    if len(tokens) != values["trajectories"].shape[0]:
        raise ValueError(
            f"The saved result has {len(tokens)} target_tokens but "
            f"{values['trajectories'].shape[0]} trajectories."
        )


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


# Captum ships no type information: its base class and decorator are untyped for mypy.
class EagleAttribution(PerturbationAttribution):  # type: ignore[misc]
    r"""Eagle: greedy region ordering by insight + necessity, as a Captum attribution method.

    Regions (superpixels) are ordered greedily by the objective
    ``F(S) = w_i · mean_t p_t(S) + w_n · mean_t (1 − p_t(V \ S))`` under teacher forcing of the
    answer; the order and the marginal gains become a saliency map shaped like the input.
    :meth:`explain` returns the full explanation of one image (order, gains, per-token
    trajectories and influence, forwards, time); :meth:`attribute` returns the maps of a batch.

    Every :class:`EagleResult` carries the insertion trajectory of its order (``N + 1`` prefixes,
    kept and removed: up to ``2N + 2`` forwards beyond what a fast search spent). A map within a
    fixed number of forwards is what :meth:`attribute` returns with ``search="budget"``
    (:class:`~captum_eagle.search.BudgetedGreedy`), as ``n_samples`` bounds KernelShap.

    Args:
        forward_func (MLLMForwardWrapper): the wrapped model (the same object Captum's methods
            take as ``forward_func``).

    Attributes:
        last_result (EagleResult or None): convenience: the result of the most recent
            :meth:`explain` / :meth:`attribute` call (the last image of a batch); ``None`` after
            :meth:`attribute` with a search that draws its map without the trajectory
            (``"budget"``): call :meth:`explain` for its full result.

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
        (torch.Size([1, 3, 32, 32]), 16)
    """

    def __init__(self, forward_func: MLLMForwardWrapper) -> None:
        if not isinstance(forward_func, MLLMForwardWrapper):
            raise TypeError(
                "EagleAttribution needs an MLLMForwardWrapper (it reads per-token probabilities); "
                f"got {type(forward_func).__name__}."
            )
        super().__init__(forward_func)
        self.last_result: EagleResult | None = None

    @property
    def multiplies_by_inputs(self) -> bool:
        """False: the saliency is not multiplied by the input (unlike FeatureAblation's)."""
        return False

    @log_usage(part_of_slo=True)  # type: ignore[untyped-decorator]
    def attribute(
        self,
        inputs: torch.Tensor | ImageMaskInput,
        baselines: Baselines = 0.0,
        target: TargetSelection = None,
        additional_forward_args: tuple[PreparedSample] | PreparedSample | None = None,
        feature_mask: FeatureMask | torch.Tensor | None = None,
        search: str | SearchStrategy = "exact",
        insight_weight: float = 1.0,
        necessity_weight: float = 1.0,
        perturbations_per_eval: int | str | None = None,
        batch_size: int | str | None = None,
        max_forwards: int | None = 100_000,
        show_progress: bool = False,
    ) -> torch.Tensor:
        r"""Attribute the sample's target tokens to image regions, for each image of a batch.

        The masked images are built from ``inputs`` (e.g. noisy copies from Captum's
        ``NoiseTunnel``); the prompt, answer and target tokens come from the prepared sample.

        Args:
            inputs (Tensor or ImageMaskInput): images ``(B, 3, H, W)``, float, at the sample's size
                (``sample.image`` or perturbed copies of it), or a Captum ``ImageMaskInput`` of the
                image the sample was prepared from (its mask gives the regions).
            baselines (float or Tensor): value of removed pixels in ``[0, 1]``: a number, a tensor
                broadcastable to one image (``(3, 1, 1)``, ``(1, 3, H, W)``), or ``(B, 3, H, W)``
                (one per image); Captum's 1-tuple form is accepted. Default: 0 (black, as in the
                paper).
            target: which answer tokens to explain: ``None`` (the sample's targets), a word,
                an index, a ``slice`` or a list of indices.
            additional_forward_args: ``(sample,)`` from :meth:`MLLMForwardWrapper.prepare`.
            feature_mask (FeatureMask or Tensor): regions ``(1, 1, H, W)`` (or ``(B, 1, H, W)``,
                one per image) with integer ids ``0..N-1``; optional only for an
                ``ImageMaskInput``.
            search (str or SearchStrategy): ``"exact"`` (default), ``"lazy"``, ``"stochastic"``,
                ``"bidirectional"``, ``"early_stop"``, ``"efficient"``, ``"forward_backward"``
                (redundant evidence: exact greedy, then the tail from the back), ``"budget"``
                (the map within ``4N`` forwards, no trajectory; see
                :func:`captum_eagle.search.list_searches`), or an instance with options, e.g.
                ``StochasticGreedy(fraction=0.3, seed=0)`` or ``BudgetedGreedy(forwards=128)``.
            insight_weight (float): weight of the insight term (0 for necessity only).
            necessity_weight (float): weight of the necessity term (0 for insight only).
            perturbations_per_eval (int or "auto", optional): masked images per model forward
                (Captum's name); "auto" measures the largest batch that fits (halving on
                out-of-memory). Default: the wrapper's ``batch_size``. The result does not depend
                on it.
            batch_size (int or "auto", optional): alias of ``perturbations_per_eval``; giving
                both with different values is an error.
            max_forwards (int, optional): forward budget per image: if the strategy's estimate
                (``N(N + 1)`` for the exact search) exceeds it, a ``UserWarning`` suggests a
                cheaper search or fewer regions; the search still runs (a hard cap on the map's
                forwards is ``search=BudgetedGreedy(forwards=...)``). ``None``: no check.
                Default: 100,000.
            show_progress (bool): show a tqdm progress bar. Default: False.

        Returns:
            Tensor shaped like ``inputs`` ``(B, 3, H, W)`` (``(1, 3, H, W)`` for an
            ``ImageMaskInput``): each pixel holds its region's saliency for that image.
        """
        runs = self._validated_runs(**_arguments(locals()))
        dtype = inputs.dtype if isinstance(inputs, torch.Tensor) else torch.float32
        maps = []
        for run in runs:
            started = time.perf_counter()
            state = search_state(run.strategy, run.scorer, show_progress=show_progress)
            gains = run.strategy.map_gains(state, run.scorer)
            if gains is None:  # the map is drawn from the trajectory: the full result
                result = self._summarise(run, state, gains, inputs, started)
                region_attribution = result.region_attribution
            else:  # the search measured its gains: no trajectory, only its own forwards
                region_attribution = saliency_from_gains(torch.tensor(state.order), gains)
                self.last_result = None
            region_map = region_attribution[run.scorer.feature_mask.mask]
            maps.append(region_map.to(dtype).expand(1, 3, -1, -1))
        return torch.cat(maps, dim=0)

    def explain(
        self,
        inputs: torch.Tensor | ImageMaskInput,
        baselines: Baselines = 0.0,
        target: TargetSelection = None,
        additional_forward_args: tuple[PreparedSample] | PreparedSample | None = None,
        feature_mask: FeatureMask | torch.Tensor | None = None,
        search: str | SearchStrategy = "exact",
        insight_weight: float = 1.0,
        necessity_weight: float = 1.0,
        perturbations_per_eval: int | str | None = None,
        batch_size: int | str | None = None,
        max_forwards: int | None = 100_000,
        show_progress: bool = False,
    ) -> EagleResult:
        r"""The full :class:`EagleResult` of one image; arguments as in :meth:`attribute`.

        ``inputs`` must hold one image ``(1, 3, H, W)`` (or be an ``ImageMaskInput``); for a
        batch, call :meth:`attribute` (maps) or :meth:`explain` once per image (results).
        """
        _check_one_image(inputs)
        (run,) = self._validated_runs(**_arguments(locals()))
        started = time.perf_counter()
        state = search_state(run.strategy, run.scorer, show_progress=show_progress)
        gains = run.strategy.map_gains(state, run.scorer)
        return self._summarise(run, state, gains, inputs, started)

    def explain_joint(
        self,
        inputs: torch.Tensor | ImageMaskInput,
        text_features: TextFeatureSpec = "words",
        **arguments: Any,
    ) -> JointResult:
        r"""Order the image regions and the prompt's words together (one image).

        The keyword ``arguments`` are those of :meth:`explain` (``additional_forward_args``,
        ``feature_mask``, ``baselines``, ``target``, ``search``, ...); ``text_features`` is
        ``"words"`` (default) or spans of the prompt, as in
        :func:`captum_eagle.joint.explain_joint`, which does the work. From a Captum
        ``ImageMaskInput``, the result's ``to_captum().plot_image_heatmap()`` works.

        Returns:
            :class:`~captum_eagle.joint.JointResult`
        """
        from captum_eagle.joint import explain_joint  # joint builds on this module

        _check_one_image(inputs)
        bound = inspect.signature(self.explain).bind(inputs, **arguments)
        bound.apply_defaults()
        values = dict(bound.arguments)
        show_progress = values.pop("show_progress")
        (run,) = self._validated_runs(**values)
        scorer = run.scorer
        result = explain_joint(
            scorer.wrapper,
            scorer.sample,
            scorer.feature_mask,
            text_features,
            baselines=scorer.baseline,
            search=run.strategy,
            insight_weight=scorer.insight_weight,
            necessity_weight=scorer.necessity_weight,
            batch_size=_batch_size(values["perturbations_per_eval"], values["batch_size"]),
            show_progress=show_progress,
            image=scorer.image,
        )
        result.inputs = inputs if isinstance(inputs, ImageMaskInput) else None
        return result

    def _validated_runs(
        self,
        inputs: torch.Tensor | ImageMaskInput,
        *,
        baselines: Baselines,
        target: TargetSelection,
        additional_forward_args: tuple[PreparedSample] | PreparedSample | None,
        feature_mask: FeatureMask | torch.Tensor | None,
        search: str | SearchStrategy,
        insight_weight: float,
        necessity_weight: float,
        perturbations_per_eval: int | str | None,
        batch_size: int | str | None,
        max_forwards: int | None,
    ) -> list[_EagleRun]:
        """Check every argument (no model forward yet); one scorer per image."""
        wrapper: MLLMForwardWrapper = self.forward_func
        sample = _sample_from(additional_forward_args)
        if target is not None:
            sample = sample.with_target_tokens(target)
        images = _check_inputs(inputs, sample, wrapper)
        size = _batch_size(perturbations_per_eval, batch_size)
        if max_forwards is not None and (isinstance(max_forwards, bool) or max_forwards < 1):
            raise ValueError(f"max_forwards must be a positive int or None; got {max_forwards!r}.")
        if feature_mask is None:
            if not isinstance(inputs, ImageMaskInput):
                raise ValueError("feature_mask is required; build one with FeatureMask.slico.")
            feature_mask = FeatureMask.from_image_mask_input(inputs, wrapper)
        strategy = get_search(search)
        search_options = strategy.options()
        count = images.shape[0]
        baselines = (
            baselines[0] if isinstance(baselines, tuple) and len(baselines) == 1 else baselines
        )
        runs = []
        for index in range(count):
            image = images[index : index + 1]
            mask = _per_image(feature_mask, index, count)
            if isinstance(mask, torch.Tensor):
                _check_region_ids(mask)
            scorer = SubsetScorer(
                wrapper,
                sample,
                as_feature_mask(mask, image),
                image=image,
                baselines=_per_image(baselines, index, count),
                insight_weight=insight_weight,
                necessity_weight=necessity_weight,
                batch_size=size,
            )
            estimate = strategy.forward_estimate(scorer.n_regions)
            if max_forwards is not None and estimate > max_forwards:
                warnings.warn(
                    f"The {strategy.name!r} search over {scorer.n_regions} regions needs about "
                    f"{estimate:,} forwards per image (max_forwards={max_forwards:,}). Use fewer "
                    "regions or a cheaper search (search='early_stop' or 'lazy'; "
                    f"search=BudgetedGreedy(forwards={max_forwards}) never spends more on the "
                    "map), or raise max_forwards (None: no check).",
                    UserWarning,
                    stacklevel=3,
                )
            runs.append(_EagleRun(scorer, strategy, search_options))
        return runs

    def _summarise(
        self,
        run: _EagleRun,
        state: SearchState,
        gains: torch.Tensor | None,
        inputs: torch.Tensor | ImageMaskInput,
        started: float,
    ) -> EagleResult:
        order = torch.tensor(state.order)
        result = summarise_search(run.scorer, order, run.strategy.name, map_gains=gains)
        result.search_options = run.search_options
        result.seconds = time.perf_counter() - started
        result.inputs = inputs if isinstance(inputs, ImageMaskInput) else None
        self.last_result = result
        return result


def _check_one_image(inputs: torch.Tensor | ImageMaskInput) -> None:
    if isinstance(inputs, torch.Tensor) and inputs.ndim == 4 and inputs.shape[0] != 1:
        raise ValueError(
            f"explain() takes one image; got a batch of {inputs.shape[0]}. Call explain() "
            "per image (inputs[i : i + 1]), or attribute() for the maps of the batch."
        )


def _arguments(values: dict[str, Any]) -> dict[str, Any]:
    """The arguments :meth:`EagleAttribution._validated_runs` checks, from attribute's locals."""
    return {k: v for k, v in values.items() if k not in ("self", "show_progress")}


@dataclass(frozen=True)
class _EagleRun:
    scorer: SubsetScorer
    strategy: SearchStrategy
    search_options: dict[str, Any]


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


def _check_inputs(
    inputs: torch.Tensor | ImageMaskInput, sample: PreparedSample, wrapper: MLLMForwardWrapper
) -> torch.Tensor:
    """The images to perturb, ``(B, 3, H, W)`` float32, pixels checked by ``check_pixels``."""
    if isinstance(inputs, ImageMaskInput):
        image = to_image_tensor(wrapper.adapter.resize(inputs.image.convert("RGB")))
        if image.shape != sample.image.shape or (image - sample.image).abs().max() > 1 / 255:
            raise ValueError(
                "The ImageMaskInput's image is not the image the sample was prepared from; "
                "prepare the sample from inputs.image (wrapper.prepare(inputs.image, prompt))."
            )
        return sample.image
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(
            f"inputs must be a tensor or an ImageMaskInput; got {type(inputs).__name__}."
        )
    if not inputs.is_floating_point():
        raise TypeError(
            f"inputs must be a float image in [0, 1]; got {inputs.dtype}. Divide 0-255 values "
            "by 255 (or pass sample.image)."
        )
    if inputs.ndim != 4 or inputs.shape[1:] != sample.image.shape[1:]:
        raise ValueError(
            f"inputs {tuple(inputs.shape)} must be images (B, 3, H, W) at the prepared sample's "
            f"size {tuple(sample.image.shape[-2:])}; perturb sample.image."
        )
    check_pixels(inputs, name="inputs")
    return inputs.detach().float()


def _batch_size(perturbations_per_eval: int | str | None, batch_size: int | str | None) -> Any:
    check_batch_size(perturbations_per_eval, "perturbations_per_eval")
    check_batch_size(batch_size)
    if None not in (perturbations_per_eval, batch_size) and perturbations_per_eval != batch_size:
        raise ValueError(
            f"perturbations_per_eval={perturbations_per_eval!r} and batch_size="
            f"{batch_size!r} disagree; batch_size is an alias, pass one of them."
        )
    return batch_size if perturbations_per_eval is None else perturbations_per_eval


def _per_image(value: Any, index: int, count: int) -> Any:
    """``value[index : index + 1]`` for a per-image tensor ``(B, ...)``, else ``value``."""
    if (
        isinstance(value, torch.Tensor)
        and value.ndim == 4
        and count > 1
        and value.shape[0] == count
    ):
        return value[index : index + 1]
    return value


def _check_region_ids(mask: torch.Tensor) -> None:
    if mask.is_floating_point() and not torch.equal(mask, mask.round()):
        raise ValueError(
            "feature_mask holds fractional region ids; use integer ids 0..N-1 (e.g. "
            "FeatureMask.from_labels(labels) or mask.long() after rounding)."
        )


def summarise_search(
    scorer: SubsetScorer,
    order: torch.Tensor,
    search: str,
    *,
    map_gains: torch.Tensor | None = None,
) -> EagleResult:
    r"""The :class:`EagleResult` of a finished search: trajectories, gains, saliency, influence.

    Scores every prefix of ``order`` (kept and removed) through ``scorer`` (cached subsets cost no
    forward); used by :class:`EagleAttribution` and the joint image + prompt search. The saliency
    is drawn from the trajectory's gains, or from ``map_gains`` (``(N,)`` along ``order``: the
    gains a search measured itself, :meth:`SearchStrategy.map_gains`) when given.
    """
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
    region_areas = scorer.feature_areas()[order]
    return EagleResult(
        order=order,
        objective=objective,
        gains=gains,
        insight=kept.mean(dim=1),
        necessity=(1 - removed).mean(dim=1),
        trajectories=trajectories,
        removal_trajectories=removed.T.contiguous(),
        region_attribution=saliency_from_gains(order, gains if map_gains is None else map_gains),
        token_attribution=token_attribution,
        influence={
            v: token_influence(trajectories, v, areas=region_areas) for v in INFLUENCE_VARIANTS
        },
        influence_area={
            v: influence_area(trajectories, v, areas=region_areas) for v in INFLUENCE_VARIANTS
        },
        target_tokens=scorer.sample.target_tokens,
        answer=scorer.sample.answer,
        search=search,
        forwards=scorer.forwards,
        seconds=0.0,
        feature_mask=scorer.feature_mask.mask.clone(),
    )
