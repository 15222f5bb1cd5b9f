"""Functional ground-truth forward passes for the official ACmix models.

This module restates, as plain functions over a state dict with the official
key names, the eval-mode forward passes of

* the ACmix module and the ACmix ResNet (LeapLabTHU/ACmix, ``ResNet/``), and
* the ACmix Swin Transformer (LeapLabTHU/ACmix, ``Swin-Transformer/``).

It deliberately depends on nothing but ``torch`` / ``torch.nn.functional`` (in
particular not on ``acmix_deploy``) and performs the same tensor operations in
the same order as the official code, so float32 results agree with it to
roughly 1e-6.  Deviations from the official code:

* eval mode only: no dropout / drop-path, BatchNorm uses running statistics;
* the positional grid of ACmix is placed on the input's device and dtype
  (the official code hard-codes ``.cuda()``);
* the Swin relative-position index and shifted-window attention mask are
  recomputed from the configuration instead of being read from the buffers.

Facts about the official parameterisation that the functions rely on:

* ``dep_conv`` has no bias in either model (``reset_parameters`` replaces it
  with ``None``); ``fc`` has no bias in the ResNet ACmix but has one in the
  Swin ACmix; ``conv1/2/3`` and ``conv_p`` of the ResNet ACmix have biases;
* ``rate1`` / ``rate2`` have shape ``[1]``;
* the ResNet ``dep_conv`` uses padding 1 regardless of ``k_conv``;
* the Swin ACmix convolution path is hard-wired to a 3x3 kernel (9 taps).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

StateDict = dict[str, torch.Tensor]

_BN_EPS = 1e-5
_LN_EPS = 1e-5

__all__ = [
    "acmix_block_forward",
    "relative_position_index",
    "resnet_forward",
    "shift_attn_mask",
    "swin_forward",
]


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------
def _bn(sd: StateDict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(
        x,
        sd[prefix + "running_mean"],
        sd[prefix + "running_var"],
        sd[prefix + "weight"],
        sd[prefix + "bias"],
        training=False,
        momentum=0.1,
        eps=_BN_EPS,
    )


def _ln(sd: StateDict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    w = sd[prefix + "weight"]
    return F.layer_norm(x, (w.shape[0],), w, sd[prefix + "bias"], _LN_EPS)


def _linear(sd: StateDict, prefix: str, x: torch.Tensor, bias: bool = True) -> torch.Tensor:
    return F.linear(x, sd[prefix + "weight"], sd[prefix + "bias"] if bias else None)


def _pos_grid(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """(1, 2, h, w) grid; channel 0 = x in [-1, 1] (along W), channel 1 = y.

    The official code evaluates ``linspace`` on the CPU and then moves it to the
    GPU, so the values are generated on the CPU here as well and only then moved
    to the input's device.
    """
    xs = torch.linspace(-1.0, 1.0, w, dtype=like.dtype)
    ys = torch.linspace(-1.0, 1.0, h, dtype=like.dtype)
    grid_x = xs.unsqueeze(0).repeat(h, 1)
    grid_y = ys.unsqueeze(1).repeat(1, w)
    grid = torch.cat([grid_x.unsqueeze(0), grid_y.unsqueeze(0)], 0).unsqueeze(0)
    return grid.to(like.device)


def _local_windows(t: torch.Tensor, k: int, stride: int) -> torch.Tensor:
    """Reflection-pad by k//2 and extract all k x k neighbourhoods (flattened)."""
    p = k // 2  # == (dilation*(k-1)+1)//2 with dilation 1
    return F.unfold(F.pad(t, (p, p, p, p), mode="reflect"), kernel_size=k, padding=0, stride=stride)


