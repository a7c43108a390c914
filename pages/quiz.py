"""Real or synthetic? A quiz from the current dataset and a synthetic set, for teaching and for an honest look."""
from __future__ import annotations

import secrets

import numpy as np
import streamlit as st

from data.grid import upscale
from data.synthetic import load_set
from lab.sets import compatible_sets
from lab.teaching import make_quiz, score_quiz
from pages.common import current_dataset, current_spec, ensure_app_navigation, plain, remember

ensure_app_navigation()
st.title("Real or synthetic?")
st.caption("Real training images and a generator's images, mixed. Call each one; then reveal the answers, "
           "with the nearest real image beside every synthetic one (a copy would look the same).")

spec = current_spec()
dataset = current_dataset()
sets = compatible_sets(spec, dataset.train.channels, len(dataset.class_names))
if not sets:
    st.info(f"No synthetic set for {plain(spec.label)} yet: train a GAN and export a set, or pick another dataset.")
    st.stop()

by_path = {str(s.path): s for s in sets}
c1, c2, c3 = st.columns([3, 1, 1])
chosen = c1.selectbox("Synthetic set", list(by_path), format_func=lambda p: by_path[p].label,
                      key=remember("quiz_set", list(by_path)[0], list(by_path)))
count = c2.number_input("Images", 4, 40, step=2, key=remember("quiz_images", 12))
new = c3.button("New quiz", type="primary", icon=":material/shuffle:")

quiz = st.session_state.get("quiz")
if new or quiz is None or quiz["set"] != chosen or quiz["count"] != count:
    try:
        questions = make_quiz(dataset.train, load_set(chosen), n=int(count), seed=secrets.randbelow(2 ** 31))
    except ValueError as e:
        st.error(f"{plain(by_path[chosen].name)}: {plain(e)}")
        st.stop()
    quiz = st.session_state["quiz"] = {"set": chosen, "count": count, "questions": questions, "revealed": False,
                                       "round": (quiz or {}).get("round", 0) + 1}
questions, revealed = quiz["questions"], quiz["revealed"]
names = dataset.class_names
answers = []
columns = st.columns(4)
for i, question in enumerate(questions):
    with columns[i % 4].container(border=True):
        tile = upscale(question.image, 4)
        if revealed and question.synthetic and question.nearest is not None:
            st.image(np.concatenate([tile, np.full((tile.shape[0], 6, tile.shape[2]), 255, np.uint8),
                                     upscale(question.nearest, 4)], axis=1),
                     caption="synthetic · beside it: the nearest real image of its class")
        else:
            st.image(tile, caption=plain(names[question.label]) if revealed else None)
        answer = st.radio("Your call", ["real", "synthetic"], index=None, horizontal=True,
                          key=f"quiz-{quiz['round']}-{i}", label_visibility="collapsed", disabled=revealed)
        answers.append(None if answer is None else answer == "synthetic")
        if revealed and answer is not None:
            truth = "synthetic" if question.synthetic else "real"
            (st.success if answer == truth else st.error)(f"{truth} · {plain(names[question.label])}")

unanswered = sum(a is None for a in answers)
if not revealed:
    if st.button("Reveal the answers", disabled=unanswered == len(answers),
                 help=f"{unanswered} not answered yet" if unanswered else None):
        quiz["revealed"] = True
        st.rerun()
    st.stop()

result = score_quiz(questions, answers, names)
st.subheader(f"{result.correct} of {result.answered} right ({result.accuracy:.0%})")
st.caption(f"Real images called real: {result.real[0]}/{result.real[1]} · synthetic images called synthetic: "
           f"{result.synthetic[0]}/{result.synthetic[1]}. Guessing scores 50% on average; a generator whose "
           "images you cannot tell apart keeps you there.")
st.dataframe([{"class": name, "right": right, "answered": total, "share": f"{right / total:.0%}"}
              for name, (right, total) in result.per_class.items()], hide_index=True, width="stretch")
