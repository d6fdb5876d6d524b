r"""One small name → object registry, shared by model families, search strategies and methods.

Every registry of the package is a :class:`Registry`; an unknown name raises
:class:`UnknownNameError` (a ``ValueError``) that lists the valid names.

Examples::

    >>> from captum_eagle.registry import Registry, UnknownNameError
    >>> colours = Registry("colour")
    >>> _ = colours.add("red", (1.0, 0.0, 0.0))
    >>> colours.get("red")
    (1.0, 0.0, 0.0)
    >>> colours.names()
    ['red']
    >>> try:
    ...     colours.get("blu")
    ... except UnknownNameError as error:
    ...     print(error)
    Unknown colour 'blu'; valid names: ['red'].
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    r"""A name that no registry entry has; the message lists the valid names.

    Attributes:
        kind (str): what the registry holds (``"search strategy"``, ``"model family"``, ...).
        name (str): the name asked for.
        valid (list[str]): the registered names.
    """

    def __init__(self, kind: str, name: object, valid: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.valid = valid
        super().__init__(f"Unknown {kind} {name!r}; valid names: {valid}.")


class Registry(Generic[T]):
    r"""Named entries of one kind, in registration order.

    Args:
        kind (str): what an entry is, used in error messages (``"search strategy"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T, *, replace: bool = False) -> T:
        r"""Register ``entry`` under ``name`` and return it.

        Raises:
            ValueError: ``name`` is empty or not a string, or already registered and ``replace``
                is False.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"A {self.kind} needs a non-empty string name; got {name!r}.")
        if name in self._entries and not replace and self._entries[name] is not entry:
            raise ValueError(
                f"A {self.kind} named {name!r} is already registered; pass replace=True to "
                "override it."
            )
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        """The entry registered under ``name``; :class:`UnknownNameError` if there is none."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` pairs, in registration order."""
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
