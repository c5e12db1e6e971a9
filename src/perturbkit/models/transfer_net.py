"""``transfer_net``: a neural cross-cell-type map, from a compound's profiles in other cell types to this one.

The structure is :mod:`perturbkit.models.transfer`'s; the map is a network, so it can follow a
response that saturates, gates or is specific to one cell type, and a gate keeps it at
``transfer_ridge`` wherever the inner split shows no gain. Everything is fitted on the rows given
to ``fit`` (a fold's training rows):

* **The table.** A :class:`~perturbkit.models.transfer.TransferRidge` with the same ``n_components``
  and ``min_source_coverage`` is fitted first: its target PCA, its compound x cell type table of
  profiles (PCA scores), its choice of source cell types per target, its fallbacks (a compound
  without rows elsewhere gets the target type's mean) and its way back to genes are this model's
  too, and its prediction is what the gate starts from.
* **Examples.** One per observed (compound, target cell type) pair with at least one observed
  source: about 600 lymphoid pairs plus the panel's B and Myeloid rows, not the 17 panel compounds
  alone. The input is the compound's profiles in the target's source cell types, the pair's own
  row never among them (a source is never the target type). Missing sources are masked, not
  imputed.
* **Network.** The masked source profiles concatenated (zeros where missing) with their presence
  bits and a learned ``d_model``-wide embedding of the target cell type, through ``hidden`` ReLU
  layers (``dropout``) to the target's scores.
* **Zero stays zero.** The network's output for the same mask and target but all-zero source
  profiles is subtracted, so a compound without effect elsewhere is predicted to have none here:
  no learned per-target offset, which for B and Myeloid would be the strong panel's mean (the
  reason ``transfer_ridge`` has no intercept).
* **Training** is :func:`~perturbkit.models.torch_loop.train_module` under
  :func:`~perturbkit.models.torch_loop.select_then_refit`, with the shared
  :class:`~perturbkit.models.torch_loop.TrainSettings`: MSE on the scores (divided by one global
  scale), the epoch selected on an inner split of the rows given to ``fit`` -- ``valid_fraction`` of
  the compounds each lose one of their rows (their other cell types stay, as inputs), the table is
  refitted without those rows, and the epoch with the best MRRMSE on them is selected -- then
  (``refit``) a fresh network on the table of all rows for that many epochs. Seeded;
  ``device="auto"``.
* **Gate.** The test is B/Myeloid only, but selection and loss are mostly lymphoid, so the network
  can be worse than the ridge where it counts. The prediction is ``ridge + g * (network - ridge)``,
  one ``g`` from ``GATE_GRID`` (0, 0.1, ..., 1) with the best MRRMSE on all the inner held-out rows
  under the inner networks (a fold holds out about one B/Myeloid row, too few for a gate of their
  own): 0 is the ridge's prediction exactly.

What was measured and not shipped (the transformer over source tokens, token dropout, several
seeds or inner splits, a residual on the ridge, z-score targets, per-type gates, selection on the
rare types, balanced types) is in ``docs/experiments.md``.

``n_components`` above the fold's PCA rank (its rows or genes) is a :class:`ConfigError` raised
before any fit, as is ``valid_fraction = 0`` (no inner split to choose the gate on), a device this
machine does not have, more threads than it lets the process use, and a network too large for the
memory available.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from torch import nn

from perturbkit.constraints import Interval, validate_params
from perturbkit.errors import InvalidParameterError
from perturbkit.metrics import rowwise_rmse
from perturbkit.models.registry import register_model
from perturbkit.models.torch_loop import (TrainSettings, _predict, _seeded, _threads, check_device, check_network_size,
                                          declared, net_params, param, resolve_device, select_then_refit, train_module,
                                          train_settings)
from perturbkit.models.transfer import TransferRidge

__all__ = ["GATE_GRID", "TransferExamples", "TransferNet", "transfer_examples"]

GATE_GRID = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))  # shares of the network's step away from the ridge


def training_defaults() -> TrainSettings:
    """The shipped ``[params.train]``: about two batches an epoch of a fold's ~450 examples, a longer schedule."""
    return TrainSettings(lr=3e-3, batch_size=256, max_epochs=100, patience=15, lr_patience=6)


