"""Folder names matched to class indices: WordNet ids, class names, class maps, and the refusals."""

from __future__ import annotations

import json

import pytest

from acmix_deploy.classmap import EvaluationError, match_folders, read_class_map
from acmix_deploy.labels import imagenet1k, imagenet1k_wnids


def test_bundled_wnids_line_up_with_the_names():
    wnids, names = imagenet1k_wnids(), imagenet1k()
    assert len(wnids) == len(set(wnids)) == len(names) == 1000
    assert list(wnids) == sorted(wnids)  # class i = the i-th id in sorted order (ImageFolder over ImageNet)
    assert all(len(w) == 9 and w[0] == "n" and w[1:].isdigit() for w in wnids)
    spots = {
        0: ("n01440764", "tench"), 1: ("n01443537", "goldfish"), 2: ("n01484850", "great white shark"),
        134: ("n02012849", "crane bird"), 207: ("n02099601", "golden retriever"), 281: ("n02123045", "tabby"),
        291: ("n02129165", "lion"), 388: ("n02510455", "giant panda"), 517: ("n03126707", "crane"),
        776: ("n04141076", "sax"), 954: ("n07753592", "banana"), 999: ("n15075141", "toilet tissue"),
    }  # fmt: skip
    assert {i: (wnids[i], names[i]) for i in spots} == spots


def test_imagenet_folders_by_wnid_name_or_both():
    match = match_folders(["n01443537", "n15075141"], 1000)
    assert match.folders == {"n01443537": 1, "n15075141": 999} and match.subset
    assert match.listed == [1, 999] and match.shown(999) == "n15075141 toilet tissue" and match.wnid(1) == "n01443537"
    assert "2 by WordNet id" in match.note()
    by_name = match_folders(["tench", "goldfish", "great white shark"], 1000)
    assert by_name.folders == {"tench": 0, "goldfish": 1, "great white shark": 2}
    assert by_name.shown(2) == "great white shark" and by_name.wnid(2) is None
    mixed = match_folders(["Great_White_Shark", "n01440764", "GOLDFISH", "crane", "crane_bird"], 1000)
    assert mixed.folders == {"Great_White_Shark": 2, "n01440764": 0, "GOLDFISH": 1, "crane": 517, "crane_bird": 134}
    assert mixed.how["n01440764"] == "wnid" and mixed.how["crane"] == "name"
    assert "1 by WordNet id" in mixed.note() and "4 by class name" in mixed.note()
    # A model recording the ImageNet names in its manifest matches alike; the ids come with them.
    assert match_folders(["n01440764"], 1000, labels=list(imagenet1k())).folders == {"n01440764": 0}


def test_refusals_name_the_folders():
    with pytest.raises(EvaluationError, match=r"val: 2 of 3 folder\(s\) match no class in ImageNet-1k .*: cat, dog;"):
        match_folders(["cat", "dog", "tench"], 1000, root="val")
    with pytest.raises(EvaluationError, match=r"'n01440764' and 'tench' both hold class 0 \(tench\)"):
        match_folders(["n01440764", "tench"], 1000)
    # A model with its own names: folders matched against those names, ImageNet's ids mean nothing.
    own = ["cat", "dog", "bird"]
    assert match_folders(["Dog", "bird"], 3, labels=own).folders == {"Dog": 1, "bird": 2}
    with pytest.raises(EvaluationError, match="match no class in the model's class names: n01440764"):
        match_folders(["n01440764", "cat"], 3, labels=own)
    with pytest.raises(EvaluationError, match="2 class folders but the model has 10 classes; pass class_names"):
        match_folders(["a", "b"], 10)
    with pytest.raises(EvaluationError, match=r"11 class folders but the model has 10 classes$"):
        match_folders([f"k{i}" for i in range(11)], 10)
    with pytest.raises(EvaluationError, match="not both"):
        match_folders(["a"], 1, class_names=["a"], class_map={"a": 0})


def test_folders_that_are_the_classes_keep_sorted_order():
    digits = [str(i) for i in range(10)]
    match = match_folders(digits, 10)  # the digits demo, no names recorded: ImageFolder's rule
    assert match.folders == {d: int(d) for d in digits} and not match.subset and match.note() is None
    assert match_folders(digits, 10, labels=digits).folders == match.folders
    # Names recorded but the folders are other names, as many as the classes: sorted order, as always, said.
    other = match_folders(["x", "y"], 2, labels=["cat", "dog"])
    assert other.folders == {"x": 0, "y": 1} and "sorted folder order" in other.note()
    # Some folders one of the names and some not: a mismatch, not a sorted order.
    with pytest.raises(EvaluationError, match=r"1 of 2 folder\(s\) match no class in the model's class names: x;"):
        match_folders(["dog", "x"], 2, labels=["cat", "dog"])


def test_class_map_files(tmp_path):
    text = tmp_path / "map.txt"
    text.write_text("fish 1\nbig shark\t2\n\ntoilet paper 999\n")
    assert read_class_map(text) == {"fish": 1, "big shark": 2, "toilet paper": 999}
    order = tmp_path / "order.txt"
    order.write_text("a\nb b\n7\n")  # timm's text form: one name per line, index = line
    assert read_class_map(order) == {"a": 0, "b b": 1, "7": 2}
    js = tmp_path / "map.json"
    js.write_text(json.dumps({"fish": 1, "shark": 2}))
    assert read_class_map(js) == {"fish": 1, "shark": 2}
    match = match_folders(["fish", "Big_Shark"], 1000, class_map=read_class_map(text))
    assert match.folders == {"fish": 1, "Big_Shark": 2} and match.shown(1) == "goldfish (fish)"
    odd = match_folders(["fish\x1c"], 1000, class_map={"fish": 1})  # \x1c is blank to str.split: matched
    assert odd.folders == {"fish\x1c": 1} and odd.shown(1) == "goldfish (fish\\x1c)"  # shown escaped
    # No names recorded: the map names the classes it maps.
    assert match_folders(["q"], 4, class_map={"q": 3}).classes == ("class_0", "class_1", "class_2", "q")

    bad = {
        "dup_name.txt": ("a 1\na 2\n", "line 2: 'a' is given twice"),
        "dup_index.txt": ("a 1\nb 1\n", r"line 2: class 1 is given twice \('a' and 'b'\)"),
        "mixed.txt": ("a 1\nb\n", "line 2 has no class index but line 1 has one"),
        "negative.json": ('{"a": -1}', "non-negative integer"),
        "bool.json": ('{"a": true}', "non-negative integer"),
        "dup.json": ('{"a": 1, "a": 2}', "'a' is given twice"),
        "keras.json": ('{"0": ["n01440764", "tench"]}', "non-negative integer"),
        "notjson.json": ("{oops", "not valid JSON"),
        "number.json": ("3", "is an object"),
        "slash.txt": ("a/b 1\n", "usable as folder names"),
        "empty.txt": ("\n\n", "empty"),
    }
    for name, (content, message) in bad.items():
        (tmp_path / name).write_text(content)
        with pytest.raises(EvaluationError, match=message):
            read_class_map(tmp_path / name)
    with pytest.raises(EvaluationError, match="class map not found"):
        read_class_map(tmp_path / "missing.txt")
    with pytest.raises(EvaluationError, match=r"'fish' -> 5, but the model's classes are 0..3"):
        match_folders(["fish"], 4, class_map={"fish": 5})
    with pytest.raises(EvaluationError, match=r"1 of 2 folder\(s\) match no class in the class map: other$"):
        match_folders(["fish", "other"], 1000, class_map={"fish": 1})
