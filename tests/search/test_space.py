import pytest

from dropsearch.regularizers.pattern import Site
from dropsearch.search.space import Decision, SearchSpace


def _space():
    return SearchSpace(
        (Decision("a", (0.1, 0.2, 0.3)), Decision("x/size", (1, 2, 3)), Decision("y/size", (1, 2, 3, 4))),
        sites=(Site("x", "conv", 4),),
    )


def test_decision_rejects_empty_and_duplicated_choices():
    with pytest.raises(ValueError, match="'d' needs at least one choice"):
        Decision("d", ())
    with pytest.raises(ValueError, match="duplicated choices"):
        Decision("d", (1, 1.0))
    with pytest.raises(ValueError, match="duplicated choices"):
        Decision("d", ((1.0,), [1]))


def test_decision_index_matches_equal_values_and_names_the_decision():
    d = Decision("r", (0.0, 0.5, (1.0, 0.5), True))
    assert d.choices == (0.0, 0.5, [1.0, 0.5], True)  # tuples become lists (JSON form)
    assert d.index(0) == 0 and d.index(0.5) == 1 and d.index([1, 0.5]) == 2 and d.index(True) == 3
    with pytest.raises(ValueError, match="0.7 is not a choice of decision 'r'"):
        d.index(0.7)


def test_space_tokens_values_and_size():
    space = _space()
    assert space.names == ("a", "x/size", "y/size")
    assert space.sizes == (3, 3, 4) and space.size == 36
    assert space.values([2, 0, 3]) == {"a": 0.3, "x/size": 1, "y/size": 4}
    with pytest.raises(ValueError, match="expected 3 tokens, got 2"):
        space.check_tokens([0, 0])
    with pytest.raises(ValueError, match="token 4 of decision 'y/size'"):
        space.check_tokens([0, 0, 4])
    with pytest.raises(ValueError, match="decision name"):
        SearchSpace((Decision("a", (1,)), Decision("a", (2,))))


def test_restrict_by_name_and_wildcard():
    space = _space()
    r = space.restrict({"*/size": [3, 1], "a": [0.2]})
    assert r["x/size"].choices == (3, 1) and r["y/size"].choices == (3, 1) and r["a"].choices == (0.2,)
    assert r.names == space.names and r.sites == space.sites
    with pytest.raises(ValueError, match=r"choices\['\*/size'\].*4 is not a choice of decision 'x/size'"):
        space.restrict({"*/size": [4]})
    with pytest.raises(ValueError, match=r"choices\['nope'\] names no decision"):
        space.restrict({"nope": [1]})
    with pytest.raises(ValueError, match="must not be empty"):
        space.restrict({"a": []})


def test_dict_round_trip():
    space = _space()
    assert SearchSpace.from_dict(space.to_dict()) == space
