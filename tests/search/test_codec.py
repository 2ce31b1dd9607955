import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dropsearch.regularizers.pattern import VARIANTS, Pattern, Site
from dropsearch.search.builtin import build_space
from dropsearch.search.codec import canonical_tokens, pattern_to_tokens, relevant_decisions, tokens_to_pattern

SITE_SETS = {
    "convnet": (
        Site("features.0", "conv", 16),
        Site("features.3", "conv", 32),
        Site("fc", "linear", 64),
        Site("head", "features", 64),
    ),
    "mlp": (Site("fc1", "linear", 32), Site("fc2", "linear", 32), Site("pool", "features", 32)),
    "transformer": (
        Site("emb", "sequence", 32),
        Site("blocks.0.attn", "sequence", 32),
        Site("blocks.0.ffn", "linear", 64),
        Site("pool", "features", 32),
    ),
}
BUILTIN_SPACES = {
    f"{model}-{name}": build_space(sites, variants=variants, rates=rates)
    for model, sites in SITE_SETS.items()
    for name, variants, rates in (
        ("all", VARIANTS, (0.0, 0.1, 0.2, 0.3, 0.5)),
        ("default", ("bernoulli", "dropblock", "autodropout", "gsnr", "ydrop", "gradaug"), (0.0, 0.5)),
        ("single", ("bernoulli",), (0.3,)),
    )
}


@st.composite
def space_and_tokens(draw):
    key = draw(st.sampled_from(sorted(BUILTIN_SPACES)))
    space = BUILTIN_SPACES[key]
    return space, tuple(draw(st.integers(0, n - 1)) for n in space.sizes)


@settings(max_examples=300, deadline=None)
@given(space_and_tokens())
def test_round_trip_for_every_builtin_space(case):
    space, tokens = case
    pattern = tokens_to_pattern(space, tokens)
    # the document survives JSON and comes back as the same pattern
    reloaded = Pattern.from_dict(json.loads(json.dumps(pattern.to_dict())))
    assert reloaded == pattern
    encoded = pattern_to_tokens(space, reloaded)
    assert encoded == canonical_tokens(space, tokens)
    assert tokens_to_pattern(space, encoded) == pattern
    # canonical tokens keep the relevant decisions and zero the rest
    used = set(relevant_decisions(space, pattern.variant))
    for name, t, c in zip(space.names, tokens, encoded, strict=True):
        assert c == (t if name in used else 0)


def _tokens(space, **values):
    """Token tuple from decision values given by hand (others 0); names use '__' for '/' and '_' for '.'."""
    tokens = [0] * len(space)
    for key, value in values.items():
        name = key.replace("__", "/")
        tokens[space.position(name)] = space[name].index(value)
    return tuple(tokens)


def test_autodropout_decodes_to_the_design_example():
    sites = (Site("layer1", "conv", 8), Site("fc", "linear", 8))
    space = build_space(sites, variants=["bernoulli", "autodropout"], rates=[0.0, 0.2])
    tokens = _tokens(
        space,
        variant="autodropout",
        layer1__rate=0.2,
        layer1__size=3,
        layer1__stride=2,
        layer1__repeat=2,
        layer1__rotate=30,
        layer1__shear_y=0.15,
        layer1__shear_x=0.0,
        fc__rate=0.2,
    )
    expected = {
        "format": "dropsearch.pattern/v1",
        "variant": "autodropout",
        "sites": [
            {
                "site": "layer1",
                "rate": 0.2,
                "shape": {
                    "size": 3,
                    "stride": 2,
                    "repeat": 2,
                    "rotate": 30,
                    "shear_x": 0.0,
                    "shear_y": 0.15,
                    "share_c": True,
                    "residual": False,
                },
            }
        ],
        "params": {},
        "provenance": {"trial_id": "t1"},
    }
    assert tokens_to_pattern(space, tokens, provenance={"trial_id": "t1"}).to_dict() == expected
    # fc/rate is ignored by autodropout (linear sites take no AutoDropout pattern)
    assert pattern_to_tokens(space, expected) == tokens[: space.position("fc/rate")] + (0,)


def test_param_variants_decode_by_hand():
    sites = (Site("c", "conv", 8), Site("c2", "conv", 8), Site("pool", "features", 8))
    space = build_space(sites, variants=["gsnr", "dropblock", "largedrop", "gradaug", "none"])
    gsnr = tokens_to_pattern(space, _tokens(space, variant="gsnr", gsnr__p=0.2, gsnr__meta=True))
    assert (gsnr.variant, gsnr.sites, gsnr.params) == ("gsnr", (), {"p": 0.2, "meta": True, "estimator": "microbatch"})
    block = tokens_to_pattern(space, _tokens(space, variant="dropblock", dropblock__block_size=5, c2__rate=0.3))
    assert [(s.site, s.rate, s.shape) for s in block.sites] == [
        ("c", 0.0, {"block_size": 5}),
        ("c2", 0.3, {"block_size": 5}),
    ]
    assert block.params == {}
    large = tokens_to_pattern(space, _tokens(space, variant="largedrop", largedrop__rate=0.9))
    assert [(s.site, s.rate) for s in large.sites] == [("pool", 0.9)]
    assert large.params == {"pretrain_epochs": 2, "freeze_bn": True}
    grad = tokens_to_pattern(space, _tokens(space, variant="gradaug", gradaug__resolutions=[1.0, 0.875, 0.75]))
    assert grad.params == {"min_width": 0.7, "n_subnets": 2, "resolutions": [1.0, 0.875, 0.75]}
    assert tokens_to_pattern(space, _tokens(space, variant="none")).to_dict()["sites"] == []


def test_encoding_names_what_the_space_cannot_express():
    sites = (Site("c", "conv", 8), Site("c2", "conv", 8))
    space = build_space(sites, variants=["dropblock", "gsnr"], rates=[0.0, 0.1])
    ok = tokens_to_pattern(space, _tokens(space, variant="dropblock", dropblock__block_size=3)).to_dict()
    bad_rate = json.loads(json.dumps(ok))
    bad_rate["sites"][0]["rate"] = 0.4
    with pytest.raises(ValueError, match="rate of site 'c'.*0.4 is not a choice of decision 'c/rate'"):
        pattern_to_tokens(space, bad_rate)
    mixed = json.loads(json.dumps(ok))
    mixed["sites"][1]["shape"]["block_size"] = 5
    with pytest.raises(ValueError, match="differs from another site's value for 'dropblock/block_size'"):
        pattern_to_tokens(space, mixed)
    missing = json.loads(json.dumps(ok))
    missing["sites"].pop()
    with pytest.raises(ValueError, match=r"has sites \['c', 'c2'\], got \['c'\]"):
        pattern_to_tokens(space, missing)
    with pytest.raises(ValueError, match="'ydrop' is not a choice of decision 'variant'"):
        pattern_to_tokens(space, {"variant": "ydrop"})
    with pytest.raises(ValueError, match=r"params of a 'gsnr' pattern must be \['estimator', 'meta', 'p'\]"):
        pattern_to_tokens(space, {"variant": "gsnr", "params": {"p": 0.1}})
