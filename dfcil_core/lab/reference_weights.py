"""How the authors' state dicts (../shared/reference, MIT) map onto ours: their ResNet-32, their
32 px generator and DGR's autoencoder, under our module names. The equivalence tests and the reference-start diagnosis
load the reference's weights through these."""

from __future__ import annotations

import torch


def _resnet_key(key: str) -> str:
    """conv1/bn1 -> features.stem.{0,1}; layer{s}.{b} -> features.layers.{5(s-1)+b}; last -> head."""
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
        return f"features.layers.{5 * (stage - 1) + int(block)}.{param}"
    raise KeyError(key)


def resnet32_state(ref_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference's ResNet-32 state dict under our IncrementalClassifier's names."""
    return {_resnet_key(k): v.clone() for k, v in ref_state.items()}


# Reference generator (l1, conv_blocks0..2) -> our Generator (fc, net.*); net indices count the
# parameter-free Upsample / LeakyReLU / Tanh modules in between.
_GENERATOR_KEYS = {"l1.0": "fc", "conv_blocks0.0": "net.0", "conv_blocks1.0": "net.2", "conv_blocks1.1": "net.3",
                   "conv_blocks2.0": "net.6", "conv_blocks2.1": "net.7", "conv_blocks2.3": "net.9",
                   "conv_blocks2.5": "net.11"}


def generator_state(ref_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in ref_state.items():
        module, param = k.rsplit(".", 1)
        out[f"{_GENERATOR_KEYS[module]}.{param}"] = v.clone()
    return out


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
