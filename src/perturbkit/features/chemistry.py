"""Chemistry feature blocks of compounds: Morgan fingerprints (from :mod:`perturbkit.chem`) and BRICS substructure counts.

This module imports RDKit, so :mod:`perturbkit.features` imports it only when a chemistry block is
asked for. Fragment counts are cached per SMILES like the fingerprints; an unparseable SMILES gets
an all-zero row and one warning per call that names it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
from rdkit import Chem
from rdkit.Chem import BRICS

from perturbkit.chem import CACHE_SIZE, invalid_smiles, mol, morgan_fingerprints, warn_invalid

__all__ = ["invalid_smiles", "morgan_fingerprints", "substructure_counts"]


@lru_cache(maxsize=CACHE_SIZE)
def _fragment_counts(smiles: object) -> tuple[tuple[str, int], ...]:
    """BRICS fragments of one compound as sorted (canonical fragment SMILES, count) pairs."""
    parsed = mol(smiles)
    if parsed is None:
        return ()
    # BRICSDecompose returns a set and so loses repeats; breaking the bonds keeps every fragment.
    pieces = Chem.GetMolFrags(BRICS.BreakBRICSBonds(parsed), asMols=True)
    return tuple(sorted(Counter(Chem.MolToSmiles(piece) for piece in pieces).items()))


def substructure_counts(smiles: Sequence[str], min_count: int = 2) -> pd.DataFrame:
    """Compounds x BRICS fragments count matrix over the given compounds.

    Columns are canonical fragment SMILES (attachment points kept as RDKit's labelled dummy atoms,
    e.g. ``[16*]c1ccccc1``), sorted, restricted to fragments present in at least ``min_count`` of the
    given compounds. Rows follow the input order, indexed by SMILES.
    """
    smiles = list(smiles)
    warn_invalid(smiles)
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