# ---------------------------------------------------------------------------
# ACmix module (ResNet flavour)
# ---------------------------------------------------------------------------
def acmix_block_forward(
    sd: StateDict,
    prefix: str,
    x: torch.Tensor,
    *,
    head: int,
    k_att: int,
    k_conv: int,
    stride: int,
) -> torch.Tensor:
    """Official ``ACmix.forward`` (eval). Keys: ``{prefix}conv1.weight`` ..."""
    q = F.conv2d(x, sd[prefix + "conv1.weight"], sd[prefix + "conv1.bias"])
    k = F.conv2d(x, sd[prefix + "conv2.weight"], sd[prefix + "conv2.bias"])
    v = F.conv2d(x, sd[prefix + "conv3.weight"], sd[prefix + "conv3.bias"])
    b, c, h, w = q.shape
    hd = c // head
    scale = float(hd) ** -0.5
    ho, wo = h // stride, w // stride
    kk = k_att * k_att

    # ---- attention path -------------------------------------------------
    pe = F.conv2d(_pos_grid(h, w, x), sd[prefix + "conv_p.weight"], sd[prefix + "conv_p.bias"])
    q_a = q.view(b * head, hd, h, w) * scale
    k_a = k.view(b * head, hd, h, w)
    v_a = v.view(b * head, hd, h, w)
    if stride > 1:
        q_a = q_a[:, :, ::stride, ::stride]
        q_pe = pe[:, :, ::stride, ::stride]
    else:
        q_pe = pe

    k_win = _local_windows(k_a, k_att, stride).view(b * head, hd, kk, ho, wo)
    pe_win = _local_windows(pe, k_att, stride).view(1, hd, kk, ho, wo)
    logits = (q_a.unsqueeze(2) * (k_win + q_pe.unsqueeze(2) - pe_win)).sum(1)  # (b*head, kk, ho, wo)
    weights = torch.softmax(logits, dim=1)
    v_win = _local_windows(v_a, k_att, stride).view(b * head, hd, kk, ho, wo)
    out_att = (weights.unsqueeze(1) * v_win).sum(2).view(b, c, ho, wo)

    # ---- convolution path -----------------------------------------------
    qkv_heads = torch.cat(
        [q.view(b, head, hd, h * w), k.view(b, head, hd, h * w), v.view(b, head, hd, h * w)], 1
    )  # (b, 3*head, hd, h*w)
    shifts = F.conv2d(qkv_heads, sd[prefix + "fc.weight"], None)  # (b, k_conv^2, hd, h*w)
    shifts = shifts.permute(0, 2, 1, 3).reshape(x.shape[0], -1, x.shape[-2], x.shape[-1])
    out_conv = F.conv2d(shifts, sd[prefix + "dep_conv.weight"], None, stride=stride, padding=1, groups=hd)

    return sd[prefix + "rate1"] * out_att + sd[prefix + "rate2"] * out_conv


# ---------------------------------------------------------------------------
# ACmix ResNet (Bottleneck v1.5 with ACmix as conv2)
# ---------------------------------------------------------------------------
_EXPANSION = 4
_PLANES = (64, 128, 256, 512)


def _bottleneck(
    sd: StateDict, p: str, x: torch.Tensor, *, stride: int, has_down: bool, k_att: int, head: int, k_conv: int
) -> torch.Tensor:
    out = F.relu(_bn(sd, p + "bn1.", F.conv2d(x, sd[p + "conv1.weight"])))
    out = acmix_block_forward(sd, p + "conv2.", out, head=head, k_att=k_att, k_conv=k_conv, stride=stride)
    out = F.relu(_bn(sd, p + "bn2.", out))
    out = _bn(sd, p + "bn3.", F.conv2d(out, sd[p + "conv3.weight"]))
    if has_down:
        identity = _bn(sd, p + "downsample.1.", F.conv2d(x, sd[p + "downsample.0.weight"], stride=stride))
    else:
        identity = x
    return F.relu(out + identity)


