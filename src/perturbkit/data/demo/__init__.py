"""Semi-synthetic demo worlds on the real competition layout, in several structurally different variants.

The real target values cannot be downloaded, so :func:`generate_demo` writes Kaggle's file set for
the real 614 training pairs, 255 test pairs and 18,211 genes plus the hidden truth of the test rows
(:mod:`perturbkit.data.hidden` reads it); :func:`demo_dir` caches worlds on disk and ``--data demo:NAME``
loads variant NAME (:func:`list_variants`). docs/demo.md describes the generative model, the
variants and their calibration against the real data (:func:`calibration`).

:mod:`.variants` holds the variants' parameters, :mod:`.model` draws the values, :mod:`.generator`
writes a world's files, :mod:`.cache` keeps worlds on disk, :mod:`.calibration` compares one with
the real figures.
"""

from perturbkit.data.demo.cache import demo_dir
from perturbkit.data.demo.calibration import REAL_TEST_SCORES, calibration
from perturbkit.data.demo.generator import DEMO_FILES, GENERATOR_VERSION, check_gene_count, generate_demo
from perturbkit.data.demo.variants import (
    DEFAULT_VARIANT,
    PRIVATE_LEAD,
    UnknownVariantError,
    Variant,
    describe_variants,
    get_variant,
    list_variants,
)

__all__ = [
    "DEFAULT_VARIANT",
    "DEMO_FILES",
    "GENERATOR_VERSION",
    "PRIVATE_LEAD",
    "REAL_TEST_SCORES",
    "UnknownVariantError",
    "Variant",
    "calibration",
    "check_gene_count",
    "demo_dir",
    "describe_variants",
    "generate_demo",
    "get_variant",
    "list_variants",
]
