import json
from importlib.metadata import EntryPoint

import pytest
from pydantic import ValidationError

from dropsearch.search import catalog
from dropsearch.search.spec import SEARCH_SPEC_EXAMPLE, SearchSpec

MINIMAL = {"model": {"name": "convnet"}, "dataset": {"name": "digits"}}


def _with(path, value, base=MINIMAL):
    spec = json.loads(json.dumps(base))
    node = spec
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return spec


def test_minimal_spec_gets_the_documented_defaults():
    spec = SearchSpec.model_validate(MINIMAL)
    assert spec.name == "digits-convnet"
    assert spec.space.variants == ["bernoulli", "dropblock", "autodropout", "gsnr", "ydrop", "gradaug"]
    assert spec.space.rates == [0.0, 0.1, 0.2, 0.3, 0.5] and spec.space.choices == {}
    assert spec.controller.model_dump() == {
        "name": "reinforce",
        "batch_size": 8,
        "lr": 0.0035,
        "entropy_weight": 0.0001,
        "baseline_decay": 0.95,
        "warm_start_from": None,
    }
    assert spec.budget.model_dump() == {
        "trials": 64,
        "epochs_per_trial": 5,
        "max_concurrent": 2,
        "early_stopping": "asha",
        "grace_epochs": None,
        "time_limit_s": None,
        "seeds_per_trial": 1,
        "max_failures": 2,
        "trial_timeout_s": None,
    }
    assert spec.training.batch_size == 64 and spec.training.device == "auto" and spec.training.pretrain_epochs == 0
    assert spec.resources.model_dump() == {"cpus_per_trial": 1, "gpus_per_trial": 0, "workers_per_trial": 1}
    assert spec.objective.model_dump() == {"metric": "val_accuracy", "mode": "max", "last_k": 1}
    assert spec.seed == 0


def test_example_validates_and_round_trips_through_json():
    spec = SearchSpec.model_validate(SEARCH_SPEC_EXAMPLE)
    assert SearchSpec.model_validate_json(spec.model_dump_json()) == spec
    assert spec.resources.cpus_per_trial == 1.0


@pytest.mark.parametrize(
    ("path", "value", "loc", "needle"),
    [
        ("model.name", "os:system", ("model", "name"), "model.name must match"),
        ("model.name", "gpt5", ("model", "name"), "model.name: unknown model 'gpt5'"),
        ("dataset.name", "imagenet", ("dataset", "name"), "dataset.name: unknown dataset 'imagenet'"),
        ("space.variants", ["bernoulli", "dropconnect"], ("space", "variants"), "unknown variant 'dropconnect'"),
        ("space.variants", [], ("space", "variants"), "space.variants must not be empty"),
        ("space.rates", [0.1, 1.0], ("space", "rates"), "space.rates entry must be in [0, 1)"),
        ("space.rates", [-0.1], ("space", "rates"), "space.rates entry must be in [0, 1)"),
        (
            "space.choices",
            {"conv1/size": []},
            ("space", "choices"),
            "space.choices['conv1/size'] must not be an empty list",
        ),
        ("budget.trials", 0, ("budget", "trials"), "greater than or equal to 1"),
        ("budget.max_concurrent", 65, ("budget",), "budget.max_concurrent (65) must not exceed budget.trials (64)"),
        ("budget.early_stopping", "successive", ("budget", "early_stopping"), "'hyperband' or 'median'"),
        ("budget.time_limit_s", 0, ("budget", "time_limit_s"), "greater than 0"),
        ("resources.cpus_per_trial", 0, ("resources", "cpus_per_trial"), "greater than 0"),
        ("resources.gpus_per_trial", -1, ("resources", "gpus_per_trial"), "greater than or equal to 0"),
        ("resources.workers_per_trial", 0, ("resources", "workers_per_trial"), "greater than or equal to 1"),
        ("controller.name", "evolution", ("controller", "name"), "'random' or 'tpe'"),
        ("objective.mode", "maximize", ("objective", "mode"), "'max' or 'min'"),
        ("budget.retries", 3, ("budget", "retries"), "Extra inputs are not permitted"),
        ("colour", "blue", ("colour",), "Extra inputs are not permitted"),
    ],
)
def test_invalid_specs_name_the_field(path, value, loc, needle):
    with pytest.raises(ValidationError) as info:
        SearchSpec.model_validate(_with(path, value))
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [loc]
    assert needle in errors[0]["msg"]
    field = path.split(".")[-1]
    assert field in str(info.value)


def test_model_and_dataset_are_required():
    with pytest.raises(ValidationError) as info:
        SearchSpec.model_validate({})
    assert sorted(e["loc"] for e in info.value.errors()) == [("dataset",), ("model",)]


def test_plugin_names_are_listed_without_loading(monkeypatch):
    eps = {
        "dropsearch.models": [
            EntryPoint("wideresnet", "no_such_module:build", "dropsearch.models"),
            EntryPoint("Bad:Name", "no_such_module:x", "dropsearch.models"),
        ],
        "dropsearch.datasets": [EntryPoint("pacs", "no_such_module:load", "dropsearch.datasets")],
    }
    monkeypatch.setattr(catalog, "entry_points", lambda group: eps.get(group, []))
    assert catalog.model_names() == (*catalog.MODELS, "wideresnet")  # the malformed name is skipped
    spec = SearchSpec.model_validate({"model": {"name": "wideresnet"}, "dataset": {"name": "pacs"}})
    assert (spec.model.name, spec.dataset.name) == ("wideresnet", "pacs")  # no_such_module was never imported


def test_json_schema_is_openapi_ready():
    schema = SearchSpec.model_json_schema()
    assert schema["required"] == ["model", "dataset"]
    assert schema["additionalProperties"] is False
    assert schema["examples"] == [SEARCH_SPEC_EXAMPLE]
    defs = schema["$defs"]
    assert defs["BudgetSpec"]["properties"]["trials"]["minimum"] == 1
    assert defs["ControllerSpec"]["properties"]["name"]["enum"] == ["reinforce", "random", "tpe"]
    json.dumps(schema)  # serializable