def resnet_forward(
    sd: StateDict,
    x: torch.Tensor,
    *,
    layers: Sequence[int],
    k_att: int = 7,
    head: int = 4,
    k_conv: int = 3,
) -> torch.Tensor:
    """Official ``ACmix_ResNet(layers, k_att, head, k_conv)`` forward (eval)."""
    x = F.conv2d(x, sd["conv1.weight"], stride=2, padding=3)
    x = F.relu(_bn(sd, "bn1.", x))
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)

    inplanes = 64
    for li, (planes, n_blocks) in enumerate(zip(_PLANES, layers, strict=True)):
        first_stride = 1 if li == 0 else 2
        for bi in range(n_blocks):
            stride = first_stride if bi == 0 else 1
            has_down = bi == 0 and (stride != 1 or inplanes != planes * _EXPANSION)
            x = _bottleneck(
                sd,
                f"layer{li + 1}.{bi}.",
                x,
                stride=stride,
                has_down=has_down,
                k_att=k_att,
                head=head,
                k_conv=k_conv,
            )
            inplanes = planes * _EXPANSION

    x = torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)
    return F.linear(x, sd["fc.weight"], sd["fc.bias"])


# ---------------------------------------------------------------------------
# Swin helpers: relative position index and shifted-window mask
# ---------------------------------------------------------------------------
def relative_position_index(window: int) -> torch.Tensor:
    """(window^2, window^2) int64 index into the (2w-1)^2 bias table."""
    r = torch.arange(window)
    rows = r.repeat_interleave(window)  # token t -> (t // w, t % w)
    cols = r.repeat(window)
    d_row = rows[:, None] - rows[None, :] + (window - 1)
    d_col = cols[:, None] - cols[None, :] + (window - 1)
    return d_row * (2 * window - 1) + d_col


