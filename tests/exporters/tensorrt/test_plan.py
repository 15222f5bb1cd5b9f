"""The build stage's messages: what a failed build says, and how the inspector's layer info is kept."""

from __future__ import annotations

import json

from acmix_deploy.exporters.tensorrt.plan import NO_LOGGED_ERRORS, build_failure_message, pretty_json


def test_failed_build_shows_the_last_ten_logged_errors():
    errors = [f"error {i}" for i in range(14)]
    message = build_failure_message(errors)
    assert message.splitlines() == ["TensorRT failed to build the engine:", *(f"  error {i}" for i in range(4, 14))]


def test_failed_build_without_logged_errors_says_why():
    message = build_failure_message([])
    assert message.startswith("TensorRT failed to build the engine:\n") and message.endswith(NO_LOGGED_ERRORS)
    assert "first logger" in message


def test_layer_info_is_indented_when_json_and_kept_otherwise():
    text = pretty_json('{"Layers": ["conv1", "relu"], "Bindings": ["input"]}')
    assert text.endswith("\n") and "\n  " in text
    assert json.loads(text) == {"Layers": ["conv1", "relu"], "Bindings": ["input"]}
    assert pretty_json("Layers: conv1, relu") == "Layers: conv1, relu"
