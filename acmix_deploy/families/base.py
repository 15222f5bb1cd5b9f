"""What a model family is, once: input size rules, preprocessing, deploy form, profile names, detection.

In the spirit of timm's pretrained configs: every stage that needs family knowledge (checkpoint
detection, export, the torch runner, profiling, the CLI) asks the family's spec instead of
comparing family names. Adding a family means one new module here and one line in the registry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from ..manifest.schema import Preprocessing

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .spec import ModelSpec


class ModelFamily(ABC):
    """One family of ACmix models. Subclasses set the class attributes and implement the hooks."""

    name: ClassVar[str]
    title: ClassVar[str]  # for messages: "ACmix-ResNet"
    interpolation: ClassVar[str]  # of the official evaluation transform
    fixed_input_size: ClassVar[bool]  # True: the resolution is built into the model (a constructor knob)
    official_layout: ClassVar[str]  # checkpoint layout name of the official training script's files

    # -- models ----------------------------------------------------------------------------------
    @property
    @abstractmethod
    def model_class(self) -> type[nn.Module]:
        """The reference module class (official keys and numerics)."""

    def owns(self, model: nn.Module) -> bool:
        return isinstance(model, self.model_class)

    def build(self, hparams: Mapping) -> nn.Module:
        """A randomly initialised reference model with these constructor arguments."""
        return self.model_class(**hparams)

    # -- input size ------------------------------------------------------------------------------
    def size_overrides(self, img_size: int | None) -> dict:
        """Constructor overrides that make a model run at ``img_size`` (only where size is a knob)."""
        return {"img_size": img_size} if img_size and self.fixed_input_size else {}

    def resolve_img_size(self, model: nn.Module, requested: int | None, recorded: int | None) -> int:
        """The input size to export/run ``model`` at: asked for, else recorded by the checkpoint, else 224.

        Raises:
            ValueError: the model cannot run at that size (message says why).
        """
        size = int(requested or recorded or 224)
        self.check_input_size(model, size)
        return size

    @abstractmethod
    def check_input_size(self, model: nn.Module, img_size: int) -> None:
        """Raise ValueError when ``model`` cannot run at ``img_size`` x ``img_size``."""

    def preprocessing(self, img_size: int) -> Preprocessing:
        return Preprocessing.evaluation(img_size, self.interpolation)

    # -- deploy form and profiles ----------------------------------------------------------------
    @abstractmethod
    def to_deploy(self, model: nn.Module, img_size: int | None) -> nn.Module:
        """The deploy form (same function, export-friendly operators) of a reference model."""

    @abstractmethod
    def block_names(self, hparams: Mapping) -> list[str]:
        """Official names of the deploy model's ``blocks`` children, in order (for per-block profiles)."""

    def stage_name(self, block: str) -> str:
        """The stage a block name belongs to (``layer2.0`` -> ``layer2``): per-stage precision ranking."""
        return block.rsplit(".", 1)[0]

    @abstractmethod
    def classify_kernel(self, name: str, op: str, group: int) -> str:
        """The branch (attention, convolution, projection, mlp, norm, other) of a deploy-graph node."""

    # -- checkpoints -----------------------------------------------------------------------------
    @abstractmethod
    def recognises(self, state_dict: Mapping[str, torch.Tensor]) -> bool:
        """True when the (prefix-stripped) tensor names are this family's."""

    @abstractmethod
    def detect(self, state_dict: Mapping[str, torch.Tensor]) -> ModelSpec:
        """Hyperparameters from tensor names and shapes (the readers in :mod:`.spec`)."""
