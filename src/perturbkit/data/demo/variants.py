"""The demo variants: the structural parameters of each world (docs/demo.md describes them)."""

from __future__ import annotations

from dataclasses import dataclass

from perturbkit.errors import PerturbkitError

DEFAULT_VARIANT = "default"
# Kaggle's private rows scored ~1.3x its public ones; this head start (in std of log strength) gives
# the default world that ratio for transfer_ridge (docs/demo.md).
PRIVATE_LEAD = 1.25


class UnknownVariantError(PerturbkitError, ValueError):
    """A demo variant name that :func:`list_variants` does not know."""


@dataclass(frozen=True)
class Variant:
    """The structural parameters of one demo world (docs/demo.md describes the model)."""

    name: str
    summary: str  # one line for ``perturbkit demo --list``
    carry_over: float  # correlation of B/Myeloid program mix and gene loadings with the lymphoid ones
    bm_interaction: float  # weight of the B/Myeloid x compound effect no other cell type reveals
    n_programs: int = 10  # rank of the program response shared across cell types
    program_decay: float = 0.5  # program strengths fall as r**-decay: higher = lower effective rank
    chemistry_share: float = 0.6  # share of a compound's latent variance explained by its fingerprint
    bm_gain: float = 1.0  # scale of B/Myeloid compound effects (before cells per well)
    bm_cells: float = 1.0  # cells in a B/Myeloid well relative to a T-cell well
    toxicity: float = 0.0  # how strongly a compound's toxicity depletes B/Myeloid wells (0: not at all)
    potency_spread: float = 0.5  # sigma of log potency
    strong_factor: float = 4.0  # potency of a strong compound relative to a typical one
    strong_share: float = 0.04  # share of strong compounds among the test compounds
    panel_strong_share: float = 0.5  # share of strong compounds among the 17 B/Myeloid training compounds
    bm_saturation: float = 0.0  # > 0: B/Myeloid program activations level off at this many t units (tanh); 0: linear
    bm_gated: float = 0.0  # weight of a program only B (or only Myeloid) cells express, gated by the compound latent
    private_lead: float = PRIVATE_LEAD  # head start of Kaggle's private test compounds, in std of log strength (0: none)


_VARIANTS: dict[str, Variant] = {
    variant.name: variant
    for variant in (
        Variant(
            name="default",
            summary="moderate carry-over of the lymphoid response to B/Myeloid, a strong training panel",
            carry_over=0.8,
            bm_interaction=0.5,
        ),
        Variant(
            name="carryover",
            summary="B/Myeloid responses are a near-linear map of the lymphoid ones; low rank, chemistry-driven",
            carry_over=0.95,
            bm_interaction=0.2,
            n_programs=6,
            program_decay=0.8,
            chemistry_share=0.85,
        ),
        Variant(
            name="divergent",
            summary="weak carry-over, high-rank cell-type interaction, little chemistry signal",
            carry_over=0.5,
            bm_interaction=0.8,
            n_programs=24,
            program_decay=0.2,
            chemistry_share=0.2,
            bm_gain=0.8,
        ),
        Variant(
            name="fewcells",
            summary="t statistics scale with cells per well: B/Myeloid wells are small and toxic compounds empty them",
            carry_over=0.85,
            bm_interaction=0.4,
            bm_gain=1.3,
            bm_cells=0.5,
            toxicity=1.0,
            strong_share=0.08,
            panel_strong_share=0.2,
        ),
        Variant(
            name="nonlinear",
            summary="B/Myeloid programs saturate with effect size, and each has a program gated by the compound",
            carry_over=0.85,
            bm_interaction=0.35,
            bm_gain=1.25,
            bm_saturation=0.1,
            bm_gated=0.5,
        ),
    )
}


def list_variants() -> list[str]:
    """The names of the demo variants, the default first."""
    return list(_VARIANTS)


def get_variant(name: str) -> Variant:
    """The parameters of demo variant ``name``; an unknown name raises an error listing the known ones."""
    try:
        return _VARIANTS[name]
    except KeyError:
        raise UnknownVariantError(f"unknown demo variant {name!r}; known: {list_variants()}") from None


@dataclass(frozen=True)
class _CellResponse:
    gain: float  # scale of every compound effect in this cell type, in t units
    program_agreement: float  # correlation of its program mix with the shared (lymphoid) mix
    loading_agreement: float  # correlation of its gene loadings with the shared loadings
    interaction: float  # weight of the compound x cell-type effect no other cell type reveals
    saturation: float = 0.0  # level (t units) at which program activations saturate; 0: linear
    gated: float = 0.0  # weight of the program only this cell type expresses (see _gated_program)


# Lymphoid cell types are alike in every variant; CD8+ is weak (noise-dominated like the real CD8+).
_LYMPHOID_RESPONSES: dict[str, _CellResponse] = {
    "NK cells": _CellResponse(gain=1.0, program_agreement=0.9, loading_agreement=0.9, interaction=0.35),
    "T cells CD4+": _CellResponse(gain=0.9, program_agreement=0.9, loading_agreement=0.9, interaction=0.35),
    "T cells CD8+": _CellResponse(gain=0.5, program_agreement=0.85, loading_agreement=0.9, interaction=0.35),
    "T regulatory cells": _CellResponse(gain=1.0, program_agreement=0.9, loading_agreement=0.9, interaction=0.35),
}
# Myeloid cells are further from lymphocytes than B cells are.
_MYELOID_CARRY_OVER_LOSS = 0.1


def cell_response(variant: Variant, cell_type: str) -> _CellResponse:
    if cell_type in _LYMPHOID_RESPONSES:
        return _LYMPHOID_RESPONSES[cell_type]
    agreement = variant.carry_over - (_MYELOID_CARRY_OVER_LOSS if cell_type == "Myeloid cells" else 0.0)
    return _CellResponse(variant.bm_gain, agreement, agreement, variant.bm_interaction, variant.bm_saturation, variant.bm_gated)


def describe_variants() -> str:
    """What ``perturbkit demo --list`` prints: each variant and what differs in it."""
    return "\n".join(f"{name:<12} {get_variant(name).summary}" for name in list_variants())
