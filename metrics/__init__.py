"""Image-quality scores: piqa metrics with fair pairing, distribution-level fidelity/diversity in a
domain encoder's feature space, memorization, the score job and the generator leaderboard."""
