"""Release: the gate a synthetic set must pass before export, and the release manifest."""
