"""Thin Lightning glue, one module per callback: when to measure, where to report."""
