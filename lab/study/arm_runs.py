"""A study's (arm, seed) runs, however they trained: a study-arm child run each, or members of study-group
child runs (StudyConfig.batched). Readers (the summary, the page, Grad-CAM) see one `ArmRun` per
"arm|seed" either way."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.engine.children import read_children
from lab.engine.runs import Run, Status


def member_folder(group: Run, k: int) -> Path:
    """Where member k of a study-group run keeps its files (those a study-arm run keeps in artifacts/)."""
    return group.artifacts / f"member-{k}"


@dataclass(frozen=True)
class ArmRun:
    key: str  # "arm|seed"
    run: Run  # the run that trained it: a study-arm run, or the study-group run it was a member of
    member: int | None = None  # its index in that study-group run

    @property
    def id(self) -> str:
        return self.run.id if self.member is None else f"{self.run.id} #{self.member}"

    @property
    def artifacts(self) -> Path:
        return self.run.artifacts if self.member is None else member_folder(self.run, self.member)

    @property
    def config(self) -> dict:
        """Its ArmRunConfig as a dict."""
        return self.run.config if self.member is None else self.run.config["members"][self.member]

    def status(self) -> Status:
        return self.run.status()

    def events(self, type: str | None = None) -> list[dict]:
        events = self.run.events(type)
        return events if self.member is None else [e for e in events if e.get("member") == self.member]


def arm_runs_of(study: Run) -> dict[str, ArmRun]:
    """Every (arm, seed) run the study has made so far, "arm|seed" -> ArmRun, in the order they were made."""
    found = {}
    for key, child in read_children(study).items():
        if child.kind == "study-arm":
            found[key] = ArmRun(key, child)
        elif child.kind == "study-group":
            for k, member in enumerate(child.config.get("members", [])):
                arm_key = f"{member['arm']['name']}|{member['seed']}"
                found[arm_key] = ArmRun(arm_key, child, k)
    return found
