r"""What a dataset run computes for every sample, checked before the first model load."""

from __future__ import annotations

from dataclasses import dataclass

from captum_eagle.baselines import get_method
from captum_eagle.registry import UnknownNameError
from captum_eagle.search import list_searches
from captum_eagle.text_features import parse_text_features

__all__ = ["POINTING", "RunConfig", "RunnerError"]

POINTING = ("word", "sentence")
"""Values of :attr:`RunConfig.pointing`."""


class RunnerError(RuntimeError):
    """A run cannot start (unwritable output folder, settings that clash with an earlier run)."""


def _check_int(name: str, value: object, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int; got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}.")


@dataclass(frozen=True)
class RunConfig:
    r"""What a run computes for every sample (saved to ``DIR/run.json``; a rerun must match it).

    Every setting is checked when the config is built, so a typo stops the run before any model
    is loaded.

    Attributes:
        method (str): ``"eagle"`` or a baseline (:func:`captum_eagle.baselines.list_methods`).
            Default: ``"eagle"``.
        regions (int): SLICO regions per image (``FeatureMask.slico``), at least 2. Default: 64.
        search (str): Eagle's search strategy (:func:`captum_eagle.search.list_searches`).
            Default: ``"exact"``.
        batch_size (int or "auto", optional): images per forward. Default: the wrapper's (16).
        steps (int, optional): insertion / deletion steps. Default: the number of regions.
        max_new_tokens (int): answer length when the manifest gives no target. Default: 32.
        n_samples (int, optional): budget of the sampling baselines (``shapley``: permutations;
            ``lime``, ``kernel_shap``: samples); fixed-cost methods ignore it. Default: the
            registry's (Captum's 25).
        ig_steps (int): IntegratedGradients steps. Default: 50.
        pointing (str): ``"word"`` (default): each word with a box or mask gets its own map
            (the method run on that word's tokens), as in the paper; ``"sentence"``: the
            sentence-level map is used for every word (no extra cost). A word is looked up in the
            explained answer case-insensitively (first occurrence; a plural in ``-s``/``-es``
            counts); a word that is not there is recorded as ``{"present": false}``.
        baseline (float): value of removed pixels in ``[0, 1]``. Default: 0 (black).
        seed (int): seed of the sampling methods, ``>= 0``; each sample is seeded from it and its
            id, so results do not depend on the sharding. Default: 0.
        text_features (str, optional): joint mode (``method="eagle"`` only): also order the
            image regions and the prompt's features together
            (:func:`captum_eagle.joint.explain_joint`): ``"words"`` or character spans of every
            prompt ``"0:5,10:14"``. Each record then has a ``"joint"`` entry (order, text
            scores, modality reliance per answer token). Default: ``None`` (image only).

    Raises:
        UnknownNameError: an unknown ``method`` or ``search`` (the message lists the valid ones).
        ValueError / TypeError: any other setting out of range or of the wrong type.

    Examples::

        >>> from captum_eagle.run import RunConfig
        >>> RunConfig(method="lime", regions=32, n_samples=100).n_samples
        100
        >>> RunConfig(search="exactt")
        Traceback (most recent call last):
        ...
        captum_eagle.registry.UnknownNameError: Unknown search strategy 'exactt'; valid names: ...
    """

    method: str = "eagle"
    regions: int = 64
    search: str = "exact"
    batch_size: int | str | None = None
    steps: int | None = None
    max_new_tokens: int = 32
    n_samples: int | None = None
    ig_steps: int = 50
    pointing: str = "word"
    baseline: float = 0.0
    seed: int = 0
    text_features: str | None = None

    def __post_init__(self) -> None:
        get_method(self.method)
        if self.search not in list_searches():
            raise UnknownNameError("search strategy", self.search, list_searches())
        _check_int("regions", self.regions, 2)
        if self.batch_size != "auto":
            _check_int("batch_size", self.batch_size, 1, optional=True)
        _check_int("steps", self.steps, 1, optional=True)
        _check_int("max_new_tokens", self.max_new_tokens, 1)
        _check_int("n_samples", self.n_samples, 1, optional=True)
        _check_int("ig_steps", self.ig_steps, 1)
        _check_int("seed", self.seed, 0)
        if self.pointing not in POINTING:
            raise ValueError(f"pointing must be 'word' or 'sentence'; got {self.pointing!r}.")
        if isinstance(self.baseline, bool) or not isinstance(self.baseline, int | float):
            raise TypeError(f"baseline must be a number in [0, 1]; got {self.baseline!r}.")
        if not 0.0 <= self.baseline <= 1.0:
            raise ValueError(f"baseline must lie in [0, 1]; got {self.baseline}.")
        if self.text_features is not None:
            parse_text_features(self.text_features)
            if self.method != "eagle":
                raise ValueError(
                    f"text_features (joint image + prompt attribution) needs method='eagle'; "
                    f"got method={self.method!r}. Drop text_features or use Eagle."
                )

    @property
    def budget(self) -> int | None:
        """The budget passed to :func:`captum_eagle.baselines.attribute` for :attr:`method`."""
        return self.ig_steps if get_method(self.method).budget == "n_steps" else self.n_samples
