import pytest

from dropsearch.regularizers.pattern import Site
from dropsearch.search.builtin import CONV_SHAPE_CHOICES, build_space

SITES = (Site("conv1", "conv", 8), Site("fc1", "linear", 32), Site("head", "features", 32))


def test_conv_model_space_by_hand():
    space = build_space(SITES, variants=["bernoulli", "autodropout", "gsnr"], rates=[0.0, 0.25])
    shape = [f"conv1/{k}" for k in ("size", "stride", "repeat", "rotate", "shear_x", "shear_y", "share_c", "residual")]
    assert space.names == (
        "variant",
        "gsnr/p",
        "gsnr/meta",
        "gsnr/estimator",
        "conv1/rate",
        *shape,
        "fc1/rate",
        "head/rate",
    )
    assert space["variant"].choices == ("bernoulli", "autodropout", "gsnr")
    assert space["fc1/rate"].choices == (0.0, 0.25)
    assert space["conv1/size"].choices == (1, 2, 3, 4, 5, 7)
    assert space["conv1/rotate"].choices == (0, 15, 30, 45, 60, 75)
    assert space["conv1/shear_y"].choices == (-0.3, -0.15, 0.0, 0.15, 0.3)
    assert space.sites == SITES


def test_sequence_sites_get_sequence_tokens_and_rates_only_where_used():
    sites = (Site("blocks.0.attn", "sequence", 16), Site("pool", "features", 16))
    space = build_space(sites, variants=["autodropout", "largedrop"])
    assert space.names == (
        "variant",
        "largedrop/rate",
        "largedrop/pretrain_epochs",
        "blocks.0.attn/rate",
        "blocks.0.attn/size",
        "blocks.0.attn/stride",
        "blocks.0.attn/share",
    )  # no pool/rate: neither variant puts a per-site rate on a features site
    assert space["largedrop/rate"].choices == (0.5, 0.8, 0.9, 0.95)


def test_variants_without_matching_sites_are_left_out():
    mlp = (Site("fc1", "linear", 16), Site("fc2", "linear", 16))
    space = build_space(mlp, variants=["spatial", "dropblock", "autodropout", "bernoulli", "gradaug"])
    assert space["variant"].choices == ("bernoulli", "gradaug")
    with pytest.raises(ValueError, match="none of the variants"):
        build_space(mlp, variants=["spatial"])


def test_choices_restrict_the_built_space():
    space = build_space(SITES, variants=["autodropout"], choices={"*/size": [3, 5], "variant": ["autodropout"]})
    assert space["conv1/size"].choices == (3, 5)
    assert space["conv1/stride"].choices == CONV_SHAPE_CHOICES["stride"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variants": ["dropconnect"]}, "unknown variant 'dropconnect'"),
        ({"variants": []}, "variants must not be empty"),
        ({"rates": [0.1, 1.0]}, r"rates entry must be in \[0, 1\), got 1.0"),
        ({"rates": []}, "rates must not be empty"),
        ({"choices": {"conv1/size": [6]}}, "6 is not a choice of decision 'conv1/size'"),
    ],
)
def test_bad_inputs_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_space(SITES, **{"variants": ["bernoulli", "autodropout"], **kwargs})


def test_duplicated_or_slashed_site_names_fail():
    with pytest.raises(ValueError, match="listed more than once"):
        build_space((Site("a", "conv"), Site("a", "linear")))
    with pytest.raises(ValueError, match="must not contain"):
        build_space((Site("a/b", "conv"),))
