"""Maintenance commands that combine model families and the report (demo data, experiments);
not imported by the app or by core."""
