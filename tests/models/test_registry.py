from __future__ import annotations

import pytest

import acmix_deploy
from acmix_deploy.models.complexity import count_macs, count_parameters

EXPECTED_PARAMS_M = {
    "acmix_resnet26": 10.49,
    "acmix_resnet38": 14.41,
    "acmix_resnet50": 18.33,
    "acmix_swin_tiny": 28.65,
    "acmix_swin_small": 50.35,
}


def test_list_models_has_the_five_variants():
    assert acmix_deploy.list_models() == list(EXPECTED_PARAMS_M)


@pytest.mark.parametrize(("name", "millions"), EXPECTED_PARAMS_M.items())
def test_parameter_counts_match_the_paper(name, millions):
    model = acmix_deploy.build_model(name)
    assert round(count_parameters(model) / 1e6, 2) == millions
    assert not model.training


def test_swin_macs_match_the_paper():
    assert round(count_macs("acmix_swin_tiny") / 1e9, 2) == 4.65
    assert round(count_macs("acmix_swin_small") / 1e9, 1) == 9.0


def test_overrides_and_unknown_names():
    model = acmix_deploy.build_model("acmix_resnet26", width=16, num_classes=3)
    assert model.fc.out_features == 3 and model.conv1.out_channels == 16
    with pytest.raises(KeyError, match="unknown model"):
        acmix_deploy.build_model("resnet50")
