"""Hostile and odd inputs, generated in code at test time (no binary fixtures)."""
