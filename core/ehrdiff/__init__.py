"""EHRDiff: EDM-preconditioned score model on patient vectors (Yuan, Zhou, Yu; TMLR 2024)."""
