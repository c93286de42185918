"""Streamlit-only helpers shared by pages (session state, widget groups, cached loaders)."""
