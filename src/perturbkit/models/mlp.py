"""``mlp``: the seed's MLP, from the fold's features to all genes.

Hidden blocks Linear -> BatchNorm -> ReLU -> Dropout (1024, 512 by default; the seed's widths
were 4096, 2048, 1024, 512), then one linear head to every gene (or to the fold's target-PCA
scores with ``target_components``). Inputs are the fold's
:class:`~perturbkit.features.FeatureBuilder` matrix (one-hot keys, target statistics, RDKit
chemistry), standardised; training is :mod:`perturbkit.models.torch_loop`.
"""

from __future__ import annotations

from numbers import Integral, Real

import torch
from torch import nn

from perturbkit.constraints import Interval, ListOf
from perturbkit.features import FeatureBuilder
from perturbkit.models.registry import register_model
from perturbkit.models.torch_loop import TorchRegressor, declared, net_params, param, torch_factory

__all__ = ["MLPNet", "MLPRegressor", "default_features"]


def default_features() -> FeatureBuilder:
    """What the network sees when the config names no features (the shipped ``[features]``): one-hot keys, target
    statistics, chemistry and the compound's profiles in the other cell types."""
    return FeatureBuilder(blocks=("morgan", "substructures", "transfer_profiles"))


class MLPNet(nn.Module):
    def __init__(self, n_inputs: int, n_outputs: int, *, hidden, dropout: float):
        super().__init__()
        layers, width = [], n_inputs
        for size in hidden:
            layers += [nn.Linear(width, int(size)), nn.BatchNorm1d(int(size)), nn.ReLU(), nn.Dropout(float(dropout))]
            width = int(size)
        self.body = nn.Sequential(*layers)
        self.output = nn.Linear(width, n_outputs)

    def forward(self, continuous: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        return self.output(self.body(continuous))


@declared
class MLPRegressor(TorchRegressor):
    """The seed's MLP behind the estimator contract; see :mod:`perturbkit.models.torch_loop` for training."""

    # the seed's widths are (4096, 2048, 1024, 512): 3x the time per epoch at full scale
    hidden: tuple = param((1024, 512), ListOf(Interval(Integral, 1, None, closed="left")), net=True)
    dropout: float = param(0.2, Interval(Real, 0, 1, closed="left"), net=True)
    features: FeatureBuilder = param(None, FeatureBuilder, factory=default_features)

    def _network(self, n_continuous: int, cardinalities: list[int], n_outputs: int) -> nn.Module:
        return MLPNet(n_continuous, n_outputs, **net_params(self))


mlp = register_model("mlp")(torch_factory(MLPRegressor))
