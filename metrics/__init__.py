"""Image-quality scores: piqa metrics with fair pairing, distribution-level fidelity/diversity in a
domain encoder's feature space, memorization, and the scoring of whole synthetic sets (typed results)."""
