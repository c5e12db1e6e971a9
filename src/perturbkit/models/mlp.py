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

from perturbkit.constraints import Interval, InvalidParameterError
from perturbkit.features import FeatureBuilder
from perturbkit.models.registry import register_model
from perturbkit.models.torch_loop import TorchRegressor, TrainSettings, torch_factory

__all__ = ["DEFAULT_FEATURES", "MLPNet", "MLPRegressor"]

# The features these networks train on when the config names none: keys, target statistics, chemistry.
DEFAULT_FEATURES = {"onehot": ["cell_type", "sm_name"], "blocks": ["morgan", "substructures"]}


class MLPNet(nn.Module):
    def __init__(self, n_inputs: int, n_outputs: int, hidden=(1024, 512), dropout: float = 0.2):
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

    _parameter_constraints = {
        "hidden": ["array-like"],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "features": [FeatureBuilder, None],
        "train": [TrainSettings, None],
        "celltype_gain": ["boolean"],
        "random_state": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        hidden=(1024, 512),
        dropout: float = 0.2,
        features: FeatureBuilder | None = None,
        train: TrainSettings | None = None,
        celltype_gain: bool = False,
        random_state: int = 0,
    ):
        self.hidden = hidden
        self.dropout = dropout
        self.features = features
        self.train = train
        self.celltype_gain = celltype_gain
        self.random_state = random_state

    def _validate_params(self) -> None:
        super()._validate_params()
        widths = list(self.hidden)
        if not all(isinstance(w, Integral) and not isinstance(w, bool) and w >= 1 for w in widths):
            raise InvalidParameterError(f"The 'hidden' parameter of {type(self).__name__} must be a list of layer widths, "
                                        f"each a whole number >= 1. Got {self.hidden!r} instead.")

    def _build_module(self, n_continuous: int, cardinalities: list[int], n_outputs: int) -> nn.Module:
        return MLPNet(n_continuous, n_outputs, hidden=tuple(int(h) for h in self.hidden), dropout=float(self.dropout))


mlp = register_model("mlp")(torch_factory(MLPRegressor, DEFAULT_FEATURES))
