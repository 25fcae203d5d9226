"""Every torchvision classification model against its published metadata.

torchvision's ``meta["_ops"]`` ("GFLOPS") counts multiply-adds of conv, linear and matmul/
attention in billions, rounded to 3 decimals; ``meta["num_params"]`` is the parameter count.
"""

import pytest

from edgecnn.analysis import profile
from edgecnn.graph.from_torch import graph_from_module
from edgecnn.models.zoo import build_zoo_model, zoo_entry, zoo_names

NAMES = zoo_names()


def test_zoo_has_the_whole_classification_family():
    assert len(NAMES) >= 80
    for family in ("vit_b_16", "swin_t", "convnext_tiny", "regnet_y_400mf", "maxvit_t"):
        assert family in NAMES


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_macs_and_params_match_torchvision_metadata(name):
    entry = zoo_entry(name)
    graph = graph_from_module(build_zoo_model(name), entry.input_shape, name)
    result = profile(graph)
    published = entry.gmacs * 1e9
    assert abs(result.totals.macs - published) <= max(0.01 * published, 0.0005e9), (
        result.totals.macs,
        published,
    )
    assert result.totals.params == entry.num_params
    assert result.totals.unknown_ops == []
    assert result.totals.macs == sum(r.macs for r in result.layers)
