"""Synthetic extract generator: a de-identified-EHR-like extract in the canonical layout, with its ground truth.

    from pipelines.synthetic import generate_extract
    truth = generate_extract("data/sample", patients=5000, seed=42, fmt="csv")

See docs/synthetic_data.md for the model, its sources and the truth contract; ``legcramp-generate`` is the CLI.
"""

from .generator import FORMATS, GENERATOR_VERSION, generate_extract

__all__ = ["FORMATS", "GENERATOR_VERSION", "generate_extract"]
