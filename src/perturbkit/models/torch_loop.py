"""One training loop for every torch model, and the estimator base class around it.

What a fold's torch model does, in order:

1. **Inputs, once per fold.** The model's :class:`~perturbkit.features.FeatureBuilder` (one-hot
   keys, target statistics, RDKit chemistry, optional input PCA) is fitted on the fold's training
   rows only. Columns constant on those rows are dropped, the rest are standardised with the
   training rows' mean and standard deviation, and everything becomes float32 tensors on the
   device a single time; batches are index slices of them (no per-row Python work).
   Models with categorical *tokens* get integer codes too: each category seen in the training
   rows has its own code, every other category (a compound the fold never trained on) code 0,
   a zero embedding.
2. **Training.** Adam (fused, else foreach) at ``lr`` (1e-3), loss ``mse`` by default
   (``mrrmse``, the competition metric on the batch, and ``huber`` selectable), gradient-norm
   clipping, full-batch steps by default (``batch_size = 0``; a positive size gives shuffled
   batches of about that size, never a tiny last one). The output layer's bias starts at the
   training rows' mean profile. Seeds are fixed: the module's initialisation, dropout and
   shuffling draw from a generator seeded with ``random_state``, and the process's global RNG
   state is left as it was.
3. **Model selection on the validation rows.** With ``eval_set`` (the CV harness passes the
   fold's validation rows), every epoch is scored by the validation MRRMSE, which drives
   ``ReduceLROnPlateau`` and early stopping; the best epoch's weights are restored at the end.
   The fold's validation rows are used for this model selection only: they never enter the
   features, the standardisation or a gradient. Its out-of-fold score is therefore slightly
   optimistic by the choice of the stopping epoch, like any early-stopped model scored on its
   stopping set.
   Without ``eval_set`` (a refit on all rows, or a plain ``fit``) there is nothing to select
   on: the model trains exactly ``refit_epochs`` epochs (``max_epochs`` when 0), and the
   learning-rate schedule follows the training loss.
4. **History.** Per-epoch training loss, validation loss and validation MRRMSE, learning rate
   and the best epoch are kept in ``history_`` (the CV harness stores it in the run's meta and
   plots it per fold).

``device="auto"`` trains on CUDA when ``torch.cuda.is_available()``, else on the CPU, where
``torch.set_num_threads`` is set to the CPUs this process may use (``n_threads`` to override)
during ``fit`` and ``predict``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, RegressorMixin, clone
from torch import nn

from perturbkit.features import FeatureBuilder

__all__ = ["LOSSES", "TorchRegressor", "batch_mrrmse", "make_loss", "resolve_device", "set_threads", "train_module"]

LOSSES = ("mse", "mrrmse", "huber")
MIN_INPUT_STD = 1e-4  # input columns whose training-row spread is below this are dropped
logger = logging.getLogger("perturbkit.torch")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; anything else as torch reads it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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


def train_module(
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    targets: torch.Tensor,
    valid: tuple[tuple[torch.Tensor, ...], torch.Tensor] | None = None,
    *,
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
    generator: torch.Generator | None = None,
) -> dict:
    """Train ``module(*inputs) -> predictions`` in place; returns the per-epoch history.

    ``inputs`` and ``targets`` (and ``valid``) are tensors on the module's device, row-aligned.
    With ``valid``, early-stops on its MRRMSE and restores the best epoch's weights; without,
    trains ``refit_epochs`` (``max_epochs`` when 0) epochs.
    """
    objective = make_loss(loss, huber_delta)
    optimizer = _optimizer(module.parameters(), lr, weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=lr_factor, patience=lr_patience, min_lr=min_lr)
    parameters = [p for p in module.parameters() if p.requires_grad]
    n = len(targets)
    n_batches = 1 if batch_size <= 0 or batch_size >= n else math.ceil(n / batch_size)
    epochs = max_epochs if valid is not None or refit_epochs <= 0 else refit_epochs
    history = {"epoch": [], "train_loss": [], "valid_loss": [], "valid_mrrmse": [], "lr": [], "seconds": []}
    best_score, best_epoch, best_state = math.inf, 0, None
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        epoch_start = time.perf_counter()
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
        train_loss = float(total) / n
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
        if not math.isfinite(train_loss):
            logger.warning("epoch %d: training loss is %s; stopping", epoch, train_loss)
            break
        if valid is not None and epoch - best_epoch >= patience:
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    history["best_epoch"] = best_epoch if valid is not None else len(history["epoch"])
    history["best_valid_mrrmse"] = _round(best_score) if valid is not None else None
    history["loss"] = loss
    history["total_seconds"] = _round(time.perf_counter() - started)
    return history


class TorchRegressor(RegressorMixin, BaseEstimator):
    """Base estimator: features once per fold, :func:`train_module`, predictions to all genes.

    Subclasses list their hyper-parameters in ``__init__`` (scikit-learn reads them from its
    signature), name their categorical token fields in ``token_fields`` (empty: none) and build
    the network in ``_build_module(n_continuous, cardinalities, n_outputs)``; the network's
    ``forward(continuous, tokens)`` returns predictions and its ``output`` attribute is the final
    ``nn.Linear``. The training parameters every subclass takes are those of :func:`train_module`
    plus ``features``, ``device``, ``n_threads`` and ``random_state``.
    """

    token_fields: tuple[str, ...] = ()
    TRAIN_PARAMS = (
        "loss",
        "huber_delta",
        "lr",
        "weight_decay",
        "batch_size",
        "max_epochs",
        "refit_epochs",
        "patience",
        "lr_patience",
        "lr_factor",
        "min_lr",
        "clip_norm",
    )

    def _build_module(self, n_continuous: int, cardinalities: list[int], n_outputs: int) -> nn.Module:
        raise NotImplementedError

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
            self.vocabularies_ = {c: pd.Index(sorted(X[c].astype(str).unique())) for c in self.token_fields}
        codes = [self.vocabularies_[c].get_indexer(X[c].astype(str)) + 1 for c in self.token_fields]
        return np.stack(codes, axis=1).astype(np.int64) if codes else np.zeros((len(X), 0), dtype=np.int64)

    def _tensors(self, X: pd.DataFrame, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        continuous = torch.from_numpy(self._continuous(X, y)).to(self.device_)
        tokens = torch.from_numpy(self._tokens(X, fit=y is not None)).to(self.device_)
        return continuous, tokens

    # -- estimator ----------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y, eval_set=None) -> TorchRegressor:
        self.device_ = resolve_device(self.device)
        with _threads(self.device_, self.n_threads):
            return self._fit(X, y, eval_set)

    def _fit(self, X: pd.DataFrame, y, eval_set) -> TorchRegressor:
        y = np.asarray(y, dtype=np.float32)
        self.features_ = clone(self.features if self.features is not None else FeatureBuilder())
        inputs = self._tensors(X, y)
        targets = torch.from_numpy(y).to(self.device_)
        valid = None
        if eval_set is not None:
            X_valid, y_valid = eval_set
            valid = (self._tensors(X_valid), torch.from_numpy(np.asarray(y_valid, dtype=np.float32)).to(self.device_))
        cardinalities = [len(self.vocabularies_[c]) + 1 for c in self.token_fields]
        self.n_features_in_ = int(inputs[0].shape[1])
        generator = torch.Generator().manual_seed(int(self.random_state))
        with _seeded(int(self.random_state), self.device_):
            module = self._build_module(self.n_features_in_, cardinalities, y.shape[1]).to(self.device_)
            with torch.no_grad():
                module.output.bias.copy_(targets.mean(dim=0))
            settings = {name: getattr(self, name) for name in self.TRAIN_PARAMS}
            self.history_ = train_module(module, inputs, targets, valid, generator=generator, **settings)
        self.module_ = module
        self.n_parameters_ = sum(p.numel() for p in module.parameters())
        self.history_["parameters"] = self.n_parameters_
        self.history_["inputs"] = self.n_features_in_
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        self.module_.eval()
        with _threads(self.device_, self.n_threads):
            prediction = _predict(self.module_, self._tensors(X))
        return prediction.float().cpu().numpy()