def _to_windows(t: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, window, window, C), windows in row-major order."""
    B, H, W, C = t.shape
    t = t.view(B, H // window, window, W // window, window, C)
    return t.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, window, window, C)


def _from_windows(t: torch.Tensor, window: int, H: int, W: int) -> torch.Tensor:
    """Inverse of :func:`_to_windows`."""
    B = int(t.shape[0] / (H * W / window / window))
    t = t.view(B, H // window, W // window, window, window, -1)
    return t.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, H, W, -1)


def shift_attn_mask(H: int, W: int, window: int, shift: int) -> torch.Tensor:
    """(nW, window^2, window^2) float32 mask: 0 within a region, -100 across."""

    def band(n: int) -> torch.Tensor:
        i = torch.arange(n)
        return (i >= n - window).long() + (i >= n - shift).long()  # 0, 1, 2

    region = (band(H)[:, None] * 3 + band(W)[None, :]).to(torch.float32)  # (H, W)
    win_ids = _to_windows(region.view(1, H, W, 1), window).view(-1, window * window)
    same = win_ids[:, None, :] == win_ids[:, :, None]
    zero = torch.zeros((), dtype=torch.float32)
    return torch.where(same, zero, zero - 100.0)


# ---------------------------------------------------------------------------
# ACmix Swin Transformer
# ---------------------------------------------------------------------------
def _window_acmix(
    sd: StateDict, p: str, x: torch.Tensor, H: int, W: int, *, window: int, heads: int, mask: torch.Tensor | None
) -> torch.Tensor:
    """Official ``WindowAttention_acmix.forward`` (eval); x: (B, H, W, C)."""
    B, C = x.shape[0], x.shape[-1]
    qkv = _linear(sd, p + "qkv.", x)  # (B, H, W, 3C)

    # convolution path
    f = qkv.reshape(B, H * W, 3 * heads, -1).permute(0, 2, 1, 3)  # (B, 3*heads, HW, C/heads)
    f = F.conv2d(f, sd[p + "fc.weight"], sd[p + "fc.bias"])  # (B, 9, HW, C/heads)
    f = f.permute(0, 3, 1, 2).reshape(B, 9 * C // heads, H, W)
    out_conv = F.conv2d(f, sd[p + "dep_conv.weight"], None, padding=1, groups=C // heads).permute(0, 2, 3, 1)

    # windowed self-attention path
    win = _to_windows(qkv, window)
    nB = win.shape[0]
    N = window * window
    win = win.view(-1, N, 3 * C)
    win = win.reshape(nB, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
    q, k, v = win[0], win[1], win[2]
    q = q * (C // heads) ** -0.5
    logits = q @ k.transpose(-2, -1)

    idx = relative_position_index(window).to(x.device)
    bias = sd[p + "relative_position_bias_table"][idx.view(-1)].view(N, N, -1)
    logits = logits + bias.permute(2, 0, 1).contiguous().unsqueeze(0)
    if mask is not None:
        nW = mask.shape[0]
        logits = logits.view(nB // nW, nW, heads, N, N) + mask.unsqueeze(1).unsqueeze(0)
        logits = logits.view(-1, heads, N, N)
    attn = torch.softmax(logits, dim=-1)

    out = (attn @ v).transpose(1, 2).reshape(nB, N, C)
    out = _linear(sd, p + "proj.", out)
    out = _from_windows(out.view(-1, window, window, C), window, H, W)

    return sd[p + "rate1"] * out + sd[p + "rate2"] * out_conv


def _swin_block(
    sd: StateDict, p: str, x: torch.Tensor, H: int, W: int, *, window: int, shift: int, heads: int, mask
) -> torch.Tensor:
    B, _L, C = x.shape
    shortcut = x
    y = _ln(sd, p + "norm1.", x).view(B, H, W, C)
    if shift > 0:
        y = torch.roll(y, shifts=(-shift, -shift), dims=(1, 2))
    y = _window_acmix(sd, p + "attn.", y, H, W, window=window, heads=heads, mask=mask)
    if shift > 0:
        y = torch.roll(y, shifts=(shift, shift), dims=(1, 2))
    x = shortcut + y.reshape(B, H * W, C)

    m = _ln(sd, p + "norm2.", x)
    m = _linear(sd, p + "mlp.fc2.", F.gelu(_linear(sd, p + "mlp.fc1.", m)))
    return x + m


def _patch_merge(sd: StateDict, p: str, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
    B, _L, C = x.shape
    assert H % 2 == 0 and W % 2 == 0, f"PatchMerging needs even resolution, got {H}x{W}"
    x = x.view(B, H, W, C)
    x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
    x = x.view(B, -1, 4 * C)
    return F.linear(_ln(sd, p + "norm.", x), sd[p + "reduction.weight"])


def swin_forward(
    sd: StateDict,
    x: torch.Tensor,
    *,
    patch_size: int = 4,
    window_size: int = 7,
    embed_dim: int = 96,
    depths: Sequence[int],
    num_heads: Sequence[int],
    mlp_ratio: float = 4.0,
) -> torch.Tensor:
    """Official ``SwinTransformer_acmix`` forward (eval, ape=False, patch_norm=True).

    ``embed_dim`` and ``mlp_ratio`` are implied by the weights; they are only
    checked against them (signature parity with the model constructor).
    """
    assert sd["patch_embed.proj.weight"].shape[0] == embed_dim, "embed_dim does not match the weights"
    assert sd["layers.0.blocks.0.mlp.fc1.weight"].shape[0] == int(embed_dim * mlp_ratio), "mlp_ratio mismatch"
    x = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=patch_size)
    H, W = x.shape[-2], x.shape[-1]
    x = _ln(sd, "patch_embed.norm.", x.flatten(2).transpose(1, 2))

    n_stages = len(depths)
    for si in range(n_stages):
        if min(H, W) <= window_size:
            win, base_shift = min(H, W), 0
        else:
            win, base_shift = window_size, window_size // 2
        mask = None
        if base_shift > 0 and depths[si] > 1:
            mask = shift_attn_mask(H, W, win, base_shift).to(device=x.device, dtype=x.dtype)
        for bi in range(depths[si]):
            shift = base_shift if bi % 2 == 1 else 0
            x = _swin_block(
                sd,
                f"layers.{si}.blocks.{bi}.",
                x,
                H,
                W,
                window=win,
                shift=shift,
                heads=num_heads[si],
                mask=mask if shift > 0 else None,
            )
        if si < n_stages - 1:
            x = _patch_merge(sd, f"layers.{si}.downsample.", x, H, W)
            H, W = H // 2, W // 2

    x = _ln(sd, "norm.", x)
    x = torch.flatten(F.adaptive_avg_pool1d(x.transpose(1, 2), 1), 1)
    return _linear(sd, "head.", x)
