"""One training loop for every torch model, the training settings they share, and their estimator base.

What a fold's torch model does, in order:

1. **Inputs.** The model's :class:`~perturbkit.features.FeatureBuilder` (one-hot keys, target
   statistics, RDKit chemistry, optional input PCA) is fitted on the rows given to ``fit`` only.
   Columns constant on those rows are dropped, the rest standardised with their mean and standard
   deviation, and everything becomes float32 tensors on the device once; batches are index slices
   (no per-row Python work). Models with categorical *tokens* get integer codes: each category
   seen in the fitted rows has its own code, every other category (a compound the fold never
   trained on) code 0, a zero embedding.
2. **Training.** Adam (fused, else foreach) at ``lr``, loss ``mse`` (``mrrmse``, the competition
   metric on the batch, and ``huber`` selectable), gradient-norm clipping, shuffled batches of
   about ``batch_size`` rows (0: full batch). The output layer's bias starts at the fitted rows'
   mean profile. Seeded: initialisation, dropout, shuffles and the inner split draw from
   ``random_state``; the process's global RNG state is left as it was.
3. **Honest model selection** (:func:`select_then_refit`, shared with ``transfer_net``). Early
   stopping, best-epoch restore and ``ReduceLROnPlateau`` use an inner split of the rows given to
   ``fit`` -- never the rows a CV fold is scored on. ``valid_fraction`` is the share of those rows'
   compounds the inner split draws (seeded by ``random_state``); here a drawn compound loses all
   its rows (a seeded ``GroupShuffleSplit`` by compound: at test a compound is new to the
   network). The features are fitted on the rest, and the epoch with the best inner MRRMSE is
   selected. With ``refit`` (default) a fresh network is then trained on *all* the rows for that
   many epochs, its features refitted on all of them. ``valid_fraction = 0`` trains
   ``max_epochs`` epochs on all rows with the schedule on the training loss.
4. **Progress.** Inside a CV run with progress on, each training shows a bar of its epochs with
   the training loss, the inner MRRMSE and the best epoch so far (``perturbkit.progress``).
5. **History.** Per-epoch training loss, inner validation loss and MRRMSE, learning rate and the
   selected epoch are kept in ``history_`` (the CV harness stores it in the run's meta; the report
   plots it).

All training settings live in one :class:`TrainSettings` (the ``train`` parameter of every torch
model; config table ``[params.train]``, nested parameters ``train__lr`` etc.). Every parameter is
declared once, with its default and its constraints (:func:`param`, :func:`declared`): scikit-learn
reads the generated ``__init__``, the constraints are built from the same declarations and the
network is built from the architecture's. ``device="auto"`` trains on CUDA when
``torch.cuda.is_available()``, else on the CPU, where ``torch.set_num_threads`` is set to the CPUs
this process may use (``n_threads`` to override) during ``fit`` and ``predict``. A device this
machine does not have, more threads than it lets the process use, or a network whose weights and
Adam's state alone exceed the memory available are named errors before any training.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.model_selection import GroupShuffleSplit
from torch import nn

from perturbkit.constraints import Interval, StrOptions, available_cpus, validate_params
from perturbkit.constraints import available_memory as system_memory
from perturbkit.errors import ConfigError, InvalidParameterError
from perturbkit.features import FeatureBuilder
from perturbkit.progress import progress_bar

__all__ = ["LOSSES", "TorchRegressor", "TrainSettings", "batch_mrrmse", "declared", "make_loss", "param", "resolve_device",
           "select_then_refit", "set_threads", "train_module", "train_settings"]

LOSSES = ("mse", "mrrmse", "huber")
DEVICE_TYPES = ("cpu", "cuda", "mps")
MIN_INPUT_STD = 1e-4  # input columns whose training-row spread is below this are dropped
BYTES_PER_PARAMETER = 16  # float32 weight, gradient and Adam's two moments
logger = logging.getLogger("perturbkit.torch")


def param(default=None, *constraints, factory=None, net: bool = False):
    """One estimator parameter, declared once: its default (``factory`` builds a fresh one per estimator),
    its ``_parameter_constraints`` entry, and whether the network's constructor takes it (``net``)."""
    metadata = {"constraints": list(constraints), "net": net}
    return field(default_factory=factory, metadata=metadata) if factory is not None else field(default=default, metadata=metadata)


