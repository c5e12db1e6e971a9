"""``transfer_net``: a neural cross-cell-type map, from a compound's profiles in other cell types to this one.

The structure is :mod:`perturbkit.models.transfer`'s; the map is a network, so it can follow a
response that saturates, gates or is specific to one cell type. Everything is fitted on the rows
given to ``fit`` (a fold's training rows):

* **The table.** A :class:`~perturbkit.models.transfer.TransferRidge` with the same ``n_components``,
  ``target_space`` and ``min_source_coverage`` is fitted first: its target PCA, its compound x cell
  type table of profiles (PCA scores), its choice of source cell types per target, its fallbacks
  (a compound without rows elsewhere gets the target type's mean) and its way back to genes are
  this model's too, and its prediction is the base of ``residual``.
* **Examples.** One per observed (compound, target cell type) pair with at least one observed
  source: about 600 lymphoid pairs plus the panel's B and Myeloid rows, not the 17 panel compounds
  alone. The input is the compound's profiles in the target's source cell types, the pair's own
  row never among them (a source is never the target type). Missing sources are masked, not
  imputed.
* **Networks** (``architecture``). ``"transformer"``: each source profile is one token (its scores
  projected to ``d_model`` plus a learned embedding of its cell type), a query token (a learned
  embedding of the target cell type) is prepended, a pre-norm Transformer encoder attends across
  them with missing sources masked, and the query's output is mapped to the target's scores.
  ``"mlp"``, the ablation: the masked source profiles concatenated (zeros where missing) with their
  presence bits and the target's embedding, through ``hidden`` ReLU layers.
* **Zero stays zero.** The network's output for the same mask and target but all-zero source
  profiles is subtracted, so a compound without effect elsewhere is predicted to have none here:
  no learned per-target offset, which for B and Myeloid would be the strong panel's mean (the
  reason ``transfer_ridge`` has no intercept).
* **Options.** ``token_dropout`` drops each present source token with that probability during
  training (at least one kept; 1st place zeroed 30 % of its inputs); ``n_seeds`` networks with
  seeds ``random_state + i`` and the median of their predictions (3rd place); ``target_space="z"``
  fits on the z scores behind the signed -log10 p-values; ``residual`` learns the difference to the
  ridge's own prediction of every example instead of the profile; ``balance_types`` repeats each
  target type's examples until it has about as many as the largest, so B and Myeloid (~17 panel
  pairs each) weigh in the loss like a lymphoid type (~150).
* **Gate** (``gate``). The test is B/Myeloid only, but selection and loss are mostly lymphoid, so a
  network can be worse than the ridge where it counts. With ``gate="per_type"`` the prediction for
  target type ``t`` is ``ridge + g_t * (network - ridge)``, ``g_t`` from ``GATE_GRID`` (0, 0.1, ...,
  1) with the best MRRMSE on ``t``'s inner held-out rows (below) under the inner networks: 0, the
  ridge's prediction exactly, for a type where the network shows no gain there or has no held-out
  rows. ``"shared"``: one ``g`` for every type, on all the held-out rows together (a fold holds out
  about one B/Myeloid row, too few to choose a gate of their own on).
  Without ``residual`` it is a blend of two different maps. ``inner_splits`` draws that many
  inner splits (seeds ``random_state + i``), each with its own networks; the gate errors are summed
  over them and the refit trains for the median of their selected epochs.
* **Training** is :func:`~perturbkit.models.torch_loop.train_module` with the shared
  :class:`~perturbkit.models.torch_loop.TrainSettings`: MSE on the scores (divided by one global
  scale), honest selection on an inner split of the rows given to ``fit`` -- ``valid_fraction`` of
  the compounds each lose one of their rows, the table is refitted without those rows, and the
  epoch with the best MRRMSE on them is selected -- then (``refit``) a fresh network on the table of
  all rows for that many epochs. ``selection="rare"`` mirrors the test: the inner split also holds
  out every rare-type row (types measured for fewer than ``min_source_coverage`` of the compounds:
  B and Myeloid) of ``valid_fraction`` of the compounds measured in them, and the epoch is selected
  on those rows alone (the gate still on every held-out row of its type). Seeded; ``device="auto"``.

``n_components`` above the fold's PCA rank (its rows or genes) is a :class:`ConfigError` raised
before any fit, as is a ``d_model`` that ``n_heads`` does not divide, and ``gate`` or
``selection="rare"`` with ``valid_fraction = 0`` (no inner split to choose them on).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from torch import nn

from perturbkit.constraints import Interval, StrOptions
from perturbkit.errors import ConfigError
from perturbkit.metrics import rowwise_rmse
from perturbkit.models.registry import register_model
from perturbkit.models.torch_loop import TrainSettings, _predict, _seeded, _threads, resolve_device, train_module, train_settings
from perturbkit.models.transfer import TransferRidge
from perturbkit.transforms import signed_log10_p, z_from_signed_log10_p

__all__ = ["ARCHITECTURES", "GATE_GRID", "GATES", "SELECTIONS", "TransferExamples", "TransferNet", "transfer_examples"]

ARCHITECTURES = ("transformer", "mlp")
SELECTIONS = ("rows", "rare")
GATES = ("none", "per_type", "shared")
GATE_GRID = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))  # shares of the network's step away from the ridge


class TransferExamples:
    """Row-aligned examples of a fitted table: source profiles ``(n, cell types, components)``,
    which are present ``(n, cell types)``, the target cell type and compound codes, and the target scores."""

    def __init__(self, sources: np.ndarray, present: np.ndarray, target: np.ndarray, compound: np.ndarray, scores: np.ndarray):
        self.sources, self.present, self.target, self.compound, self.scores = sources, present, target, compound, scores

    def __len__(self) -> int:
        return len(self.target)

    def subset(self, rows: np.ndarray) -> TransferExamples:
        return TransferExamples(self.sources[rows], self.present[rows], self.target[rows], self.compound[rows], self.scores[rows])


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


def _drop_tokens(present: torch.Tensor, rate: float) -> torch.Tensor:
    """Each present token dropped with probability ``rate``; a row that would lose all keeps them all."""
    keep = present & (torch.rand(present.shape, device=present.device) >= rate)
    return torch.where(keep.any(dim=1, keepdim=True), keep, present)


class _ZeroAnchored(nn.Module):
    """``map(sources) - map(zero sources)`` under the same mask and target; token dropout while training."""

    def __init__(self, token_dropout: float):
        super().__init__()
        self.token_dropout = token_dropout

    def forward(self, sources: torch.Tensor, present: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.training and self.token_dropout > 0:
            present = _drop_tokens(present, self.token_dropout)
        n = len(sources)
        both = self.map(torch.cat([sources, torch.zeros_like(sources)]), present.repeat(2, 1), target.repeat(2))
        return both[:n] - both[n:]


class TokenTransferNet(_ZeroAnchored):
    """Source profiles as tokens (+ their cell type's embedding), the target type's embedding as the query."""

    def __init__(self, n_components: int, n_cell_types: int, d_model: int, n_heads: int, n_layers: int,
                 feedforward: int, dropout: float, token_dropout: float):
        super().__init__(token_dropout)
        self.project = nn.Linear(n_components, d_model)
        self.source_embedding = nn.Parameter(torch.randn(n_cell_types, d_model) * 0.02)
        self.query_embedding = nn.Embedding(n_cell_types, d_model)
        nn.init.normal_(self.query_embedding.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, feedforward, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.output = nn.Linear(d_model, n_components)

    def map(self, sources: torch.Tensor, present: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        tokens = torch.cat([self.query_embedding(target)[:, None], self.project(sources) + self.source_embedding], dim=1)
        ignored = torch.cat([torch.zeros_like(present[:, :1]), ~present], dim=1)
        return self.output(self.norm(self.encoder(tokens, src_key_padding_mask=ignored)[:, 0]))


class ConcatTransferNet(_ZeroAnchored):
    """The ablation: concatenated masked source profiles, their presence bits and the target's embedding."""

    def __init__(self, n_components: int, n_cell_types: int, d_model: int, hidden: tuple[int, ...],
                 dropout: float, token_dropout: float):
        super().__init__(token_dropout)
        self.query_embedding = nn.Embedding(n_cell_types, d_model)
        layers, width = [], n_cell_types * (n_components + 1) + d_model
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        self.body = nn.Sequential(*layers)
        self.output = nn.Linear(width, n_components)

    def map(self, sources: torch.Tensor, present: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        masked = sources * present[..., None]
        inputs = torch.cat([masked.flatten(1), present.to(sources.dtype), self.query_embedding(target)], dim=1)
        return self.output(self.body(inputs))


class TransferNet(RegressorMixin, BaseEstimator):
    """See the module docstring."""

    _parameter_constraints = {
        "architecture": [StrOptions(set(ARCHITECTURES))],
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "d_model": [Interval(Integral, 1, None, closed="left")],
        "n_heads": [Interval(Integral, 1, None, closed="left")],
        "n_layers": [Interval(Integral, 1, None, closed="left")],
        "feedforward": [Interval(Integral, 1, None, closed="left")],
        "hidden": ["array-like"],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "token_dropout": [Interval(Real, 0, 1, closed="left")],
        "n_seeds": [Interval(Integral, 1, None, closed="left")],
        "target_space": [StrOptions({"values", "z"})],
        "residual": ["boolean"],
        "selection": [StrOptions(set(SELECTIONS))],
        "gate": [StrOptions(set(GATES))],
        "balance_types": ["boolean"],
        "inner_splits": [Interval(Integral, 1, None, closed="left")],
        "min_source_coverage": [Interval(Real, 0, 1, closed="both")],
        "train": [TrainSettings, None],
        "random_state": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(self, architecture: str = "transformer", n_components: int = 32, d_model: int = 64, n_heads: int = 4,
                 n_layers: int = 2, feedforward: int = 128, hidden=(256,), dropout: float = 0.1, token_dropout: float = 0.3,
                 n_seeds: int = 1, target_space: str = "values", residual: bool = False, selection: str = "rows", gate: str = "none",
                 balance_types: bool = False, inner_splits: int = 1, min_source_coverage: float = 0.5,
                 train: TrainSettings | None = None, random_state: int = 0):
        self.architecture = architecture
        self.n_components = n_components
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.feedforward = feedforward
        self.hidden = hidden
        self.dropout = dropout
        self.token_dropout = token_dropout
        self.n_seeds = n_seeds
        self.target_space = target_space
        self.residual = residual
        self.selection = selection
        self.gate = gate
        self.balance_types = balance_types
        self.inner_splits = inner_splits
        self.min_source_coverage = min_source_coverage
        self.train = train
        self.random_state = random_state

    @property
    def _settings(self) -> TrainSettings:
        return self.train if self.train is not None else TrainSettings()

    def _check(self, y: np.ndarray) -> None:
        self._validate_params()
        rank = min(y.shape)
        if self.n_components > rank:
            raise ConfigError(f"params.n_components={self.n_components}: the token space is wider than the fold's PCA rank, "
                              f"at most {rank} here (the fold has {y.shape[0]} training rows x {y.shape[1]} genes)")
        if self.architecture == "transformer" and self.d_model % self.n_heads:
            raise ConfigError(f"params.d_model={self.d_model} is not divisible by params.n_heads={self.n_heads}")
        if any(int(h) < 1 for h in np.ravel(self.hidden)):
            raise ConfigError(f"params.hidden={list(np.ravel(self.hidden))}: every width must be at least 1")
        if (self.gate != "none" or self.selection != "rows") and self._settings.valid_fraction <= 0:
            what = f'params.gate="{self.gate}"' if self.gate != "none" else f'params.selection="{self.selection}"'
            raise ConfigError(f"{what} is chosen on the inner split, which params.train.valid_fraction=0 turns off")

    def _table(self, X: pd.DataFrame, y: np.ndarray) -> TransferRidge:
        return TransferRidge(n_components=self.n_components, target_space=self.target_space,
                             min_source_coverage=self.min_source_coverage).fit(X, y)

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

    def _base(self, table: TransferRidge, examples: TransferExamples) -> np.ndarray:
        """What the network adds to: the ridge's scores with ``residual``, else zeros."""
        return self._ridge_scores(table, examples) if self.residual else np.zeros_like(examples.scores)

    def _tensors(self, examples: TransferExamples, base: np.ndarray, scale: float):
        device = self.device_
        inputs = (torch.from_numpy((examples.sources / scale).astype(np.float32)).to(device),
                  torch.from_numpy(examples.present).to(device),
                  torch.from_numpy(examples.target.astype(np.int64)).to(device))
        return inputs, torch.from_numpy(((examples.scores - base) / scale).astype(np.float32)).to(device)

    def _build(self, n_cell_types: int) -> nn.Module:
        if self.architecture == "transformer":
            return TokenTransferNet(self.n_components, n_cell_types, self.d_model, self.n_heads, self.n_layers,
                                    self.feedforward, float(self.dropout), float(self.token_dropout))
        return ConcatTransferNet(self.n_components, n_cell_types, self.d_model, tuple(int(h) for h in np.ravel(self.hidden)),
                                 float(self.dropout), float(self.token_dropout))

    def _train_examples(self, table: TransferRidge) -> TransferExamples:
        compounds, targets = np.nonzero(table.observed_)
        keep = np.isin(targets, list(table.ridges_))
        examples = transfer_examples(table, compounds[keep], targets[keep])
        has_source = examples.present.any(axis=1)
        return transfer_examples(table, compounds[keep][has_source], targets[keep][has_source])

    @staticmethod
    def _balanced(examples: TransferExamples) -> TransferExamples:
        """Each target type's examples repeated until it has about as many as the largest (B and Myeloid's
        ~17 panel pairs against ~150 per lymphoid type), so every target type weighs about the same in the loss."""
        types, counts = np.unique(examples.target, return_counts=True)
        repeats = np.maximum(1, np.round(counts.max() / counts)).astype(int)
        rows = np.arange(len(examples))
        return examples.subset(np.concatenate([np.repeat(rows[examples.target == t], r) for t, r in zip(types, repeats)]))

    @staticmethod
    def _rare_types(X: pd.DataFrame, coverage: float) -> np.ndarray:
        """Cell types measured for fewer than ``coverage`` of the compounds (never sources: B and Myeloid)."""
        cells = X["cell_type"].astype(str).to_numpy()
        n_compounds = X["sm_name"].nunique()
        names = np.unique(cells)
        share = np.array([X["sm_name"][cells == name].nunique() / n_compounds for name in names])
        return names[share < coverage]

    def _inner_split(self, X: pd.DataFrame, settings: TrainSettings, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows held out for selection: one row each of ``valid_fraction`` of the compounds with several rows,
        and with ``selection="rare"`` the rare-type rows of ``valid_fraction`` (at least one) of the compounds
        measured in a rare type -- the test's situation. Returns them and the rows the epoch is selected on."""
        rng = np.random.default_rng(seed)
        compounds = X["sm_name"].astype(str).to_numpy()
        names, counts = np.unique(compounds, return_counts=True)
        candidates = names[counts > 1]
        chosen = rng.permutation(candidates)[: max(1, round(settings.valid_fraction * len(names)))]
        held_out = np.array(sorted(rng.choice(np.flatnonzero(compounds == name)) for name in chosen), dtype=int)
        if self.selection == "rows":
            return held_out, held_out
        in_rare = X["cell_type"].astype(str).isin(self._rare_types(X, self.min_source_coverage)).to_numpy()
        panel = np.unique(compounds[in_rare])
        chosen = rng.permutation(panel)[: max(1, round(settings.valid_fraction * len(panel)))]
        rare = np.flatnonzero(in_rare & np.isin(compounds, chosen))
        return np.union1d(held_out, rare), rare

    def fit(self, X: pd.DataFrame, y) -> TransferNet:
        y = np.asarray(y, dtype=np.float32)
        self._check(y)
        settings = self._settings
        self.device_ = resolve_device(settings.device)
        self.gates_ = {}
        with _threads(self.device_, settings.n_threads):
            if settings.valid_fraction <= 0:
                self._fit_networks(self._table(X, y), settings)
                return self
            errors = {}
            per_split = [self._fit_inner(X, y, settings, int(self.random_state) + split, errors)
                         for split in range(int(self.inner_splits))]
            histories, epochs = per_split[0], np.array([[h["best_epoch"] for h in split] for split in per_split])
            if settings.refit:  # a fresh network per seed on the table of all rows, for its median selected epochs
                refits = self._fit_networks(self._table(X, y), settings, epochs=[int(e) for e in np.median(epochs, axis=0)])
                for history, refit in zip(histories, refits):
                    history["refit"] = refit
            if self.gate != "none":  # summed over the splits; per type, 0 (the ridge) for a type without held-out rows
                if self.gate == "shared":  # one gate on every type's held-out rows together
                    errors = dict.fromkeys(errors, sum(errors.values()))
                self.gates_ = {name: float(GATE_GRID[int(np.argmin(e))]) for name, e in errors.items()}
                histories[0]["gates"] = self.gates_
            histories[0]["inner_best_epochs"] = epochs.tolist()
            self.history_ = histories[0]
        return self

    def _fit_inner(self, X: pd.DataFrame, y: np.ndarray, settings: TrainSettings, seed: int, errors: dict) -> list[dict]:
        """Networks on one inner split drawn from ``seed``, their epochs selected on its held-out rows; each
        target type's gate errors on them added to ``errors``."""
        held_out, selected_on = self._inner_split(X, settings, seed)
        inner = np.setdiff1d(np.arange(len(y)), held_out)
        table = self._table(X.iloc[inner], y[inner])
        valid, rows = self._held_out_examples(table, X.iloc[held_out], y[held_out])
        selection = valid.subset(np.flatnonzero(np.isin(held_out[rows], selected_on)))
        if not len(selection):  # the rare types' held-out rows have no ridge to refine in the inner table
            selection = valid
        histories = self._fit_networks(table, settings, valid=selection)
        for history in histories:
            history["inner_split"] = {"train_rows": int(len(inner)), "valid_rows": int(len(valid)),
                                      "selection_rows": int(len(selection))}
        if self.gate != "none":
            for name, e in self._gate_errors(valid).items():
                errors[name] = errors.get(name, 0.0) + e
        return histories

    def _held_out_examples(self, table: TransferRidge, X: pd.DataFrame, y: np.ndarray) -> tuple[TransferExamples, np.ndarray]:
        """The examples of the held-out rows the inner table can predict, with their own scores, and those rows of ``X``."""
        rows, compounds, targets = self._pairs(table, X)
        examples = transfer_examples(table, compounds, targets)
        examples.scores = self._row_scores(table, y[rows])
        return examples, rows

    def _gate_errors(self, valid: TransferExamples) -> dict[str, np.ndarray]:
        """Per target type, the summed row RMSE of its held-out rows at each share of the network's step away
        from the ridge (``GATE_GRID``) under the fitted (inner) networks; zeros for a type with none."""
        errors = {str(name): np.zeros(len(GATE_GRID)) for name in self.table_.cell_types_}
        if not len(valid):
            return errors
        ridge, net = self._ridge_and_net(valid)
        for t, name in enumerate(self.table_.cell_types_):
            at = valid.target == t
            if at.any():
                errors[str(name)] = np.array([rowwise_rmse(valid.scores[at], ridge[at] + g * (net[at] - ridge[at])).sum()
                                              for g in GATE_GRID])
        return errors

    def _fit_networks(self, table: TransferRidge, settings: TrainSettings, *, valid=None, epochs=None) -> list[dict]:
        """One network per seed on ``table``'s examples; they and the table become the fitted state."""
        examples = self._train_examples(table)
        scale = self._scale(examples)
        trained = self._balanced(examples) if self.balance_types else examples
        data = self._tensors(trained, self._base(table, trained), scale)
        valid_data = None if valid is None else self._tensors(valid, self._base(table, valid), scale)
        modules, histories = [], []
        for i, seed in enumerate(self._seeds()):
            generator = torch.Generator().manual_seed(seed)
            with _seeded(seed, self.device_):
                module = self._build(len(table.cell_types_)).to(self.device_)
                history = train_module(module, *data, settings, valid_data, epochs=None if epochs is None else max(1, epochs[i]),
                                       generator=generator)
            history.update(parameters=sum(p.numel() for p in module.parameters()), examples=len(examples), seed=seed)
            modules.append(module)
            histories.append(history)
        self.table_, self.scale_, self.modules_, self.n_examples_ = table, scale, modules, len(examples)
        self.history_ = histories[0]
        return histories

    def _seeds(self) -> list[int]:
        return [int(self.random_state) + i for i in range(int(self.n_seeds))]

    @staticmethod
    def _scale(examples: TransferExamples) -> float:
        return float(max(np.sqrt(np.mean(np.square(examples.scores))), np.finfo(np.float32).tiny))

    def _row_scores(self, table: TransferRidge, y: np.ndarray) -> np.ndarray:
        if self.target_space == "z":
            y = z_from_signed_log10_p(y.astype(np.float64)).astype(np.float32)
        return table.pca_.transform(y).astype(np.float64) + table.origin_

    def _ridge_and_net(self, examples: TransferExamples) -> tuple[np.ndarray, np.ndarray]:
        """The fitted table's ridge scores and the networks' (the median over seeds) for the examples."""
        inputs, _ = self._tensors(examples, np.zeros_like(examples.scores), self.scale_)
        with _threads(self.device_, self._settings.n_threads):
            outputs = [_predict(module.eval(), inputs).float().cpu().numpy() for module in self.modules_]
        ridge = self._ridge_scores(self.table_, examples)
        return ridge, np.median(np.stack(outputs), axis=0) * self.scale_ + (ridge if self.residual else 0.0)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        table = self.table_
        prediction = table.predict(X)  # fallbacks, and the base of every other row
        rows, compounds, targets = self._pairs(table, X)
        if not len(rows):
            return prediction
        examples = transfer_examples(table, compounds, targets)
        ridge, scores = self._ridge_and_net(examples)
        if self.gate != "none":  # an unseen type's gate is 0: the ridge
            gates = np.array([self.gates_.get(str(name), 0.0) for name in table.cell_types_])[targets][:, None]
            scores = ridge + gates * (scores - ridge)
        genes = np.empty((len(rows), table.n_features_out_), dtype=np.float64)
        for t in np.unique(targets):
            at = targets == t
            genes[at] = table.scores_to_genes(scores[at], t)
        if self.target_space == "z":
            genes = signed_log10_p(genes)
        prediction[rows] = genes.astype(np.float32)
        return prediction


@register_model("transfer_net")
def transfer_net(train: dict | None = None, **params) -> TransferNet:
    """The registry factory: ``[params.train]`` -> :class:`TrainSettings`."""
    return TransferNet(train=train_settings(train), **params)
