"""RDKit basics shared by the demo generator and the chemistry features: SMILES parsing, Morgan fingerprints.

This module imports RDKit; import it only where chemistry is used, so that ``perturbkit.data`` and
``perturbkit.features`` load without RDKit for models that use no chemistry. Every per-SMILES
computation is cached, so repeated calls over the same compounds are cheap and return identical
values. A SMILES RDKit cannot parse never raises: it gets an all-zero row and one warning per call
that names it; :func:`invalid_smiles` lists such SMILES for validation up front.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdFingerprintGenerator

# Enough for every compound a user is likely to touch in one process, while bounding memory.
CACHE_SIZE = 8192


@lru_cache(maxsize=CACHE_SIZE)
def mol(smiles: object) -> Chem.Mol | None:
    """The parsed molecule, or None when the SMILES is unparseable, empty or not a string."""
    if not isinstance(smiles, str):
        return None
    # RDKit reports parse errors on stderr itself; we warn once per call instead.
    with rdBase.BlockLogs():
        parsed = Chem.MolFromSmiles(smiles)
    if parsed is None or parsed.GetNumAtoms() == 0:
        return None
    return parsed


@lru_cache(maxsize=16)
def _morgan_generator(radius: int, n_bits: int):
    return rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)


@lru_cache(maxsize=CACHE_SIZE)
def _fingerprint(smiles: object, radius: int, n_bits: int) -> np.ndarray:
    parsed = mol(smiles)
    if parsed is None:
        bits = np.zeros(n_bits, dtype=np.uint8)
    else:
        bits = _morgan_generator(radius, n_bits).GetFingerprintAsNumPy(parsed).astype(np.uint8)
    # Shared by every caller through the cache, so it must not be modified in place.
    bits.flags.writeable = False
    return bits


def invalid_smiles(smiles: Sequence[str]) -> list[str]:
    """The SMILES (in input order, repeats kept) that RDKit cannot turn into a molecule."""
    return [s for s in smiles if mol(s) is None]


def warn_invalid(smiles: Sequence[str], stacklevel: int = 3) -> None:
    """One warning naming every SMILES of ``smiles`` that RDKit cannot parse (their rows are zero)."""
    bad = invalid_smiles(smiles)
    if bad:
        warnings.warn(
            f"RDKit cannot parse {len(bad)} SMILES; their feature rows are all zero: {bad!r}",
            stacklevel=stacklevel,
        )


def morgan_fingerprints(smiles: Sequence[str], radius: int = 2, n_bits: int = 2048) -> np.ndarray:
    """Morgan (ECFP-like) bit fingerprints, one uint8 row of ``n_bits`` per SMILES."""
    smiles = list(smiles)
    warn_invalid(smiles)
    if not smiles:
        return np.zeros((0, n_bits), dtype=np.uint8)
    return np.stack([_fingerprint(s, radius, n_bits) for s in smiles])