def declared(cls):
    """``cls`` with the ``__init__`` scikit-learn reads (keyword-only, storing each parameter as given) and the
    ``_parameter_constraints`` built from its :func:`param` declarations."""
    cls = dataclass(eq=False, repr=False, kw_only=True)(cls)
    cls._parameter_constraints = {f.name: f.metadata["constraints"] for f in fields(cls)}
    return cls


def net_params(estimator) -> dict:
    """The parameters the estimator's network is built with (those declared ``net=True``)."""
    return {f.name: getattr(estimator, f.name) for f in fields(estimator) if f.metadata.get("net")}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; anything else as torch reads it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def available_memory(device: torch.device) -> int:
    """Bytes free for a network on ``device``: the GPU's free memory, else the machine's (:func:`constraints.available_memory`)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return system_memory()


def check_network_size(build, device: torch.device, sizes: dict) -> None:
    """Refuse a network whose weights, gradients and Adam's state alone exceed the memory available on ``device``.

    ``build()`` makes the network; it is built on the meta device (no memory, no random draws). ``sizes`` are
    the config keys and values that set its size, for the message."""
    with torch.device("meta"):
        n = sum(p.numel() for p in build().parameters())
    need, have = n * BYTES_PER_PARAMETER, available_memory(device)
    if need > have:
        named = ", ".join(f"{key}={value!r}" for key, value in sizes.items())
        raise InvalidParameterError(next(iter(sizes)).rpartition(".")[2],
                                    f"{named}: a network of {n:,} parameters needs at least {need / 2**30:.1f} GiB for its "
                                    f"weights, gradients and Adam's state; {have / 2**30:.1f} GiB is available on {device}")


def set_threads(n_threads: int = 0) -> int:
    """Set torch's intra-op threads to ``n_threads``, or to the CPUs this process may use when 0."""
    n = int(n_threads) if n_threads and n_threads > 0 else available_cpus()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


