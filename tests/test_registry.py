import pytest

from captum_eagle import UnknownNameError, list_families, list_searches
from captum_eagle.families import family_for
from captum_eagle.registry import Registry
from captum_eagle.search import get_search


def test_registry_keeps_order_and_refuses_silent_overwrite() -> None:
    registry: Registry[int] = Registry("number")
    registry.add("one", 1)
    registry.add("two", 2)
    assert registry.names() == ["one", "two"]
    assert registry.items() == [("one", 1), ("two", 2)]
    assert "one" in registry and "three" not in registry and len(registry) == 2
    with pytest.raises(ValueError, match="already registered"):
        registry.add("one", 10)
    registry.add("one", 10, replace=True)
    assert registry.get("one") == 10
    with pytest.raises(ValueError, match="non-empty string"):
        registry.add("", 0)


@pytest.mark.parametrize(
    "lookup, kind, valid",
    [
        (lambda: get_search("greedy"), "search strategy", list_searches()),
        (lambda: family_for(None, "gemma"), "model family", sorted(list_families())),
    ],
)
def test_every_registry_raises_one_error_type_listing_names(lookup, kind, valid) -> None:
    with pytest.raises(UnknownNameError) as error:
        lookup()
    assert isinstance(error.value, ValueError)
    assert error.value.kind == kind
    assert sorted(error.value.valid) == sorted(valid)
    for name in valid:
        assert repr(name) in str(error.value)
