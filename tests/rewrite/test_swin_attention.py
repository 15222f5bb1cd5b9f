"""Parity of the Swin-ACmix deploy window attention against the reference module, in torch and ONNX Runtime."""

from __future__ import annotations

import io

import onnx
import pytest
import torch

from acmix_deploy.models.swin_acmix import WindowAttentionACmix, shift_attention_mask
from acmix_deploy.rewrite.swin import DeployWindowAttention, dense_conv_pays
from acmix_deploy.runtimes.onnxruntime import ort_session
from tests.conftest import randomize

TOL = 1e-5


def attention_pair(dim, heads, side, window, shifted, dense_conv=None):
    attn = randomize(WindowAttentionACmix(dim, window, heads), seed=dim + side)
    mask = shift_attention_mask(side, side, window, window // 2) if shifted else None
    deploy = DeployWindowAttention(attn, mask, (side, side), dense_conv=dense_conv).eval()
    return (lambda x: attn(x, mask=mask)), deploy


def assert_close(out: torch.Tensor, ref: torch.Tensor) -> None:
    assert out.shape == ref.shape
    assert (out - ref).abs().max().item() <= TOL * max(1.0, ref.abs().max().item())


@pytest.mark.parametrize(
    ("dim", "heads", "side", "window", "shifted"),
    [
        (24, 1, 16, 4, False),  # several windows
        (24, 1, 16, 4, True),  # shift mask, fc bias at the zero-padded borders
        (48, 2, 8, 4, True),
        (96, 4, 4, 4, False),  # one window = the whole map
        (36, 3, 14, 7, True),  # Swin-T's 7 px windows and 3 heads
    ],
)
@pytest.mark.parametrize("dense_conv", [True, False])
def test_deploy_attention_matches_reference(dim, heads, side, window, shifted, dense_conv):
    reference, deploy = attention_pair(dim, heads, side, window, shifted, dense_conv)
    assert deploy.dense == dense_conv
    for batch in (1, 2, 7):
        x = torch.randn(batch, side, side, dim, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            assert_close(deploy(x), reference(x))


def export_attention(deploy) -> bytes:
    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            deploy,
            (torch.randn(2, 8, 8, 48),),
            buffer,
            dynamo=False,
            opset_version=20,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        )
    return buffer.getvalue()


@pytest.mark.parametrize("dense_conv", [True, False])
def test_exported_attention_matches_reference_in_onnxruntime(dense_conv):
    """The ONNX of the module alone, dynamic batch, run at batches 1/2/7/32 against the reference."""
    reference, deploy = attention_pair(48, 2, 8, 4, True, dense_conv)
    session = ort_session(export_attention(deploy), threads=1)
    for batch in (1, 2, 7, 32):
        x = torch.randn(batch, 8, 8, 48, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            ref = reference(x)
        assert_close(torch.from_numpy(session.run(None, {"x": x.numpy()})[0]), ref)


def test_dense_conv_path_where_it_measured_faster():
    assert dense_conv_pays(96, 32)  # Swin-T stage 1
    assert not dense_conv_pays(192, 32)  # stage 2: 9 C² outgrows the factored form
    assert not dense_conv_pays(768, 32)


def test_q_k_v_come_from_three_projections_without_a_split():
    """Each of q, k, v is its own MatMul of the block input with its own window transpose: no Split
    copies a 3C-channel projection apart (measured 2-7% faster on Swin-T at batch 8)."""
    _, deploy = attention_pair(48, 2, 8, 4, True, False)
    graph = onnx.load_from_string(export_attention(deploy)).graph
    ops = [n.op_type for n in graph.node]
    assert "Split" not in ops
    projections = [n for n in graph.node if n.op_type == "MatMul" and "/in_proj/" in n.name]
    assert len(projections) == 3 and all(n.input[0] == "x" for n in projections)


@pytest.mark.parametrize("dense_conv", [True, False])
def test_k_and_v_biases_are_folded_away(dense_conv):
    """k's bias cancels in the softmax and v's passes through it into the output bias: only q keeps
    an Add; the factored conv path carries the output bias in dep_conv's (fused) bias."""
    attn = randomize(WindowAttentionACmix(24, 4, 2), seed=9)
    assert attn.qkv.bias[24:].abs().min() > 0  # k and v biases that matter
    mask = shift_attention_mask(8, 8, 4, 2)
    deploy = DeployWindowAttention(attn, mask, (8, 8), dense_conv=dense_conv).eval()
    assert deploy.in_proj.k.bias is None and deploy.in_proj.v.bias is None
    assert deploy.in_proj.q.bias is not None
    if dense_conv:
        assert deploy.out_bias is not None and deploy.dep_conv.bias is None
    else:
        assert deploy.out_bias is None and deploy.dep_conv.bias is not None
    x = torch.randn(2, 8, 8, 24, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert_close(deploy(x), attn(x, mask=mask))
