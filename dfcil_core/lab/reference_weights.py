"""How the authors' state dicts (../shared/reference, MIT) map onto ours: their ResNet-32, their
32 px generator and DGR's autoencoder, under our module names. The equivalence tests and the reference-start diagnosis
load the reference's weights through these."""

from __future__ import annotations

from pathlib import Path

import torch

from dfcil_core.foundations.errors import DfcilError
from dfcil_core.method.models import IncrementalClassifier


def _resnet_key(key: str, blocks: int = 5) -> str:
    """conv1/bn1 -> features.stem.{0,1}; layer{s}.{b} -> features.layers.{blocks(s-1)+b}; last -> head."""
    head, _, rest = key.partition(".")
    if head == "conv1":
        return f"features.stem.0.{rest}"
    if head == "bn1":
        return f"features.stem.1.{rest}"
    if head == "last":
        return f"head.{rest}"
    if head.startswith("layer"):
        stage = int(head[len("layer"):])
        block, _, param = rest.partition(".")
        return f"features.layers.{blocks * (stage - 1) + int(block)}.{param}"
    raise KeyError(key)


def resnet32_state(ref_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference's ResNet-32 state dict under our IncrementalClassifier's names."""
    return {_resnet_key(k): v.clone() for k, v in ref_state.items()}


def reference_classifier(state: dict[str, torch.Tensor], seen: int) -> IncrementalClassifier:
    """Our classifier over `seen` classes holding the reference's ResNet-32 weights (`state` already
    under our names, as `resnet32_state` or `saved_task_states` give it), keeping its head's row count
    (100 in its CIFAR-100 runs)."""
    model = IncrementalClassifier("resnet32", 32, seen, state["head.weight"].shape[0])
    model.load_state_dict(state)
    return model


def resnet18_authors_state(ref_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference's "resnet18" (its CIFAR ResNet, 2 blocks per stage) under our `resnet18_authors`'s names."""
    return {_resnet_key(k, blocks=2): v.clone() for k, v in ref_state.items()}


def _generator_keys(ups: int) -> dict[str, str]:
    """The reference's generator modules -> ours, for `ups` upsampling stages (32 px: 2, their
    GeneratorMed at 64 px: 3, GeneratorBig at 224 px: 5). Ours: net.0 the first BN, then per stage
    [Upsample, Conv, BN, LeakyReLU], then Conv, Tanh, BN. Theirs: conv_blocks0 the first BN, blocks
    1..ups the stages (the last also holds the output Conv, Tanh, BN, except GeneratorBig's, which has
    them in a block of its own)."""
    keys = {"l1.0": "fc", "conv_blocks0.0": "net.0"}
    for i in range(1, ups + 1):
        keys[f"conv_blocks{i}.0"], keys[f"conv_blocks{i}.1"] = f"net.{4 * i - 2}", f"net.{4 * i - 1}"
    out_conv, out_bn = f"net.{4 * ups + 1}", f"net.{4 * ups + 3}"
    if ups == 5:
        keys["conv_blocks6.0"], keys["conv_blocks6.2"] = out_conv, out_bn
    else:
        keys[f"conv_blocks{ups}.3"], keys[f"conv_blocks{ups}.5"] = out_conv, out_bn
    return keys


def generator_state(ref_state: dict[str, torch.Tensor], ups: int = 2) -> dict[str, torch.Tensor]:
    """The reference's generator state dict (32 px by default; `ups` 3 for 64 px, 5 for 224 px)."""
    names = _generator_keys(ups)
    out = {}
    for k, v in ref_state.items():
        module, param = k.rsplit(".", 1)
        out[f"{names[module]}.{param}"] = v.clone()
    return out


def saved_task_states(task_dir: Path, with_generator: bool = True
                      ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """What the reference saves after one task (its `models/repeat-R/task-T` folder: `class.pth`, the
    32 px ResNet-32's θ(T), and `generator.pth`, the generator inverted from it), under our names; the
    generator only `with_generator` (None otherwise: Base and LwF save no generator.pth)."""
    model = resnet32_state(torch.load(task_dir / "class.pth", map_location="cpu"))
    if not with_generator:
        return model, None
    gen_file = task_dir / "generator.pth"
    if not gen_file.is_file():
        raise DfcilError(f"{task_dir} holds no generator.pth (the reference's Base and LwF save none)")
    return model, generator_state(torch.load(gen_file, map_location="cpu"))


# Reference autoencoder (encoder.{i}.0, q_mean, q_logvar, project, decoder.{i}.0) -> our VAE (flat
# Sequentials whose indices count the ReLUs in between).
_VAE_MODULES = {"encoder.0.0": "encoder.0", "encoder.1.0": "encoder.2", "encoder.2.0": "encoder.4",
                "q_mean": "to_mean", "q_logvar": "to_logvar", "project": "from_z",
                "decoder.0.0": "decoder.0", "decoder.1.0": "decoder.2", "decoder.2.0": "decoder.4"}


def vae_state(ref_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference's CIFAR autoencoder state dict under our VariationalAutoencoder's names."""
    out = {}
    for k, v in ref_state.items():
        module, param = k.rsplit(".", 1)
        out[f"{_VAE_MODULES[module]}.{param}"] = v.clone()
    return out


class CpuBiasLayer(torch.nn.Module):
    """The authors' BiC bias layer (alpha * z + beta on one task's logits), built on the CPU: theirs
    creates its parameters on "cuda", so their BiC runs here only with this one in its place."""

    def __init__(self):
        super().__init__()
        self.alpha = torch.nn.Parameter(torch.ones(1))
        self.beta = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.alpha * x + self.beta
