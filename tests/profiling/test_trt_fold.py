"""TensorRT layer times folded onto blocks and ACmix branches, from inspector JSON in the documented format.

No GPU here: the inspector JSON is written as TensorRT writes it for an engine built with
``ProfilingVerbosity.DETAILED`` (``Layers`` with ``Name``, ``LayerType``, ``Metadata`` holding
``[ONNX Layer: ...]`` entries separated by ``\\x1f``, ``Groups`` for convolutions), with the node
names our exporter gives an ACmix-ResNet and a Swin-ACmix. Unverified against a real engine here.
"""

from __future__ import annotations

import json

from acmix_deploy.profiling.trt_fold import fold_layer_times, nodes_from_name, op_of, read_inspector_layers

RESNET = {"layers": [1, 1, 1, 1], "width": 16, "num_classes": 10}
SEP = "\x1f"


def _layer(name: str, nodes: list[str], layer_type: str = "CaskConvolution", **extra) -> dict:
    metadata = SEP.join(f"[ONNX Layer: {n}]" for n in nodes)
    return {"Name": name, "LayerType": layer_type, "Metadata": metadata, **extra}


INSPECTOR = {
    "Layers": [
        _layer("/conv1/Conv + /relu/Relu", ["/conv1/Conv", "/relu/Relu"], Groups=1),
        _layer("/blocks/blocks.0/acmix/Conv", ["/blocks/blocks.0/acmix/Conv"], Groups=1),
        _layer("/blocks/blocks.0/acmix/Conv_1", ["/blocks/blocks.0/acmix/Conv_1"], Groups=4),
        _layer("myl0_3", ["/blocks/blocks.1/acmix/MatMul", "/blocks/blocks.1/acmix/Softmax"], "kgen"),
        _layer("myl0_4", ["/blocks/blocks.1/acmix/MatMul_1", "/blocks/blocks.1/acmix/Conv_1"], "kgen", Groups=4),
        _layer("Reformatting CopyNode for Input Tensor 0 to /blocks/blocks.2/acmix/Conv", [], "Reformat"),
        _layer("/blocks/blocks.2/Add + /blocks/blocks.3/conv1/Conv",
               ["/blocks/blocks.2/Add", "/blocks/blocks.3/conv1/Conv"]),
    ],
    "Bindings": ["input", "logits"],
}  # fmt: skip
TIMES = {
    "/conv1/Conv + /relu/Relu": 0.5,
    "/blocks/blocks.0/acmix/Conv": 0.25,
    "/blocks/blocks.0/acmix/Conv_1": 0.125,
    "myl0_3": 1.0,
    "myl0_4": 0.75,
    "Reformatting CopyNode for Input Tensor 0 to /blocks/blocks.2/acmix/Conv": 0.0625,
    "/blocks/blocks.2/Add + /blocks/blocks.3/conv1/Conv": 0.375,
}


def test_inspector_layers_give_their_onnx_nodes_and_groups():
    layers = read_inspector_layers(json.dumps(INSPECTOR))
    assert layers["myl0_3"].nodes == ("/blocks/blocks.1/acmix/MatMul", "/blocks/blocks.1/acmix/Softmax")
    assert layers["/blocks/blocks.0/acmix/Conv_1"].groups == 4
    assert layers["Reformatting CopyNode for Input Tensor 0 to /blocks/blocks.2/acmix/Conv"].nodes == ()
    assert read_inspector_layers("not json") == {} and read_inspector_layers({"Layers": "?"}) == {}
    assert op_of("/blocks/blocks.0/acmix/Conv_12") == "Conv" and op_of("/blocks/blocks.1/attn/Softmax") == "Softmax"
    assert nodes_from_name("/a/Conv + /a/Relu + Reformat") == ("/a/Conv", "/a/Relu")


def test_times_fold_onto_blocks_and_branches_and_fused_layers_are_shown_as_such():
    folded = fold_layer_times(TIMES, json.dumps(INSPECTOR), "acmix_resnet", RESNET)
    assert folded.total_ms == sum(TIMES.values())
    assert folded.blocks["stem/head"] == {"other": 0.5}
    assert folded.blocks["layer1.0"] == {"projection": 0.25, "convolution": 0.125}  # groups tell them apart
    assert folded.blocks["layer2.0"] == {"attention": 1.0, "attention+convolution": 0.75}
    assert folded.blocks["layout"] == {"layout": 0.0625}
    assert folded.blocks["layer3.0 + layer4.0"] == {"other": 0.375}
    assert [f["name"] for f in folded.fused] == ["myl0_4", "/blocks/blocks.2/Add + /blocks/blocks.3/conv1/Conv"]
    assert folded.fused[0]["branches"] == ["attention", "convolution"]
    assert folded.fused[1]["blocks"] == ["layer3.0", "layer4.0"]
    assert list(folded.blocks)[:3] == ["stem/head", "layer1.0", "layer2.0"]  # model order
    assert sum(sum(b.values()) for b in folded.blocks.values()) == folded.total_ms  # nothing lost or doubled


def test_without_detailed_information_fused_names_are_split():
    names_only = {"Layers": list(TIMES)}  # what LAYER_NAMES_ONLY verbosity gives
    folded = fold_layer_times(TIMES, names_only, "acmix_resnet", RESNET)
    assert folded.blocks["layer1.0"] == {"projection": 0.375}  # no Groups: a grouped conv cannot be told apart
    assert folded.blocks["layout"]["layout"] == 0.0625 + 1.0 + 0.75  # myl layers name no nodes
    assert fold_layer_times(TIMES, None, "acmix_resnet", RESNET).blocks == folded.blocks


def test_swin_branches_and_an_unknown_family():
    swin = {"embed_dim": 24, "depths": [1, 1, 1, 1], "num_heads": [1, 2, 2, 4], "window_size": 4, "num_classes": 10}
    info = {
        "Layers": [
            _layer("a", ["/blocks/blocks.0/attn/dep_conv/Conv"]),
            _layer("b", ["/blocks/blocks.0/mlp/fc1/MatMul"]),
        ]
    }
    folded = fold_layer_times({"a": 1.0, "b": 2.0}, info, "acmix_swin", swin)
    assert folded.branches == {"mlp": 2.0, "convolution": 1.0}
    generic = fold_layer_times({"a": 1.0}, info, "someone_elses", {})
    assert generic.blocks == {"stem/head": {"other": 1.0}}
