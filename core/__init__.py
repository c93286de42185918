"""Clinical Synthesis Studio inference core.

A plain library: no Streamlit, no prints, no global state. Pages call one entry point per task
and catch only :class:`core.errors.CoreError`.
"""

__version__ = "0.1.0"
