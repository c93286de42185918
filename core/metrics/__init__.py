"""Fidelity, utility and privacy metrics: pure functions, arrays in, :class:`MetricResult` out."""