class TransferExamples:
    """Row-aligned examples of a fitted table: source profiles ``(n, cell types, components)``,
    which are present ``(n, cell types)``, the target cell type and compound codes, and the target scores."""

    def __init__(self, sources: np.ndarray, present: np.ndarray, target: np.ndarray, compound: np.ndarray, scores: np.ndarray):
        self.sources, self.present, self.target, self.compound, self.scores = sources, present, target, compound, scores

    def __len__(self) -> int:
        return len(self.target)


def transfer_examples(table: TransferRidge, compounds: np.ndarray, targets: np.ndarray) -> TransferExamples:
    """The inputs of (compound code, target cell-type code) pairs of ``table``: the compound's profiles
    in the target's source cell types (:meth:`TransferRidge.source_types`), masked where unmeasured;
    the target type itself is never a source, so a pair's own row is never in its input."""
    n_cells = len(table.cell_types_)
    allowed = np.zeros((n_cells, n_cells), dtype=bool)
    for t in range(n_cells):
        allowed[t, table.source_types(t)] = True
    present = table.observed_[compounds] & allowed[targets]
    sources = np.where(present[..., None], table.profiles_[compounds], 0.0)
    scores = table.profiles_[compounds, targets]
    return TransferExamples(sources, present, targets, compounds, scores)


