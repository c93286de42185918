"""Shared encodings of cohorts into model space, used by every family and by the metrics:
mixed-type record tables <-> [0, 1] vectors (:mod:`core.encoding.vectors`)."""
