"""``transformer``: the seed's TabTransformer-like model, with categorical fields as tokens.

The seed projected the concatenated one-hots of cell type and compound to one embedding and
passed that single vector through a Transformer encoder; with one position, self-attention can
only attend to itself. Here each categorical field is its own token, as in TabTransformer: the
token of field *f* for a row is ``embedding_f[category] + field_embedding[f]`` (the learned
per-field embedding tells the encoder which field a token is). The encoder (``n_layers`` layers,
``n_heads`` heads, pre-norm) mixes the tokens, so the compound's representation is contextualised
by the cell type and vice versa; the encoded tokens are flattened.

The continuous features (the fold's :class:`~perturbkit.features.FeatureBuilder` matrix: target
statistics and RDKit chemistry, standardised) pass through LayerNorm -> Linear -> ReLU -> Dropout
to the token width. Flattened tokens and the continuous vector are concatenated, then an MLP
(``hidden`` units, ReLU, dropout) maps them to all genes.

A category none of the fold's training rows has (a compound only in the validation or test rows)
gets token code 0, a zero embedding: its token is the field embedding alone, never an untrained
random vector. Training is :mod:`perturbkit.models.torch_loop`.
"""

from __future__ import annotations

from numbers import Integral, Real

import torch
from torch import nn

from perturbkit.constraints import Interval
from perturbkit.errors import InvalidParameterError
from perturbkit.features import FeatureBuilder
from perturbkit.models.registry import register_model
from perturbkit.models.torch_loop import TorchRegressor, declared, net_params, param, torch_factory

__all__ = ["TOKEN_FIELDS", "TabTransformerNet", "TabTransformerRegressor", "default_features"]

TOKEN_FIELDS = ("cell_type", "sm_name")  # the categorical columns of a row


def default_features() -> FeatureBuilder:
    """The shipped ``[features]``: categories are tokens here, so target statistics, chemistry and the compound's
    profiles in the other cell types."""
    return FeatureBuilder(onehot=(), blocks=("morgan", "substructures", "transfer_profiles"))


class TabTransformerNet(nn.Module):
    def __init__(
        self,
        n_continuous: int,
        cardinalities: list[int],
        n_outputs: int,
        *,
        d_model: int,
        n_heads: int,
        n_layers: int,
        feedforward: int,
        attention_dropout: float,
        hidden: int,
        dropout: float,
    ):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(n, d_model, padding_idx=0) for n in cardinalities)
        for embedding in self.embeddings:
            nn.init.normal_(embedding.weight, std=0.02)
            with torch.no_grad():
                embedding.weight[0].zero_()
        self.field_embedding = nn.Parameter(torch.randn(len(cardinalities), d_model) * 0.02)
        self.encoder = None
        if cardinalities:
            layer = nn.TransformerEncoderLayer(
                d_model, n_heads, dim_feedforward=feedforward, dropout=attention_dropout, batch_first=True, norm_first=True
            )
            self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.continuous = None
        if n_continuous:
            self.continuous = nn.Sequential(nn.LayerNorm(n_continuous), nn.Linear(n_continuous, d_model), nn.ReLU(), nn.Dropout(dropout))
        width = d_model * (len(cardinalities) + (1 if n_continuous else 0))
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.output = nn.Linear(hidden, n_outputs)

    def forward(self, continuous: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.encoder is not None:
            embedded = torch.stack([embedding(tokens[:, i]) for i, embedding in enumerate(self.embeddings)], dim=1)
            parts.append(self.encoder(embedded + self.field_embedding).flatten(1))
        if self.continuous is not None:
            parts.append(self.continuous(continuous))
        return self.output(self.head(torch.cat(parts, dim=1)))


@declared
class TabTransformerRegressor(TorchRegressor):
    """The TabTransformer-like model behind the estimator contract; ``tokens`` names the categorical fields."""

    tokens: tuple = param(TOKEN_FIELDS, "array-like")
    d_model: int = param(128, Interval(Integral, 1, None, closed="left"), net=True)  # token and continuous width
    n_heads: int = param(8, Interval(Integral, 1, None, closed="left"), net=True)
    n_layers: int = param(1, Interval(Integral, 1, None, closed="left"), net=True)
    feedforward: int = param(256, Interval(Integral, 1, None, closed="left"), net=True)  # encoder feed-forward width
    attention_dropout: float = param(0.1, Interval(Real, 0, 1, closed="left"), net=True)
    # the seed's 1024 doubles the output layer, the bulk of the time per epoch
    hidden: int = param(512, Interval(Integral, 1, None, closed="left"), net=True)
    dropout: float = param(0.2, Interval(Real, 0, 1, closed="left"), net=True)
    features: FeatureBuilder = param(None, FeatureBuilder, factory=default_features)

    size_params = ("hidden", "d_model", "feedforward")

    @property
    def token_fields(self) -> tuple[str, ...]:
        return tuple(self.tokens or ())

    def _check_params(self) -> None:
        unknown = [str(token) for token in self.token_fields if token not in TOKEN_FIELDS]
        if unknown:
            raise InvalidParameterError("tokens", f"params.tokens={list(self.token_fields)!r}: unknown token field(s) {unknown}; "
                                                  f"known: {', '.join(TOKEN_FIELDS)}")
        if self.d_model % self.n_heads:
            raise InvalidParameterError("n_heads", f"params.n_heads={self.n_heads} does not divide params.d_model={self.d_model}: "
                                                   f"each attention head gets d_model / n_heads of the width")
        super()._check_params()

    def _network(self, n_continuous: int, cardinalities: list[int], n_outputs: int) -> nn.Module:
        return TabTransformerNet(n_continuous, cardinalities, n_outputs, **net_params(self))


transformer = register_model("transformer")(torch_factory(TabTransformerRegressor))
