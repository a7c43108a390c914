"""Review page: score a synthetic set image by image, look through it worst first, keep or drop images by
keyboard (saved as they are made), or curate it by thresholds; either way a new set (lab/curation.py)."""
from __future__ import annotations

import streamlit as st

from data.config import ConfigError
from data.grid import png_data_uri, upscale
from data.synthetic import load_set
from lab.curation import (KIND, CurateConfig, curated_set, review_choices, save_choices, scores_of, write_by_rule,
                          write_reviewed)
from lab.engine.manage import sets_of
from lab.engine.runs import ACTIVE_STATES, list_runs
from lab.sets import list_sets
from metrics.curation import SCORE_TITLES, CurationConfig, CurationRule, kept_per_class, select, worst_first
from pages.common import ensure_app_navigation, launch, live, option_input, plain, run_actions, run_status

PAGE_SIZE = 48  # images the keyboard gallery shows at once
REMEMBERED = "review_run"

# Keys are read on the whole page (not only when the gallery has focus), except while typing in a field.
# Every choice sends the component's whole map, so a choice made while the page reruns is never lost.
KEYS_JS = """
const seen = new Map();
export default function(component) {
  const { data, setStateValue, parentElement } = component;
  const items = data.items;
  const first = !seen.has(data.token);
  const mine = seen.get(data.token) || { choices: {}, cursor: 0 };
  seen.set(data.token, mine);
  mine.choices = { ...data.choices, ...mine.choices };
  if (first) mine.cursor = Math.max(0, items.findIndex((item) => !mine.choices[item.index]));
  mine.cursor = Math.max(0, Math.min(mine.cursor, items.length - 1));
  const gallery = parentElement.querySelector(".gallery");
  const status = parentElement.querySelector(".status");
  function draw() {
    gallery.replaceChildren(...items.map((item, i) => {
      const tile = document.createElement("figure");
      const choice = mine.choices[item.index] || "";
      tile.className = `tile ${choice || "open"}${i === mine.cursor ? " current" : ""}`;
      tile.dataset.index = item.index;
      tile.dataset.choice = choice;
      const img = document.createElement("img");
      img.src = item.src;
      const caption = document.createElement("figcaption");
      caption.textContent = item.caption;
      tile.append(img, caption);
      tile.onclick = () => { mine.cursor = i; draw(); };
      return tile;
    }));
    const done = items.filter((item) => mine.choices[item.index]).length;
    status.textContent = `${done} of ${items.length} images here reviewed · K keep · D drop · ← → move`;
  }
  function onKey(event) {
    const target = event.composedPath()[0];
    if (target && (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName) || target.isContentEditable)) return;
    if (event.ctrlKey || event.metaKey || event.altKey || !items.length) return;
    const key = event.key.toLowerCase();
    if (key === "arrowright") mine.cursor = Math.min(mine.cursor + 1, items.length - 1);
    else if (key === "arrowleft") mine.cursor = Math.max(mine.cursor - 1, 0);
    else if (key === "k" || key === "d") {
      mine.choices[items[mine.cursor].index] = key === "k" ? "keep" : "drop";
      mine.cursor = Math.min(mine.cursor + 1, items.length - 1);
      setStateValue("choices", { ...mine.choices });
    } else return;
    event.preventDefault();
    draw();
  }
  if (window.__labReviewKeys) document.removeEventListener("keydown", window.__labReviewKeys);
  window.__labReviewKeys = onKey;
  document.addEventListener("keydown", onKey);
  draw();
  return () => document.removeEventListener("keydown", onKey);
}
"""
KEYS_CSS = """
.gallery { display: flex; flex-wrap: wrap; gap: 6px; }
.tile { margin: 0; padding: 3px; border: 3px solid transparent; border-radius: 4px; cursor: pointer; width: 96px; }
.tile img { width: 84px; height: 84px; image-rendering: pixelated; display: block; }
.tile figcaption { font-size: 11px; line-height: 1.2; }
.tile.keep { border-color: #2e9e44; } .tile.drop { border-color: #d23c3c; opacity: 0.45; }
.tile.current { outline: 3px solid var(--st-primary-color, #ff4b4b); }
.status { font-size: 13px; margin-bottom: 6px; }
"""
review_keys = st.components.v2.component("lab_review_keys", css=KEYS_CSS, js=KEYS_JS,
                                         html='<div class="status"></div><div class="gallery"></div>')


@st.cache_resource(max_entries=2, show_spinner="Loading the set…")
def loaded(path: str, modified: float):
    return load_set(path)


ensure_app_navigation()
st.title("Review a synthetic set")
st.caption("Every image is scored against the real images its generator was allowed to see: class confidence "
           "(a classifier trained on those real images: does it look like its label?), realism (a real-vs-synthetic "
           "critic, cross-fitted so no image is scored by a critic that saw it) and the distance to the nearest real "
           "image (copies). Keep or drop images by hand, or by thresholds: either way a new set, the parent "
           "untouched.")
