"""``mlp``: the seed's MLP, from the fold's features to all genes.

Hidden blocks Linear -> BatchNorm -> ReLU -> Dropout (the seed's widths 4096, 2048, 1024, 512
by default), then one linear head to every gene. Inputs are the fold's
:class:`~perturbkit.features.FeatureBuilder` matrix (one-hot keys, target statistics, RDKit
chemistry), standardised; training is :mod:`perturbkit.models.torch_loop`.
"""

from __future__ import annotations

import torch
from torch import nn

from perturbkit.features import FeatureBuilder
from perturbkit.models.registry import register_model
from perturbkit.models.torch_loop import TorchRegressor

__all__ = ["DEFAULT_FEATURES", "MLPNet", "MLPRegressor"]

# The features these networks train on when the config names none: keys, target statistics, chemistry.
DEFAULT_FEATURES = {"onehot": ["cell_type", "sm_name"], "chemistry": ["morgan", "substructures"]}


class MLPNet(nn.Module):
    def __init__(self, n_inputs: int, n_outputs: int, hidden=(4096, 2048, 1024, 512), dropout: float = 0.2):
        super().__init__()
        layers, width = [], n_inputs
        for size in hidden:
            layers += [nn.Linear(width, size), nn.BatchNorm1d(size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        self.body = nn.Sequential(*layers)
        self.output = nn.Linear(width, n_outputs)

    def forward(self, continuous: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        return self.output(self.body(continuous))


class MLPRegressor(TorchRegressor):
    """The seed's MLP behind the estimator contract; see :mod:`perturbkit.models.torch_loop` for training."""

    def __init__(
        self,
        hidden=(4096, 2048, 1024, 512),
        dropout: float = 0.2,
        features: FeatureBuilder | None = None,
        loss: str = "mse",
        huber_delta: float = 1.0,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        batch_size: int = 0,
        max_epochs: int = 100,
        refit_epochs: int = 0,
        patience: int = 20,
        lr_patience: int = 5,
        lr_factor: float = 0.5,
        min_lr: float = 1e-5,
        clip_norm: float = 1.0,
        device: str = "auto",
        n_threads: int = 0,
        random_state: int = 0,
    ):
        self.hidden = hidden
        self.dropout = dropout
        self.features = features
        self.loss = loss
        self.huber_delta = huber_delta
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.refit_epochs = refit_epochs
        self.patience = patience
        self.lr_patience = lr_patience
        self.lr_factor = lr_factor
        self.min_lr = min_lr
        self.clip_norm = clip_norm
        self.device = device
        self.n_threads = n_threads
        self.random_state = random_state

    def _build_module(self, n_continuous: int, cardinalities: list[int], n_outputs: int) -> nn.Module:
        return MLPNet(n_continuous, n_outputs, hidden=tuple(int(h) for h in self.hidden), dropout=float(self.dropout))


@register_model("mlp")
def mlp(features: dict | None = None, **params) -> MLPRegressor:
    return MLPRegressor(features=FeatureBuilder(**(DEFAULT_FEATURES if features is None else features)), **params)
