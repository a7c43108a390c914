"""The augmentation study: does adding a generator's images make the classifier better?

A study trains the same EfficientNet once per (arm, seed) and compares the arms on the real
test split. It is fair by construction:
- every arm takes the same number of optimizer steps (`TrainConfig.steps`);
- for a given seed every arm starts from the same real subset (`stratified_subset(fraction, seed)`);
- a generator learns only from real images the arm's classifier also sees: a recipe arm trains its
  generator inside each seed on exactly that seed's subset; a fixed set whose generator saw other
  real training images is refused unless the arm accepts the leak (and every result then says
  so); a set whose generator saw a validation or test image is refused always (`check_sets`);
- every generator arm is judged against the strongest of the cheap alternatives (class-balanced
  sampling, standard augmentation, both), not only against real only;
- synthetic images enter training data only; model selection uses the real validation split;
  the test split is evaluated once, with the selected weights.

A recipe's generator for one seed is a "gan" or "singan" child run of the study; each (arm, seed)
is a "study-arm" child run with its own directory, events and checkpoint (lab/engine/children.py: free
worker slots take them, the study runs the rest in its own process); the job adapters are in
lab/kinds/study.py. Each arm records what it actually trained and evaluated on
(`composition.json`, `data_seen.npz`), so fairness is checked on the data, not assumed. The
study then aggregates over seeds (mean with a Student-t 95% interval), compares the arms seed by
seed (paired t) and writes `summary.json` (`StudySummary`, what the Study page, the CLI, the
report and the leaderboard read). Its verdicts name every significant drop, the minimum
detectable difference and whether the baseline beats the trivial classifier at all.

Rooms: config (configs, presets, the arm plan), leaks (fixed sets' provenance), recipes (a
generator per seed), arm (one arm on one seed), summary (summary.json, expected precision),
verdicts (comparisons and sentences), report (tables, figures, HTML).
"""