class ConcatTransferNet(nn.Module):
    """``map(sources) - map(zero sources)`` under the same mask and target, where ``map`` is an MLP over the
    concatenated masked source profiles, their presence bits and the target's embedding."""

    def __init__(self, n_components: int, n_cell_types: int, *, d_model: int, hidden, dropout: float):
        super().__init__()
        self.query_embedding = nn.Embedding(n_cell_types, d_model)
        layers, width = [], n_cell_types * (n_components + 1) + d_model
        for size in hidden:
            layers += [nn.Linear(width, int(size)), nn.ReLU(), nn.Dropout(float(dropout))]
            width = int(size)
        self.body = nn.Sequential(*layers)
        self.output = nn.Linear(width, n_components)

    def map(self, sources: torch.Tensor, present: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        masked = sources * present[..., None]
        inputs = torch.cat([masked.flatten(1), present.to(sources.dtype), self.query_embedding(target)], dim=1)
        return self.output(self.body(inputs))

    def forward(self, sources: torch.Tensor, present: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n = len(sources)
        both = self.map(torch.cat([sources, torch.zeros_like(sources)]), present.repeat(2, 1), target.repeat(2))
        return both[:n] - both[n:]


@declared
class TransferNet(RegressorMixin, BaseEstimator):
    """See the module docstring; the defaults are the shipped ``configs/transfer_net.toml``."""

    n_components: int = param(32, Interval(Integral, 1, None, closed="left"))  # target-PCA components of the table
    d_model: int = param(64, Interval(Integral, 1, None, closed="left"), net=True)  # the target type's embedding width
    hidden: tuple = param((256,), "array-like", net=True)
    dropout: float = param(0.1, Interval(Real, 0, 1, closed="left"), net=True)
    min_source_coverage: float = param(0.5, Interval(Real, 0, 1, closed="both"))  # share of compounds a source has
    train: TrainSettings = param(None, TrainSettings, factory=training_defaults)
    random_state: int = param(0, Interval(Integral, 0, None, closed="left"))

    def _check_params(self) -> None:
        """Cross-parameter and machine checks, before any fit (the constraints are checked first)."""
        if any(isinstance(h, bool) or not isinstance(h, Integral) or h < 1 for h in np.ravel(self.hidden)):
            raise InvalidParameterError("hidden", f"params.hidden={list(np.ravel(self.hidden))}: every width must be a whole number >= 1")
        if self.train.valid_fraction <= 0:
            raise InvalidParameterError("valid_fraction", "params.train.valid_fraction=0: the gate is chosen on the inner split, "
                                                          "which needs a share of the compounds above 0")
        self.train._check_params()
        self._check_size(n_cell_types=2)

    def _check_size(self, n_cell_types: int) -> None:
        check_network_size(lambda: self._build(n_cell_types), check_device(self.train.device),
                           {"params.hidden": self.hidden, "params.d_model": self.d_model, "params.n_components": self.n_components})

    def _check_rank(self, y: np.ndarray) -> None:
        rank = min(y.shape)
        if self.n_components > rank:
            raise InvalidParameterError("n_components", f"params.n_components={self.n_components}: the token space is wider than "
                                        f"the fold's PCA rank, at most {rank} here (the fold has {y.shape[0]} training rows x "
                                        f"{y.shape[1]} genes)")

    def _table(self, X: pd.DataFrame, y: np.ndarray) -> TransferRidge:
        return TransferRidge(n_components=self.n_components, min_source_coverage=self.min_source_coverage).fit(X, y)

    @staticmethod
    def _pairs(table: TransferRidge, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of ``X`` the network predicts (known compound and cell type with a measured source), and their codes."""
        cells = pd.Index(table.cell_types_).get_indexer(X["cell_type"].astype(str))
        compounds = pd.Index(table.compounds_).get_indexer(X["sm_name"].astype(str))
        rows = np.flatnonzero((cells >= 0) & (compounds >= 0))
        if len(rows):
            present = transfer_examples(table, compounds[rows], cells[rows]).present.any(axis=1)
            rows = rows[present & np.isin(cells[rows], list(table.ridges_))]
        return rows, compounds[rows], cells[rows]

    @staticmethod
    def _ridge_scores(table: TransferRidge, examples: TransferExamples) -> np.ndarray:
        """The ridge's scores for the examples."""
        scores = np.zeros_like(examples.scores)
        for t in np.unique(examples.target):
            rows = np.flatnonzero(examples.target == t)
            scores[rows] = table.ridges_[t].predict(table.source_inputs(examples.compound[rows], t, table.sources_[t]))
        return scores

    def _tensors(self, examples: TransferExamples, scale: float):
        device = self.device_
        inputs = (torch.from_numpy((examples.sources / scale).astype(np.float32)).to(device),
                  torch.from_numpy(examples.present).to(device),
                  torch.from_numpy(examples.target.astype(np.int64)).to(device))
        return inputs, torch.from_numpy((examples.scores / scale).astype(np.float32)).to(device)

    def _build(self, n_cell_types: int) -> nn.Module:
        return ConcatTransferNet(self.n_components, n_cell_types, **net_params(self))

    def _train_examples(self, table: TransferRidge) -> TransferExamples:
        compounds, targets = np.nonzero(table.observed_)
        keep = np.isin(targets, list(table.ridges_))
        examples = transfer_examples(table, compounds[keep], targets[keep])
        has_source = examples.present.any(axis=1)
        return transfer_examples(table, compounds[keep][has_source], targets[keep][has_source])

    @staticmethod
    def _inner_split(X: pd.DataFrame, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """A drawn compound (one with several rows) loses one of its rows, drawn at random: its other cell types
        stay in the table, as the inputs that row is predicted from. Returns the rows kept and those held out."""
        rng = np.random.default_rng(seed)
        compounds = X["sm_name"].astype(str).to_numpy()
        names, counts = np.unique(compounds, return_counts=True)
        chosen = rng.permutation(names[counts > 1])[: max(1, round(fraction * len(names)))]
        held_out = np.array(sorted(rng.choice(np.flatnonzero(compounds == name)) for name in chosen), dtype=int)
        return np.setdiff1d(np.arange(len(X)), held_out), held_out

    def fit(self, X: pd.DataFrame, y) -> TransferNet:
        validate_params(self)
        y = np.asarray(y, dtype=np.float32)
        self._check_rank(y)
        settings = self.train
        self.device_ = resolve_device(settings.device)
        gate_errors = {}

        def fit_rows(rows, held_out, epochs, what):
            table = self._table(X.iloc[rows], y[rows])
            valid = None if held_out is None else self._held_out_examples(table, X.iloc[held_out], y[held_out])
            history = self._fit_network(table, settings, valid=valid, epochs=epochs, what=what)
            if valid is not None:  # under the inner network, before the refit replaces it
                gate_errors.update(self._gate_errors(valid))
            return history

        with _threads(self.device_, settings.n_threads):
            history = select_then_refit(fit_rows, lambda fraction, seed: self._inner_split(X, fraction, seed), len(y), settings,
                                        int(self.random_state))
        # One gate on every type's held-out rows together (summed type by type); none held out: 0, the ridge.
        self.gate_ = float(GATE_GRID[int(np.argmin(sum(gate_errors.values())))]) if gate_errors else 0.0
        history["gate"] = self.gate_
        self.history_ = history
        return self

    def _held_out_examples(self, table: TransferRidge, X: pd.DataFrame, y: np.ndarray) -> TransferExamples:
        """The examples of the held-out rows the inner table can predict, with those rows' own scores."""
        rows, compounds, targets = self._pairs(table, X)
        examples = transfer_examples(table, compounds, targets)
        examples.scores = self._row_scores(table, y[rows])
        return examples

    def _fit_network(self, table: TransferRidge, settings: TrainSettings, *, valid, epochs, what) -> dict:
        """A network on ``table``'s examples, its epoch selected on the ``valid`` examples when given; it and the
        table become the fitted state."""
        examples = self._train_examples(table)
        scale = self._scale(examples)
        data = self._tensors(examples, scale)
        valid_data = None if valid is None else self._tensors(valid, scale)
        seed = int(self.random_state)
        self._check_size(len(table.cell_types_))
        generator = torch.Generator().manual_seed(seed)
        with _seeded(seed, self.device_):
            module = self._build(len(table.cell_types_)).to(self.device_)
            history = train_module(module, *data, settings, valid_data, epochs=epochs, generator=generator, what=what)
        history.update(parameters=sum(p.numel() for p in module.parameters()), examples=len(examples))
        self.table_, self.scale_, self.module_, self.n_examples_ = table, scale, module, len(examples)
        return history

    def _gate_errors(self, valid: TransferExamples) -> dict[int, np.ndarray]:
        """Per target type with held-out rows, the summed row RMSE of those rows at each share of the network's step
        away from the ridge (``GATE_GRID``) under the fitted (inner) network."""
        if not len(valid):
            return {}
        ridge, net = self._ridge_and_net(valid)
        return {t: np.array([rowwise_rmse(valid.scores[at], ridge[at] + g * (net[at] - ridge[at])).sum() for g in GATE_GRID])
                for t in range(len(self.table_.cell_types_)) if (at := valid.target == t).any()}

    @staticmethod
    def _scale(examples: TransferExamples) -> float:
        return float(max(np.sqrt(np.mean(np.square(examples.scores))), np.finfo(np.float32).tiny))

    @staticmethod
    def _row_scores(table: TransferRidge, y: np.ndarray) -> np.ndarray:
        return table.pca_.transform(y).astype(np.float64) + table.origin_

    def _ridge_and_net(self, examples: TransferExamples) -> tuple[np.ndarray, np.ndarray]:
        """The fitted table's ridge scores and the network's for the examples."""
        inputs, _ = self._tensors(examples, self.scale_)
        with _threads(self.device_, self.train.n_threads):
            output = _predict(self.module_.eval(), inputs).float().cpu().numpy()
        return self._ridge_scores(self.table_, examples), output * self.scale_

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        table = self.table_
        prediction = table.predict(X)  # fallbacks, and the base of every other row
        rows, compounds, targets = self._pairs(table, X)
        if not len(rows):
            return prediction
        examples = transfer_examples(table, compounds, targets)
        ridge, net = self._ridge_and_net(examples)
        scores = ridge + self.gate_ * (net - ridge)
        genes = np.empty((len(rows), table.n_features_out_), dtype=np.float64)
        for t in np.unique(targets):
            at = targets == t
            genes[at] = table.scores_to_genes(scores[at], t)
        prediction[rows] = genes.astype(np.float32)
        return prediction


@register_model("transfer_net")
def transfer_net(train: dict | None = None, **params) -> TransferNet:
    """The registry factory: ``[params.train]`` over the shipped training defaults -> :class:`TrainSettings`."""
    return TransferNet(train=train_settings(train, training_defaults()), **params)
