r"""The one way the package warns about a renamed name or keyword (kept for one release).

Every deprecated alias warns with :func:`warn_deprecated` (a :class:`DeprecationWarning` naming
the new spelling); a renamed keyword argument is accepted by the :func:`renamed_keywords`
decorator.

Examples::

    >>> import warnings
    >>> from captum_eagle._deprecation import renamed_keywords
    >>> @renamed_keywords(baseline="baselines")
    ... def fill(*, baselines=0.0):
    ...     return baselines
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     value = fill(baseline=0.5)
    >>> value, caught[0].category.__name__
    (0.5, 'DeprecationWarning')
    >>> str(caught[0].message)
    'fill(baseline=...) is deprecated and will be removed in the next release; use fill(baselines=...).'
"""  # noqa: E501

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, TypeVar, cast

Function = TypeVar("Function", bound=Callable[..., Any])


def warn_deprecated(old: str, new: str, *, stacklevel: int = 2) -> None:
    r"""Warn that ``old`` is deprecated and will be removed in the next release; use ``new``.

    Args:
        old (str): the deprecated spelling, e.g. ``"captum_eagle.runner.run"``.
        new (str): what to use instead, e.g. ``"captum_eagle.run.run"``.
        stacklevel (int): as for :func:`warnings.warn`, counted from the caller of this function.
            Default: 2 (the caller's caller, i.e. the user's line).

    Examples::

        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_deprecated("old_name", "new_name")
        >>> print(caught[0].message)
        old_name is deprecated and will be removed in the next release; use new_name.
    """
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; use {new}.",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )


def renamed_keywords(**renames: str) -> Callable[[Function], Function]:
    r"""Decorator: accept each old keyword as its new name for one release, with a warning.

    The warning names the function (its class for ``__init__``) and both keywords. Passing both
    spellings, the new one by keyword or by position, is a ``TypeError``.

    Args:
        **renames (str): ``old="new"``: the deprecated keyword and the keyword argument of the
            decorated function that replaces it.

    Examples::

        >>> @renamed_keywords(target="answer")
        ... def prepare(prompt, answer=None):
        ...     return answer
        >>> prepare("describe", "a cat", target="a dog")
        Traceback (most recent call last):
        ...
        TypeError: prepare() got both target= (deprecated) and answer=; pass only answer=.
    """

    def decorate(function: Function) -> Function:
        signature = inspect.signature(function)
        name = function.__qualname__.removesuffix(".__init__")

        @functools.wraps(function)
        def accept_old(*args: Any, **kwargs: Any) -> Any:
            for old, new in renames.items():
                if old not in kwargs:
                    continue
                value = kwargs.pop(old)
                if new in signature.bind_partial(*args, **kwargs).arguments:
                    raise TypeError(
                        f"{name}() got both {old}= (deprecated) and {new}=; pass only {new}=."
                    )
                warn_deprecated(f"{name}({old}=...)", f"{name}({new}=...)")
                kwargs[new] = value
            return function(*args, **kwargs)

        return cast(Function, accept_old)

    return decorate
