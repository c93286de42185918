"""EHRPD-style visit-sequence generation (after Zhong et al., KDD 2024, and MedDiffusion, SDM
2024): a time-aware encoder of the visit history, a predictive diffusion model of the next
visit's codes, a time-gap head and a stop head."""
