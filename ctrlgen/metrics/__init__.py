"""Metrics of collapse and control (../shared/docs/METRICS.md), one short function each.

``mixture`` holds the 2D protocol (modes captured, high-quality share, reverse KL).
"""
