"""Demo models (a shape classifier and a shape segmenter) and the synthetic data they learn from."""
