"""DDL-CXR: forecast a later chest X-ray from a prior one and the EHR recorded in between."""
