"""captum_eagle._deprecation: the one deprecation warning for renamed names and keywords."""

from __future__ import annotations

import warnings

import pytest

from captum_eagle._deprecation import renamed_keywords, warn_deprecated


def test_warn_deprecated_names_the_replacement_and_points_at_the_caller() -> None:
    def old_function() -> None:
        warn_deprecated("old_function", "new_function")

    with pytest.warns(DeprecationWarning, match="old_function is deprecated") as caught:
        old_function()  # the warning points here, at the caller of the deprecated name
    (warning,) = caught
    assert str(warning.message).endswith("removed in the next release; use new_function.")
    assert warning.filename == __file__


def test_renamed_keywords_warn_and_forward() -> None:
    @renamed_keywords(baseline="baselines", target="answer")
    def fill(value: float, answer: str = "", *, baselines: float = 0.0) -> tuple[float, str]:
        return value + baselines, answer

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fill(1.0, baselines=0.5) == (1.5, "")  # the new names: no warning
    with pytest.warns(DeprecationWarning, match=r"use .*fill\(baselines=\.\.\.\)") as caught:
        assert fill(1.0, baseline=0.25) == (1.25, "")
    assert caught[0].filename == __file__
    with pytest.warns(DeprecationWarning, match=r"fill\(target=\.\.\.\) is deprecated"):
        assert fill(1.0, target="cat") == (1.0, "cat")
    with pytest.raises(TypeError, match=r"both baseline= \(deprecated\) and baselines="):
        fill(1.0, baseline=0.1, baselines=0.2)
    with pytest.raises(TypeError, match=r"both target= \(deprecated\) and answer="):
        fill(1.0, "dog", target="cat")  # the new keyword given by position
    assert fill.__name__ == "fill"


def test_renamed_keywords_name_the_class_of_an_init() -> None:
    class Scorer:
        @renamed_keywords(score="score_type")
        def __init__(self, *, score_type: str = "probability") -> None:
            self.score_type = score_type

    with pytest.warns(DeprecationWarning, match=r"Scorer\(score=\.\.\.\) is deprecated"):
        assert Scorer(score="log").score_type == "log"


def test_own_deprecations_fail_a_test_that_does_not_expect_them() -> None:
    # pyproject's filterwarnings turns captum-eagle's deprecation messages into errors, so an
    # internal call through a deprecated name fails the suite; third-party ones stay ignored.
    with pytest.raises(DeprecationWarning, match="will be removed in the next release"):
        warn_deprecated("old_name", "new_name")
    warnings.warn("some library's own deprecation", DeprecationWarning, stacklevel=1)
