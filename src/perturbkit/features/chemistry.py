"""RDKit chemistry features of compounds: Morgan fingerprints and BRICS substructure counts.

Every per-SMILES computation is cached, so repeated calls over the same compounds are cheap and
return identical values. A SMILES RDKit cannot parse never raises: it gets an all-zero row and one
warning per call that names it; :func:`invalid_smiles` lists such SMILES for validation up front.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
from rdkit import Chem, rdBase
from rdkit.Chem import BRICS, rdFingerprintGenerator

# Enough for every compound a user is likely to touch in one process, while bounding memory.
_CACHE_SIZE = 8192


@lru_cache(maxsize=_CACHE_SIZE)
def _mol(smiles: object) -> Chem.Mol | None:
    """The parsed molecule, or None when the SMILES is unparseable, empty or not a string."""
    if not isinstance(smiles, str):
        return None
    # RDKit reports parse errors on stderr itself; we warn once per call instead.
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return mol


@lru_cache(maxsize=16)
def _morgan_generator(radius: int, n_bits: int):
    return rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)


@lru_cache(maxsize=_CACHE_SIZE)
def _fingerprint(smiles: object, radius: int, n_bits: int) -> np.ndarray:
    mol = _mol(smiles)
    if mol is None:
        bits = np.zeros(n_bits, dtype=np.uint8)
    else:
        bits = _morgan_generator(radius, n_bits).GetFingerprintAsNumPy(mol).astype(np.uint8)
    # Shared by every caller through the cache, so it must not be modified in place.
    bits.flags.writeable = False
    return bits


@lru_cache(maxsize=_CACHE_SIZE)
def _fragment_counts(smiles: object) -> tuple[tuple[str, int], ...]:
    """BRICS fragments of one compound as sorted (canonical fragment SMILES, count) pairs."""
    mol = _mol(smiles)
    if mol is None:
        return ()
    # BRICSDecompose returns a set and so loses repeats; breaking the bonds keeps every fragment.
    pieces = Chem.GetMolFrags(BRICS.BreakBRICSBonds(mol), asMols=True)
    return tuple(sorted(Counter(Chem.MolToSmiles(piece) for piece in pieces).items()))


def invalid_smiles(smiles: Sequence[str]) -> list[str]:
    """The SMILES (in input order, repeats kept) that RDKit cannot turn into a molecule."""
    return [s for s in smiles if _mol(s) is None]


def _warn_invalid(smiles: Sequence[str]) -> None:
    bad = invalid_smiles(smiles)
    if bad:
        warnings.warn(
            f"RDKit cannot parse {len(bad)} SMILES; their feature rows are all zero: {bad!r}",
            stacklevel=3,
        )


def morgan_fingerprints(smiles: Sequence[str], radius: int = 2, n_bits: int = 2048) -> np.ndarray:
    """Morgan (ECFP-like) bit fingerprints, one uint8 row of ``n_bits`` per SMILES."""
    smiles = list(smiles)
    _warn_invalid(smiles)
    if not smiles:
        return np.zeros((0, n_bits), dtype=np.uint8)
    return np.stack([_fingerprint(s, radius, n_bits) for s in smiles])


def substructure_counts(smiles: Sequence[str], min_count: int = 2) -> pd.DataFrame:
    """Compounds x BRICS fragments count matrix over the given compounds.

    Columns are canonical fragment SMILES (attachment points kept as RDKit's labelled dummy atoms,
    e.g. ``[16*]c1ccccc1``), sorted, restricted to fragments present in at least ``min_count`` of the
    given compounds. Rows follow the input order, indexed by SMILES.
    """
    smiles = list(smiles)
    _warn_invalid(smiles)
    per_compound = [dict(_fragment_counts(s)) for s in smiles]
    compounds_with = Counter(fragment for counts in per_compound for fragment in counts)
    fragments = sorted(f for f, n in compounds_with.items() if n >= min_count)
    column_of = {fragment: j for j, fragment in enumerate(fragments)}
    matrix = np.zeros((len(smiles), len(fragments)), dtype=np.int32)
    for i, counts in enumerate(per_compound):
        for fragment, count in counts.items():
            if fragment in column_of:
                matrix[i, column_of[fragment]] = count
    return pd.DataFrame(
        matrix,
        index=pd.Index(smiles, name="SMILES"),
        columns=pd.Index(fragments, name="fragment"),
    )
