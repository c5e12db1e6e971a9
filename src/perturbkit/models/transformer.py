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
from perturbkit.features import FeatureBuilder
from perturbkit.models.registry import register_model
from perturbkit.models.torch_loop import TorchRegressor, TrainSettings, torch_factory

__all__ = ["DEFAULT_FEATURES", "TabTransformerNet", "TabTransformerRegressor"]

# Categories are tokens here, so the continuous features are target statistics and chemistry only.
DEFAULT_FEATURES = {"onehot": [], "blocks": ["morgan", "substructures"]}


class TabTransformerNet(nn.Module):
    def __init__(
        self,
        n_continuous: int,
        cardinalities: list[int],
        n_outputs: int,
        d_model: int = 128,
        n_heads: int = 8,
        n_layers: int = 1,
        feedforward: int = 256,
        attention_dropout: float = 0.1,
        hidden: int = 512,
        dropout: float = 0.2,
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


class TabTransformerRegressor(TorchRegressor):
    """The TabTransformer-like model behind the estimator contract; ``tokens`` names the categorical fields."""

    _parameter_constraints = {
        "tokens": ["array-like"],
        "d_model": [Interval(Integral, 1, None, closed="left")],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "n_layers": [Interval(Integral, 1, None, closed="left")],
        "feedforward": [Interval(Integral, 1, None, closed="left")],
        "attention_dropout": [Interval(Real, 0, 1, closed="left")],
        "hidden": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "features": [FeatureBuilder, None],
        "train": [TrainSettings, None],
        "celltype_gain": ["boolean"],
        "random_state": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        tokens=("cell_type", "sm_name"),
        d_model: int = 128,
        n_heads: int = 8,
        n_layers: int = 1,
        feedforward: int = 256,
        attention_dropout: float = 0.1,
        hidden: int = 512,
        dropout: float = 0.2,
        features: FeatureBuilder | None = None,
        train: TrainSettings | None = None,
        celltype_gain: bool = False,
        random_state: int = 0,
    ):
        self.tokens = tokens
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.feedforward = feedforward
        self.attention_dropout = attention_dropout
        self.hidden = hidden
        self.dropout = dropout
        self.features = features
        self.train = train
        self.celltype_gain = celltype_gain
        self.random_state = random_state

    @property
    def token_fields(self) -> tuple[str, ...]:
        return tuple(self.tokens or ())

    def _build_module(self, n_continuous: int, cardinalities: list[int], n_outputs: int) -> nn.Module:
        return TabTransformerNet(
            n_continuous,
            cardinalities,
            n_outputs,
            d_model=int(self.d_model),
            n_heads=int(self.n_heads),
            n_layers=int(self.n_layers),
            feedforward=int(self.feedforward),
            attention_dropout=float(self.attention_dropout),
            hidden=int(self.hidden),
            dropout=float(self.dropout),
        )


transformer = register_model("transformer")(torch_factory(TabTransformerRegressor, DEFAULT_FEATURES))
