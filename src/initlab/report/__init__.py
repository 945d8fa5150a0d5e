"""Sweep reporting: a sweep dir's jobs (sweep.py), its tables (summary.py) and pictures (heatmap.py)."""
