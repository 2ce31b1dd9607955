"""The spec's validation section, budget.seeds_per_trial and objective.last_k."""

import pytest
from pydantic import ValidationError

from dropsearch.search.spec import SEARCH_SPEC_EXAMPLE, SearchSpec, validation_trials

MINIMAL = {"model": {"name": "convnet"}, "dataset": {"name": "digits"}}


def spec(**sections):
    return SearchSpec.model_validate({**MINIMAL, **sections})


def test_documented_defaults():
    s = spec()
    assert s.validation.model_dump() == {
        "enabled": True,
        "top_k": 3,
        "baselines": [{"variant": "none", "rate": 0.0, "params": {}, "shape": {}, "name": "none"}],
        "seeds": 3,
        "racing": True,
    }
    assert s.budget.seeds_per_trial == 1 and s.objective.last_k == 1
    assert validation_trials(s) == (3 + 1) * 3
    assert SearchSpec.model_validate(SEARCH_SPEC_EXAMPLE).validation == s.validation


def test_validation_trials_counts_every_arm_and_seed():
    extra = {"variant": "bernoulli", "rate": 0.3}
    assert validation_trials(spec(validation={"top_k": 2, "baselines": [{"variant": "none"}, extra], "seeds": 5})) == 20
    assert validation_trials(spec(validation={"enabled": False})) == 0
    assert validation_trials(spec(validation={"baselines": []})) == 9


def test_baselines_get_names_and_round_trip():
    s = spec(validation={"baselines": [{"variant": "none"}, {"variant": "bernoulli", "rate": 0.3}]})
    assert [b.name for b in s.validation.baselines] == ["none", "bernoulli-0.3"]
    assert SearchSpec.model_validate_json(s.model_dump_json()) == s


@pytest.mark.parametrize(
    ("section", "loc", "needle"),
    [
        ({"validation": {"top_k": 0}}, ("validation", "top_k"), "greater than or equal to 1"),
        ({"validation": {"seeds": 1}}, ("validation", "seeds"), "greater than or equal to 2"),
        ({"validation": {"racing": "sometimes"}}, ("validation", "racing"), "valid boolean"),
        ({"validation": {"repeats": 3}}, ("validation", "repeats"), "Extra inputs are not permitted"),
        (
            {"validation": {"baselines": [{"variant": "dropconnect"}]}},
            ("validation", "baselines", 0, "variant"),
            "validation.baselines: unknown variant 'dropconnect'",
        ),
        (
            {"validation": {"baselines": [{"variant": "bernoulli", "rate": 1.0}]}},
            ("validation", "baselines", 0),
            "validation.baselines rate must be in [0, 1)",
        ),
        (
            {"validation": {"baselines": [{"variant": "none", "rate": 0.2}]}},
            ("validation", "baselines", 0),
            "variant 'none' takes no rate",
        ),
        (
            {"validation": {"baselines": [{"variant": "none"}, {"variant": "none"}]}},
            ("validation", "baselines"),
            "duplicate name(s) ['none']",
        ),
        (
            {"validation": {"baselines": [{"variant": "none", "pattern": {}}]}},
            ("validation", "baselines", 0, "pattern"),
            "Extra inputs",
        ),
        ({"budget": {"seeds_per_trial": 0}}, ("budget", "seeds_per_trial"), "greater than or equal to 1"),
        ({"objective": {"last_k": 0}}, ("objective", "last_k"), "greater than or equal to 1"),
    ],
)
def test_bad_values_name_their_field(section, loc, needle):
    with pytest.raises(ValidationError) as info:
        spec(**section)
    errors = info.value.errors()
    assert any(tuple(e["loc"]) == loc and needle in e["msg"] for e in errors), errors
