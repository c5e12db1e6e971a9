"""perturbkit: predict drug-induced differential expression in immune cells, validated the way the test is built."""

__version__ = "0.1.0"
