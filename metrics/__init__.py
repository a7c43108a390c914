"""Image-quality scores: piqa metrics with fair pairing, distribution-level fidelity/diversity in the
TF-FID Inception-v3 space and a domain encoder's, memorization, and the scoring of whole synthetic sets
(typed results)."""
