"""Plotly figures and the exportable report (pure functions: data in, figure out)."""