@contextmanager
def _threads(device: torch.device, n_threads: int):
    """``set_threads`` on the CPU for the duration of a fit or predict; the previous setting restored after."""
    previous = torch.get_num_threads()
    if device.type == "cpu":
        set_threads(n_threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def batch_mrrmse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of the root-mean-square error across genes (the competition metric)."""
    return torch.sqrt(torch.mean(torch.square(prediction - target), dim=1) + 1e-12).mean()


def make_loss(name: str, huber_delta: float = 1.0):
    if name == "mse":
        return nn.functional.mse_loss
    if name == "mrrmse":
        return batch_mrrmse
    if name == "huber":
        return lambda prediction, target: nn.functional.huber_loss(prediction, target, delta=huber_delta)
    raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}")


def _optimizer(parameters, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):  # no fused kernel for this device or dtype
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, foreach=True)


@contextmanager
def _seeded(seed: int, device: torch.device):
    """Every draw inside (initialisation, dropout, shuffles) from ``seed``; the global RNG restored after."""
    devices = [device.index or 0] if device.type == "cuda" else []
    deterministic = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(deterministic)


def _predict(module: nn.Module, inputs: tuple[torch.Tensor, ...], batch_rows: int = 4096) -> torch.Tensor:
    n = len(inputs[0])
    with torch.inference_mode():
        return torch.cat([module(*(t[i : i + batch_rows] for t in inputs)) for i in range(0, n, batch_rows)])


def _round(value: float) -> float:
    return float(f"{value:.6g}")


@declared
class TrainSettings(BaseEstimator):
    """How every torch model trains (config table ``[params.train]``); each setting declared once, here."""

    loss: str = param("mse", StrOptions(set(LOSSES)))
    huber_delta: float = param(1.0, Interval(Real, 0, None, closed="neither"))
    lr: float = param(1e-3, Interval(Real, 0, None, closed="neither"))  # Adam
    weight_decay: float = param(0.0, Interval(Real, 0, None, closed="left"))
    batch_size: int = param(128, Interval(Integral, 0, None, closed="left"))  # 0: full batch
    max_epochs: int = param(60, Interval(Integral, 1, None, closed="left"))
    patience: int = param(10, Interval(Integral, 1, None, closed="left"))  # epochs without a better inner MRRMSE
    lr_patience: int = param(4, Interval(Integral, 0, None, closed="left"))  # ReduceLROnPlateau
    lr_factor: float = param(0.5, Interval(Real, 0, 1, closed="neither"))
    min_lr: float = param(1e-5, Interval(Real, 0, None, closed="left"))
    clip_norm: float = param(1.0, Interval(Real, 0, None, closed="left"))  # 0: no gradient clipping
    # the share of the fold's training compounds the inner split draws for selection (see select_then_refit); 0: none
    valid_fraction: float = param(0.15, Interval(Real, 0, 1, closed="left"))
    refit: bool = param(True, "boolean")  # retrain on all the rows for the selected epochs
    device: str = param("auto", str)
    n_threads: int = param(0, Interval(Integral, 0, None, closed="left"))  # 0: the CPUs this process may use

    def _check_params(self) -> None:
        """The device exists on this machine and ``n_threads`` is at most the CPUs this process may use."""
        check_device(self.device)
        cpus = available_cpus()
        if self.n_threads > cpus:
            raise InvalidParameterError("n_threads", f"params.train.n_threads={self.n_threads}: this process may use "
                                                     f"{cpus} CPU(s); at most {cpus} (0: all of them)")


def check_device(device: str) -> torch.device:
    """The torch device ``device`` names, refused (naming ``params.train.device``) unless this machine has it."""
    known = f"'auto', {', '.join(repr(t) for t in DEVICE_TYPES)} or 'cuda:N'"
    try:
        resolved = resolve_device(device)
    except (RuntimeError, ValueError, TypeError):
        raise InvalidParameterError("device", f"params.train.device={device!r}: not a device; use {known}") from None
    if resolved.type not in DEVICE_TYPES:
        raise InvalidParameterError("device", f"params.train.device={device!r}: perturbkit trains on {known}")
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (resolved.index or 0) >= count:
            raise InvalidParameterError("device", f"params.train.device={device!r}: this machine has {count or 'no'} CUDA "
                                                  f"device(s); use 'auto' (CUDA when present, else the CPU) or 'cpu'")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InvalidParameterError("device", f"params.train.device={device!r}: this machine has no MPS device; use 'auto' or 'cpu'")
    return resolved


def select_then_refit(fit, split, n_rows: int, settings: TrainSettings, seed: int) -> dict:
    """Honest model selection, the one way every torch model does it; returns the history.

    ``split(fraction, seed)`` draws the inner split of the fold's training rows (positions ``0..n_rows-1``):
    ``fraction`` (``valid_fraction``) of their compounds, what a drawn compound loses being the model's
    (all its rows, or one); it returns the rows kept and the rows held out. ``fit(rows, held_out, epochs,
    what)`` fits the model's state (features, table, network) on ``rows`` and returns the training
    history: with ``held_out``, the epoch with the best MRRMSE on them is selected; with ``epochs``, that
    many are trained. With ``refit`` a fresh model is then fitted on every row for the selected epochs;
    ``valid_fraction = 0`` fits ``max_epochs`` on every row.
    """
    every_row = np.arange(n_rows)
    if settings.valid_fraction <= 0:
        return fit(every_row, None, None, "training")
    inner, held_out = split(settings.valid_fraction, seed)
    history = fit(inner, held_out, None, "inner split")
    history["inner_split"] = {"train_rows": int(len(inner)), "valid_rows": int(len(held_out))}
    if settings.refit:
        history["refit"] = fit(every_row, None, max(1, history["best_epoch"]), "refit")
    return history


def _train_epoch(module: nn.Module, inputs: tuple[torch.Tensor, ...], targets: torch.Tensor, objective, optimizer,
                 parameters, clip_norm: float, n_batches: int, generator: torch.Generator | None) -> float:
    """One pass over the training rows in ``n_batches`` shuffled batches (one: all rows, unshuffled); the mean loss."""
    n = len(targets)
    module.train()
    if n_batches == 1:
        batches = [None]
    else:
        order = torch.randperm(n, generator=generator).to(targets.device)
        batches = torch.tensor_split(order, n_batches)
    total = torch.zeros((), device=targets.device)
    for rows in batches:
        batch_inputs = inputs if rows is None else tuple(t[rows] for t in inputs)
        batch_targets = targets if rows is None else targets[rows]
        optimizer.zero_grad(set_to_none=True)
        batch_loss = objective(module(*batch_inputs), batch_targets)
        batch_loss.backward()
        if clip_norm > 0:
            nn.utils.clip_grad_norm_(parameters, clip_norm, foreach=True)
        optimizer.step()
        total += batch_loss.detach() * len(batch_targets)
    return float(total) / n


def train_module(
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    targets: torch.Tensor,
    settings: TrainSettings,
    valid: tuple[tuple[torch.Tensor, ...], torch.Tensor] | None = None,
    *,
    epochs: int | None = None,
    generator: torch.Generator | None = None,
    what: str = "training",
) -> dict:
    """Train ``module(*inputs) -> predictions`` in place; returns the per-epoch history.

    ``inputs`` and ``targets`` (and ``valid``) are tensors on the module's device, row-aligned.
    With ``valid`` (an inner split of the training rows), early-stops on its MRRMSE and restores
    the best epoch's weights; without, trains ``epochs`` (default ``max_epochs``) epochs. ``what``
    names the training on its progress bar.
    """
    objective = make_loss(settings.loss, settings.huber_delta)
    optimizer = _optimizer(module.parameters(), settings.lr, settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=settings.lr_factor, patience=settings.lr_patience, min_lr=settings.min_lr
    )
    parameters = [p for p in module.parameters() if p.requires_grad]
    n = len(targets)
    batch_size = settings.batch_size
    n_batches = 1 if batch_size <= 0 or batch_size >= n else math.ceil(n / batch_size)
    epochs = settings.max_epochs if valid is not None or epochs is None else epochs
    history = {"epoch": [], "train_loss": [], "valid_loss": [], "valid_mrrmse": [], "lr": [], "seconds": []}
    best_score, best_epoch, best_state = math.inf, 0, None
    started = time.perf_counter()
    with progress_bar(epochs, what, "epoch") as bar:
        for epoch in range(1, epochs + 1):
            epoch_start = time.perf_counter()
            train_loss = _train_epoch(module, inputs, targets, objective, optimizer, parameters, settings.clip_norm,
                                      n_batches, generator)
            history["epoch"].append(epoch)
            history["train_loss"].append(_round(train_loss))
            history["lr"].append(_round(optimizer.param_groups[0]["lr"]))
            if valid is None:
                scheduler.step(train_loss)
                history["valid_loss"].append(None)
                history["valid_mrrmse"].append(None)
            else:
                module.eval()
                valid_inputs, valid_targets = valid
                prediction = _predict(module, valid_inputs)
                score = float(batch_mrrmse(prediction, valid_targets))
                history["valid_loss"].append(_round(float(objective(prediction, valid_targets))))
                history["valid_mrrmse"].append(_round(score))
                scheduler.step(score)
                if score < best_score:
                    best_score, best_epoch = score, epoch
                    best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
            history["seconds"].append(_round(time.perf_counter() - epoch_start))
            shown = {"loss": f"{train_loss:.4g}"}
            if valid is not None:
                shown.update(inner=f"{score:.4f}", best=f"{best_score:.4f}@{best_epoch}")
            bar.set_postfix(shown, refresh=False)
            bar.update()
            if not math.isfinite(train_loss):
                logger.warning("epoch %d: training loss is %s; stopping", epoch, train_loss)
                break
            if valid is not None and epoch - best_epoch >= settings.patience:
                break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    history["best_epoch"] = best_epoch if valid is not None else len(history["epoch"])
    history["best_valid_mrrmse"] = _round(best_score) if valid is not None else None
    history["loss"] = settings.loss
    history["total_seconds"] = _round(time.perf_counter() - started)
    return history


class CellTypeGain(nn.Module):
    """``net(x) * gain[cell type]``: a learned output scale per cell type (1 at the start and for unseen ones).

    The cell type's code is the last token column; the wrapped network gets the others.
    """

    def __init__(self, net: nn.Module, n_cell_types: int):
        super().__init__()
        self.net = net
        self.output = net.output
        self.log_gain = nn.Embedding(n_cell_types, 1, padding_idx=0)
        nn.init.zeros_(self.log_gain.weight)

    def forward(self, continuous: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(continuous, tokens[:, :-1]) * torch.exp(self.log_gain(tokens[:, -1]))


@declared
class TorchRegressor(RegressorMixin, BaseEstimator):
    """Base estimator: features, :func:`train_module` under :func:`select_then_refit`, predictions to all genes.

    Subclasses are :func:`declared` and declare their architecture with :func:`param` (``net=True``: the
    network's constructor takes it), may redeclare ``features`` with their default feature set, name
    their categorical token fields in ``token_fields`` (empty: none), name the parameters that set the
    network's size in ``size_params``, and build the network in ``_network(n_continuous,
    cardinalities, n_outputs)`` from :func:`net_params`; its ``forward(continuous, tokens)`` returns
    predictions and its ``output`` is the final ``nn.Linear``.
    """

    features: FeatureBuilder = param(None, FeatureBuilder, factory=FeatureBuilder)
    train: TrainSettings = param(None, TrainSettings, factory=TrainSettings)
    celltype_gain: bool = param(False, "boolean")  # a learned output scale per cell type
    random_state: int = param(0, Interval(Integral, 0, None, closed="left"))

    token_fields = ()
    size_params = ("hidden",)

    def _network(self, n_continuous: int, cardinalities: list[int], n_outputs: int) -> nn.Module:
        raise NotImplementedError

    def _check_params(self) -> None:
        """Cross-parameter and machine checks, before any fit (the constraints are checked first): the training
        settings', the subclass's own, and the network's size against the memory available (at one input and
        one output: a lower bound; ``fit`` checks again with the fold's sizes)."""
        self.train._check_params()
        self._check_size(1, 1)

    def _check_size(self, n_continuous: int, n_outputs: int) -> None:
        cardinalities = [2] * len(self._fields)
        check_network_size(lambda: self._module(n_continuous, cardinalities, n_outputs), check_device(self.train.device),
                           {f"params.{name}": getattr(self, name) for name in self.size_params})

    @property
    def _fields(self) -> tuple[str, ...]:
        """Token fields, with the cell type appended for the per-cell-type gain."""
        return (*self.token_fields, "cell_type") if self.celltype_gain else self.token_fields

    def _module(self, n_continuous: int, cardinalities: list[int], n_outputs: int) -> nn.Module:
        n_tokens = len(self.token_fields)
        module = self._network(n_continuous, cardinalities[:n_tokens], n_outputs)
        return CellTypeGain(module, cardinalities[-1]) if self.celltype_gain else module

    # -- inputs -------------------------------------------------------------------------------
    def _continuous(self, X: pd.DataFrame, y=None) -> np.ndarray:
        features = self.features_.fit_transform(X, y) if y is not None else self.features_.transform(X)
        features = np.asarray(features, dtype=np.float32)
        if y is not None:
            mean, std = features.mean(axis=0), features.std(axis=0)
            # Constant columns (a bit no training compound has, a degenerate principal component of
            # the target statistics whose spread is float noise) carry nothing to learn: dropped.
            self.kept_columns_ = np.flatnonzero(std > MIN_INPUT_STD * np.maximum(1.0, np.abs(mean)))
            self.input_mean_ = mean[self.kept_columns_]
            self.input_scale_ = std[self.kept_columns_]
        features = (features[:, self.kept_columns_] - self.input_mean_) / self.input_scale_
        return features.astype(np.float32)

    def _tokens(self, X: pd.DataFrame, fit: bool = False) -> np.ndarray:
        if fit:
            self.vocabularies_ = {c: pd.Index(sorted(X[c].astype(str).unique())) for c in self._fields}
        codes = [self.vocabularies_[c].get_indexer(X[c].astype(str)) + 1 for c in self._fields]
        return np.stack(codes, axis=1).astype(np.int64) if codes else np.zeros((len(X), 0), dtype=np.int64)

    def _tensors(self, X: pd.DataFrame, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        continuous = torch.from_numpy(self._continuous(X, y)).to(self.device_)
        tokens = torch.from_numpy(self._tokens(X, fit=y is not None)).to(self.device_)
        return continuous, tokens

    # -- estimator ----------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y) -> TorchRegressor:
        validate_params(self)
        settings = self.train
        self.device_ = resolve_device(settings.device)
        y = np.asarray(y, dtype=np.float32)

        def fit_rows(rows, held_out, epochs, what):
            valid = None if held_out is None else (X.iloc[held_out], y[held_out])
            return self._train(X.iloc[rows], y[rows], settings, valid=valid, epochs=epochs, what=what)

        with _threads(self.device_, settings.n_threads):
            self.history_ = select_then_refit(fit_rows, lambda fraction, seed: self._inner_split(X, fraction, seed),
                                              len(y), settings, int(self.random_state))
        return self

    @staticmethod
    def _inner_split(X: pd.DataFrame, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """A drawn compound loses all its rows: at test a compound is new to the network."""
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        return next(splitter.split(X, groups=X["sm_name"].astype(str).to_numpy()))

    def _train(self, X: pd.DataFrame, y: np.ndarray, settings: TrainSettings, *, valid=None, epochs=None, what="training") -> dict:
        """Fit features and a fresh network on ``(X, y)``; the fitted state replaces any earlier one."""
        self.features_ = clone(self.features)
        inputs = self._tensors(X, y)
        targets = torch.from_numpy(y).to(self.device_)
        if valid is not None:
            valid = (self._tensors(valid[0]), torch.from_numpy(valid[1]).to(self.device_))
        cardinalities = [len(self.vocabularies_[c]) + 1 for c in self._fields]
        self.n_features_in_ = int(inputs[0].shape[1])
        self._check_size(self.n_features_in_, y.shape[1])
        generator = torch.Generator().manual_seed(int(self.random_state))
        with _seeded(int(self.random_state), self.device_):
            module = self._module(self.n_features_in_, cardinalities, y.shape[1]).to(self.device_)
            with torch.no_grad():
                module.output.bias.copy_(targets.mean(dim=0))
            history = train_module(module, inputs, targets, settings, valid, epochs=epochs, generator=generator, what=what)
        self.module_ = module
        self.n_parameters_ = sum(p.numel() for p in module.parameters())
        history["parameters"] = self.n_parameters_
        history["inputs"] = self.n_features_in_
        return history

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        self.module_.eval()
        with _threads(self.device_, self.train.n_threads):
            prediction = _predict(self.module_, self._tensors(X))
        return prediction.float().cpu().numpy()


class TargetPCARegressor(TransformedTargetRegressor):
    """The regressor on the top ``target_components`` target-PCA scores of the rows given to ``fit``; more
    components than those rows' rank is refused, not clamped."""

    def fit(self, X, y, **fit_params):
        rows, genes = np.shape(y)
        n = self.transformer.n_components
        if n > min(rows, genes):
            raise InvalidParameterError("target_components", f"params.target_components={n}: more target-PCA scores than the "
                                        f"fold's rank, at most {min(rows, genes)} here ({rows} training rows x {genes} genes)")
        return super().fit(X, y, **fit_params)


def _known_keys(table: str, given: dict, known) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) {[f'{table}.{k}' for k in unknown]}; known keys of {table}: {', '.join(sorted(known))}")


def train_settings(train: dict | None, defaults: TrainSettings | None = None) -> TrainSettings:
    """A config's ``[params.train]`` table over the model's default settings; an unknown key is named, with the known ones."""
    defaults = TrainSettings() if defaults is None else defaults
    _known_keys("params.train", train or {}, defaults.get_params(deep=False))
    return clone(defaults).set_params(**(train or {}))


def torch_factory(estimator: type[TorchRegressor]):
    """A registry factory: ``[features]`` -> FeatureBuilder, ``[params.train]`` -> TrainSettings (both over the
    estimator's defaults when absent), and ``target_components > 0`` wraps the estimator to predict the fold's
    target-PCA scores."""

    def factory(features: dict | None = None, train: dict | None = None, target_components: int = 0, **params):
        from perturbkit.features.pca import WidePCA

        default = estimator()
        _known_keys("params", params, [*(f.name for f in fields(estimator) if f.name not in ("features", "train")), "target_components"])
        if isinstance(target_components, bool) or not isinstance(target_components, Integral) or target_components < 0:
            raise InvalidParameterError("target_components", f"params.target_components={target_components!r}: a whole number "
                                        f">= 0 (0: predict every gene; k: the fold's top k target-PCA scores)")
        model = estimator(features=default.features if features is None else FeatureBuilder(**features),
                          train=train_settings(train, default.train), **params)
        if target_components == 0:
            return model
        # PCA fitted on the rows given to fit (the fold's training rows); predictions inverted to genes.
        return TargetPCARegressor(regressor=model, transformer=WidePCA(int(target_components)), check_inverse=False)

    return factory
