"""What a SubspaceModel stores: its vertices (a curve's bends) and its random stream, both in the state dict."""
from __future__ import annotations

import torch
import torch.nn as nn


class Vertex(nn.Module):
    """One vertex (a curve's bend): a tensor per parameter of the base module, saved under its name."""

    def __init__(self, names: list[str], tensors: list[torch.Tensor], trainable: bool):
        super().__init__()
        self.names, self.trainable = list(names), trainable
        for i, tensor in enumerate(tensors):
            if trainable:
                self.register_parameter(f"p{i}", nn.Parameter(tensor.detach().clone()))
            else:  # frozen: not a parameter, so never in an optimizer
                self.register_buffer(f"p{i}", tensor.detach().clone(), persistent=False)

    def tensors(self) -> list[torch.Tensor]:
        return [getattr(self, f"p{i}") for i in range(len(self.names))]

    def freeze(self) -> None:
        """Turn the parameters into buffers (SPRO freezes every vertex but the newest)."""
        for i, tensor in enumerate(self.tensors()):
            delattr(self, f"p{i}")
            # a copy: an optimizer still holding the old parameter cannot move the frozen vertex
            self.register_buffer(f"p{i}", tensor.detach().clone(), persistent=False)
        self.trainable = False

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        for name, tensor in zip(self.names, self.tensors()):
            destination[prefix + name] = tensor if keep_vars else tensor.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        with torch.no_grad():
            for name, tensor in zip(self.names, self.tensors()):
                value = state_dict.get(prefix + name)
                if value is None:
                    missing_keys.append(prefix + name)
                elif value.shape != tensor.shape:
                    error_msgs.append(f"size mismatch for {prefix + name}: {tuple(value.shape)} in the "
                                      f"state, {tuple(tensor.shape)} in the model")
                else:
                    tensor.copy_(value)
        if strict:
            known = {prefix + name for name in self.names}
            unexpected_keys.extend(k for k in state_dict if k.startswith(prefix) and k not in known)


class Sampler(nn.Module):
    """The model's random stream (a CPU ``torch.Generator``), saved in the state dict.

    On the CPU whatever the model's device: the draws need no device sync, and a run
    on a GPU draws the same points as one on a CPU. A checkpoint without it (written before the sampler existed) loads, and the
    stream then continues from the model's own seed.
    """

    def __init__(self, seed: int):
        super().__init__()
        self.generator = torch.Generator()
        self.generator.manual_seed(seed)

    def get_extra_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state.cpu())

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        key = prefix + "_extra_state"
        if key in state_dict:
            self.set_extra_state(state_dict[key])
        if strict:
            unexpected_keys.extend(k for k in state_dict if k.startswith(prefix) and k != key)
