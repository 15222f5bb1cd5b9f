"""Deploy form of Swin-ACmix: same function, batch-agnostic reshapes, constants precomputed, fewer ops.

Exact rewrites, each proven by a parity test against the reference module (folds in float64):
- the attention scale is folded into the q rows of the qkv projection;
- ``fc`` (a 1x1 conv over the 3*num_heads q/k/v heads, with bias) is folded with qkv into ONE
  1x1 conv ``f_conv`` that maps the block input straight to the 9*head_dim maps of the
  convolution path, in NCHW, so ``dep_conv`` reads it without a transpose. ``dep_conv``
  zero-pads f as the official code does (f, bias included, is exactly the official f);
- where it pays (``dense_conv_pays``: Swin-T stage 1), ``dep_conv ∘ f_conv`` is ONE dense 3x3
  conv of the block input. f's bias is not lost at the borders: the official code zero-pads
  f (bias included), so the bias contributes ``dep_conv(pad0(b_f))``, a constant (H, W, C) map,
  folded into proj's bias. Measured at stage 1 per module: -14% at batch 1 and 8 (at stage 2 it
  is +30%: 9 C² MACs outgrow the factored form); whole Swin-T -1.6% at batch 1, equal at 8;
- ``rate1`` is folded into ``proj``, ``rate2`` into ``dep_conv``;
- only q keeps its bias. k's adds ``q·b_k`` to every logit of a query, which softmax cancels;
  v's passes through the attention unchanged (softmax rows sum to 1), so ``proj(b_v)`` joins the
  output bias, which the factored conv path carries as ``dep_conv``'s bias (free in the conv
  kernel). 34 Adds fewer in Swin-T (120 -> 86): its batch-8 kernel profile's Add time 36-40 ->
  29-31 ms (two runs each); whole model interleaved -1.7% at batch 1, +0.6% at batch 8, within
  this machine's noise;
- relative position bias + shift mask are one constant per block;
- q, k and v come from three Linears of the block input (``QKVProjection``), each with its own
  window-partition Transpose, instead of one 3C Linear, one Transpose and a Split that copies
  the three apart (12 Splits of 3C channels a pixel; the MatMuls run at the same rate with a third
  of the outputs). Swin-T, four interleaved runs on a loaded machine: batch 8 -7%, -4%, -3.6%
  and +20% (that run at load 7, where the former form's own times spread by 55%); batch 1 within
  ±3% (+0.7, -1.6, +3, -0.3%);
- the window-attention output goes back to the (B, H, W, C) map in one Transpose;
- every reshape infers the batch (-1): the official ``window_reverse`` computes the batch
  with Python ``int()`` of a shape, which tracing freezes, so its dynamic-batch export breaks
  at batch 2. LayerNorm and GELU stay ``nn`` modules, which export as single ONNX ops.

Measured (ORT CPU, 2 threads, interleaved) against the former form, whose one projection also
produced f (3C + 9*head_dim outputs, then a Split and an NHWC->NCHW transpose of f): the whole
Swin-T 2-5% faster at batch 1 and 2-2.5% at batch 8 (several runs). Kernel profile, batch 1:
MatMul -3.1 ms, Split -1.2 ms, Transpose -1.0 ms, Conv +3.7 ms (f now runs as a 1x1 Conv). Per
attention module the difference is within the run-to-run noise (±3%) at every stage; a
separate Linear for f (MatMul + transpose of f) measured the same as the 1x1 conv.
Tried and dropped (slower, same exactness): folding ``fc`` into ``dep_conv`` so that the conv
reads q/k/v (the (jj, d) -> (d, jj) channel transpose costs 2.7 ms at stage 1, more than the
projection it saves); ordering the projection (d, jj) instead (the window-partition transpose
then costs 2.9 ms); merging head channels into wider ``dep_conv`` groups (1.6 ms at m = 1,
2.5 / 2.9 / 3.7 ms at m = 2 / 4 / 8 at stage 1); running the residual stream and Linears on 2D
tensors so that ORT fuses biases into Gemm (Gemm measured no faster than MatMul + Add, and
slower than MatMul + the BiasGelu fusion for fc1); keeping the batch its own dimension in every
reshape (ONNX Reshape with 0) so that ORT could fuse each residual Add + LayerNormalization into
SkipLayerNormalization: ORT 1.32 also requires that Add to have one consumer, which a pre-norm
residual stream never has (the sum feeds the next LayerNorm and the next residual), so nothing
fused; two interleaved runs gave batch 1 / batch 8 equal / -7% and +7% / +25%: no gain to keep.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.swin_acmix import SwinACmix, SwinBlockACmix, WindowAttentionACmix
from .fold import linear_from

DENSE_CONV_MAX_RATIO = 3.0


class QKVProjection(nn.Module):
    """q, k and v as three Linears of one input: each gets its own window-partition transpose,
    so no Split copies the 3C-channel projection apart. Only q keeps its bias (see the module
    docstring: k's cancels in the softmax, v's is folded after the attention)."""

    def __init__(self, weight: torch.Tensor, q_bias: torch.Tensor | None) -> None:
        super().__init__()
        c = weight.shape[0] // 3
        self.q = linear_from(weight[:c], q_bias)
        self.k, self.v = (linear_from(weight[i * c : (i + 1) * c], None) for i in (1, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.q(x), self.k(x), self.v(x)


def dense_conv_pays(dim: int, head_dim: int) -> bool:
    """Whether the convolution path runs as one dense 3x3 conv (see the module docstring).

    Dense costs 9 C² MACs a pixel, the factored form 9 hd C (f_conv) + 81 C (dep_conv), but
    ORT's grouped kernel runs dep_conv ~8x below the dense rate: dense pays while it needs no
    more than 3x the factored MACs, i.e. C <= 3 hd + 27 (Swin-T: stage 1 only).
    """
    return 9 * dim * dim <= DENSE_CONV_MAX_RATIO * (9 * head_dim * dim + 81 * dim)


class DeployWindowAttention(nn.Module):
    """(B, H, W, C) -> (B, H, W, C); q/k/v from one Linear, the conv path from the NCHW input.

    ``dense_conv``: the conv path as one dense 3x3 conv (True), as ``f_conv`` + grouped
    ``dep_conv`` (False), or as :func:`dense_conv_pays` decides (None).
    """

    def __init__(
        self,
        attn: WindowAttentionACmix,
        mask: torch.Tensor | None,
        resolution: tuple[int, int],
        dense_conv: bool | None = None,
    ) -> None:
        super().__init__()
        c, heads = attn.dim, attn.num_heads
        hd = c // heads
        window = attn.window_size[0]
        self.dim, self.heads, self.head_dim, self.window = c, heads, hd, window
        self.resolution = resolution
        self.dense = dense_conv_pays(c, hd) if dense_conv is None else dense_conv
        f64 = torch.float64
        with torch.no_grad():
            w_qkv = attn.qkv.weight.detach().to(f64)
            b_qkv = attn.qkv.bias.detach().to(f64) if attn.qkv.bias is not None else torch.zeros(3 * c, dtype=f64)
            # fc over heads: f[d*9 + m] = sum_j fc_w[m, j] * qkv[j*hd + d] + fc_b[m]  (j over 3*heads groups)
            fc_w = attn.fc.weight.detach().to(f64).reshape(9, 3 * heads)
            fc_b = attn.fc.bias.detach().to(f64) if attn.fc.bias is not None else torch.zeros(9, dtype=f64)
            w_f = torch.einsum("mj,jdc->dmc", fc_w, w_qkv.reshape(3 * heads, hd, c)).reshape(hd * 9, c)
            b_f = (torch.einsum("mj,jd->dm", fc_w, b_qkv.reshape(3 * heads, hd)) + fc_b).reshape(hd * 9)
            # Attention scale into q (f above used the unscaled q).
            scale = torch.ones(3 * c, dtype=f64)
            scale[:c] = attn.scale
            q_bias = (b_qkv[:c] * scale[:c]).float() if attn.qkv.bias is not None else None
            self.in_proj = QKVProjection((w_qkv * scale[:, None]).float(), q_bias)
            rate1, rate2 = attn.rate1.detach().to(f64), attn.rate2.detach().to(f64)
            w_proj = attn.proj.weight.detach().to(f64) * rate1
            self.proj = linear_from(w_proj.float(), None)
            # (C,), or an (H, W, C) map when dense; v's bias passes through the attention (rows of
            # softmax sum to 1), so proj maps it to a constant
            out_bias = attn.proj.bias.detach().to(f64) * rate1 + w_proj @ b_qkv[2 * c :]
            dep = attn.dep_conv.weight.detach().to(f64) * rate2  # (C, 9, 3, 3), output d*heads + j
            if attn.dep_conv.bias is not None:  # not in official checkpoints, but keep the function if present
                out_bias = out_bias + attn.dep_conv.bias.detach().to(f64) * rate2
            if self.dense:
                # dep_conv ∘ f_conv as one conv; f's bias, zero-padded as the official f is, is the
                # same (H, W, C) map for every input, added with proj's bias
                wd = torch.einsum("djmyx,dmc->djcyx", dep.reshape(hd, heads, 9, 3, 3), w_f.reshape(hd, 9, c))
                self.f_conv = nn.Identity()
                self.dep_conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
                self.dep_conv.weight.copy_(wd.reshape(c, c, 3, 3))
                f_bias = b_f.reshape(1, 9 * hd, 1, 1).expand(1, 9 * hd, *resolution)
                out_bias = out_bias + F.conv2d(f_bias, dep, None, padding=1, groups=hd)[0].permute(1, 2, 0)
            else:
                self.f_conv = nn.Conv2d(c, 9 * hd, 1)
                self.f_conv.weight.copy_(w_f.reshape(9 * hd, c, 1, 1))
                self.f_conv.bias.copy_(b_f)
                # the output bias rides in dep_conv's bias (free in the conv kernel): one Add fewer
                self.dep_conv = nn.Conv2d(9 * hd, c, 3, padding=1, groups=hd, bias=True)
                self.dep_conv.weight.copy_(dep)
                self.dep_conv.bias.copy_(out_bias)
            self.register_buffer("out_bias", out_bias.float().contiguous() if self.dense else None)
            bias = attn.relative_position_bias().unsqueeze(0)  # 1, heads, N, N
            if mask is not None:
                bias = bias + mask.unsqueeze(1)  # nW, heads, N, N
            self.register_buffer("attn_bias", bias.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        c, heads, hd, win = self.dim, self.heads, self.head_dim, self.window
        n, nh, nw = win * win, h // win, w // win
        out_conv = self.dep_conv(self.f_conv(x.permute(0, 3, 1, 2))).permute(0, 2, 3, 1)

        # Window partition of q, k, v, one transpose each: -> B*nW, heads, N, hd
        q, k, v = (
            t.reshape(-1, nh, win, nw, win, heads, hd).permute(0, 1, 3, 5, 2, 4, 6).reshape(-1, heads, n, hd)
            for t in self.in_proj(x)
        )
        attn = q @ k.transpose(-2, -1)
        attn = (attn.reshape(-1, self.attn_bias.shape[0], heads, n, n) + self.attn_bias).reshape(-1, heads, n, n)
        attn = F.softmax(attn, dim=-1)
        # heads merged and windows reversed in one transpose: -> B, nh, win, nw, win, heads, hd
        out = (attn @ v).reshape(-1, nh, nw, heads, win, win, hd).permute(0, 1, 4, 2, 5, 3, 6)
        out = self.proj(out.reshape(-1, h, w, c))
        if self.out_bias is not None:  # the dense conv path's (H, W, C) bias map
            out = out + self.out_bias
        return out + out_conv


class DeploySwinBlock(nn.Module):
    """One (shifted) window block; tokens (B, H*W, C) in and out."""

    def __init__(self, block: SwinBlockACmix) -> None:
        super().__init__()
        self.resolution = block.input_resolution
        self.shift = block.shift_size
        self.dim = block.dim
        self.norm1 = block.norm1
        self.attn = DeployWindowAttention(block.attn, block.attn_mask, block.input_resolution)
        self.norm2 = block.norm2
        self.mlp = block.mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        y = self.norm1(x).reshape(-1, h, w, self.dim)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(y)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + y.reshape(-1, h * w, self.dim)
        return x + self.mlp(self.norm2(x))


class DeployPatchMerging(nn.Module):
    """Patch merging as one reshape + transpose (no strided slices)."""

    def __init__(self, merge) -> None:
        super().__init__()
        self.resolution, self.dim = merge.input_resolution, merge.dim
        self.norm, self.reduction = merge.norm, merge.reduction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        c = self.dim
        # x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2] concatenated on channels,
        # as one reshape + transpose: (B, h/2, dh, w/2, dw, C) -> (B, h/2, w/2, dw, dh, C).
        x = x.reshape(-1, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5).reshape(-1, (h // 2) * (w // 2), 4 * c)
        return self.reduction(self.norm(x))


class DeploySwinACmix(nn.Module):
    """Swin-ACmix in deploy form; input (B, 3, img, img), any B."""

    def __init__(self, model: SwinACmix) -> None:
        super().__init__()
        self.img_size = model.img_size
        self.embed_dim = model.embed_dim
        res = model.patch_embed.patches_resolution
        self.num_patches = res[0] * res[1]
        self.patch_embed = model.patch_embed.proj
        self.patch_norm = model.patch_embed.norm
        self.absolute_pos_embed = model.absolute_pos_embed if model.ape else None
        blocks: list[nn.Module] = []
        for layer in model.layers:
            blocks += [DeploySwinBlock(b) for b in layer.blocks]
            if layer.downsample is not None:
                blocks.append(DeployPatchMerging(layer.downsample))
        self.blocks = nn.Sequential(*blocks)
        self.norm = model.norm
        self.head = model.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # reshape with constants: flatten(2) would export as Shape/Slice/Concat arithmetic
        x = self.patch_embed(x).reshape(-1, self.embed_dim, self.num_patches).transpose(1, 2)
        if self.patch_norm is not None:
            x = self.patch_norm(x)
        if self.absolute_pos_embed is not None:
            x = x + self.absolute_pos_embed
        x = self.blocks(x)
        return self.head(self.norm(x).mean(dim=1))
