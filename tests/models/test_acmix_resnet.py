"""ACmix-ResNet against the independent functional restatement of the official forward."""

from __future__ import annotations

import pytest
import torch

from acmix_deploy.models import ACmix, build_model
from tests.conftest import SMALL_RESNET, randomize
from tests.reference import official_forward as ref

TOL = 1e-5


@pytest.mark.parametrize(
    ("k_att", "head", "stride", "size"), [(7, 4, 1, 12), (7, 4, 2, 12), (5, 2, 1, 9), (3, 8, 2, 8)]
)
def test_acmix_block_matches_official(k_att, head, stride, size):
    block = randomize(ACmix(16, 32, kernel_att=k_att, head=head, stride=stride), seed=3)
    x = torch.randn(3, 16, size, size)
    with torch.no_grad():
        ours = block(x)
        theirs = ref.acmix_block_forward(block.state_dict(), "", x, head=head, k_att=k_att, k_conv=3, stride=stride)
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() <= TOL


@pytest.mark.parametrize("name", ["acmix_resnet26", "acmix_resnet38", "acmix_resnet50"])
def test_small_resnet_matches_official(name, make_input):
    model = randomize(build_model(name, **SMALL_RESNET), seed=5)
    size = 64 if model.layers_cfg[3] == 1 else 128  # later layer4 blocks need >= 4 px for reflect padding
    x = make_input(2, size)
    with torch.no_grad():
        ours = model(x)
        theirs = ref.resnet_forward(model.state_dict(), x, layers=model.layers_cfg)
    assert ours.shape == (2, 10)
    assert (ours - theirs).abs().max().item() <= TOL * max(1.0, theirs.abs().max().item())
    assert torch.equal(ours.argmax(1), theirs.argmax(1))


def test_no_dep_conv_bias_like_official():
    model = build_model("acmix_resnet26", **SMALL_RESNET)
    keys = model.state_dict().keys()
    assert "layer1.0.conv2.fc.weight" in keys and "layer1.0.conv2.fc.bias" not in keys
    assert "layer1.0.conv2.dep_conv.weight" in keys and "layer1.0.conv2.dep_conv.bias" not in keys
    assert model.state_dict()["layer1.0.conv2.rate1"].shape == (1,)


def test_state_dict_keys_match_official_naming():
    keys = set(build_model("acmix_resnet50").state_dict())
    for key in [
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.downsample.0.weight",
        "layer2.0.conv2.conv_p.bias",
        "layer4.2.conv2.conv3.weight",
        "layer4.2.bn3.num_batches_tracked",
        "fc.bias",
    ]:
        assert key in keys


@pytest.mark.slow
def test_full_resnet50_matches_official(make_input):
    model = randomize(build_model("acmix_resnet50"), seed=7)
    x = make_input(1, 224)
    with torch.no_grad():
        ours = model(x)
        theirs = ref.resnet_forward(model.state_dict(), x, layers=(3, 4, 6, 3))
    assert (ours - theirs).abs().max().item() <= TOL * max(1.0, theirs.abs().max().item())
    assert torch.equal(ours.argmax(1), theirs.argmax(1))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_resnet_runs_on_cuda_like_cpu(make_input):
    model = randomize(build_model("acmix_resnet26", **SMALL_RESNET), seed=5)
    x = make_input(2, 64)
    with torch.no_grad():
        cpu = model(x)
        gpu = model.cuda()(x.cuda()).cpu()
    assert (cpu - gpu).abs().max().item() <= 1e-4