sets = [s for s in list_sets() if s.provenance.known]
if not sets:
    st.info("No synthetic set with a verified provenance yet: train a GAN or make variations first.")
    st.stop()
labels = {s.id: s.label for s in sets}
chosen = st.selectbox("Synthetic set", list(labels), format_func=labels.get)
runs = [r for r in list_runs(KIND) if r.config.get("set") == chosen]
active = [r for r in runs if r.state in ACTIVE_STATES]
done = [r for r in runs if r.state == "done"]

if active:  # the statuses poll; the buttons stay outside the polling fragment
    live(lambda: any([run_status(r).get("state") in ACTIVE_STATES for r in active]), True)
    for r in active:
        run_actions(r, r.status(), key="review")
if not done:
    if not active:
        with st.form("score"):
            st.markdown("**Score this set** (a job: it trains a classifier and one critic per fold)")
            values = {f.name: option_input(f, getattr(CurationConfig(), f.name)) for f in CurationConfig.options()}
            if st.form_submit_button("Score", icon=":material/analytics:"):
                try:
                    config = CurateConfig(set=chosen, scoring=CurationConfig(**values))
                except ConfigError as e:
                    st.error(str(e))
                else:
                    launch(KIND, config.to_dict(), f"scores of {chosen}", REMEMBERED)
    st.stop()

run = done[0]
scores = scores_of(run)
synthetic = loaded(str(sets[list(labels).index(chosen)].path), sets[list(labels).index(chosen)].path.stat().st_mtime)
names = synthetic.class_names
st.markdown(f"Scored by run `{run.id}` against {scores.real_images} real images; a suspected copy lies within "
            f"{255 * scores.copy_threshold:.1f}/255 (RMS) of a real image.")

by = st.selectbox("Worst first by", list(SCORE_TITLES), format_func=SCORE_TITLES.get)
order = worst_first(scores, by)
st.dataframe([{"image": int(i), "class": names[scores.labels[i]], "class confidence": round(scores.confidence[i], 3),
               "realism": round(scores.realism[i], 3), "distance ×255": round(255 * scores.distance[i], 1),
               "suspected copy": bool(scores.suspected_copy[i])} for i in order],
             hide_index=True, height=240, width="stretch")

st.subheader("By hand")
pages = max(1, -(-len(order) // PAGE_SIZE))
page = st.number_input("Gallery page", 1, pages, 1, help=f"{PAGE_SIZE} images a page, worst first") - 1
shown = order[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
factor = max(1, 84 // synthetic.size)
items = [{"index": int(i), "src": png_data_uri(upscale(synthetic.images[i], factor)),
          "caption": f"#{i} {names[scores.labels[i]][:14]} · c {scores.confidence[i]:.2f} · r {scores.realism[i]:.2f}"
                     f"{' · copy' if scores.suspected_copy[i] else ''}"} for i in shown]
saved = review_choices(run)
result = review_keys(key=f"review-{run.id}", data={"token": run.id, "items": items,
                                                   "choices": {str(i): c for i, c in saved.items()}},
                     default={"choices": {}}, on_choices_change=lambda: None)
made = {int(i): c for i, c in (result.choices or {}).items()}
if any(saved.get(i) != c for i, c in made.items()):
    saved = save_choices(run, made, len(scores))
kept, dropped = sum(c == "keep" for c in saved.values()), sum(c == "drop" for c in saved.values())
st.caption(f"Saved as you go: {kept} kept, {dropped} dropped, {len(scores) - len(saved)} not reviewed (kept).")
reviewed_name = st.text_input("Reviewed set name", "reviewed")
if st.button("Save the reviewed set", icon=":material/save:", disabled=not saved):
    try:
        st.success(plain(curated_set(run, write_reviewed(run, reviewed_name).stem)))
    except (ValueError, ConfigError) as e:
        st.error(plain(str(e)))

st.subheader("By rule")
cols = st.columns(3)
rule_values = {f.name: option_input(f, getattr(CurationRule(), f.name), cols[k]) for k, f in
               enumerate(CurationRule.options())}
try:
    rule = CurationRule(**rule_values)
except ConfigError as e:
    st.error(str(e))
    st.stop()
keep = select(scores, rule)
st.caption(f"{rule.text}: keeps {int(keep.sum())} of {len(keep)} images; per class "
           + ", ".join(f"{plain(n)} {k}" for n, k in zip(names, kept_per_class(scores.labels, keep, len(names)))))
rule_name = st.text_input("Curated set name", "curated")
if st.button("Save the curated set", icon=":material/filter_alt:"):
    try:
        st.success(plain(curated_set(run, write_by_rule(run, rule, rule_name).stem)))
    except (ValueError, ConfigError) as e:
        st.error(plain(str(e)))

written = sets_of(run)
if written:
    st.markdown("**Sets made from these scores**")
    for path in written:
        st.caption(plain(curated_set(run, path.stem)))
