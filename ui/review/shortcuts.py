"""Keyboard shortcuts of the review tab: one table drives both the on-screen help and the key handler.

Every shortcut works as Alt+key anywhere in the tab (also while typing in a box) and as the bare key
when the focus is not in a text box. A shortcut presses the same button the mouse would (so it runs the
same server call), focuses a box, or picks a rejection reason. The handler is installed by a `gr.HTML`
`js_on_load` and acts only while the review tab is on screen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from curation.store.status import REJECT_REASONS

ROOT_ID = "review-root"
REASON_ID = "review-reason"


@dataclass(frozen=True)
class Shortcut:
    code: str            # KeyboardEvent.code
    keys: str            # as shown
    kind: str            # click | focus | reason
    target: str          # element id, or the reason's index
    does: str


SHORTCUTS: tuple[Shortcut, ...] = (
    Shortcut("KeyA", "Alt+A", "click", "review-accept", "accept the pair as it is"),
    Shortcut("KeyE", "Alt+E", "click", "review-edit", "save your edit of the question / options / answer"),
    Shortcut("KeyR", "Alt+R", "click", "review-reject", "reject with the chosen reason (and comment)"),
    Shortcut("KeyU", "Alt+U", "click", "review-undo", "undo your verdict on this pair, else on the pair saved last"),
    Shortcut("KeyN", "Alt+N", "click", "review-next", "next pair in the queue"),
    Shortcut("KeyP", "Alt+P", "click", "review-prev", "previous pair in the queue"),
    Shortcut("KeyL", "Alt+L", "click", "review-reload", "reload the pair (keeps an unsaved edit)"),
    Shortcut("KeyQ", "Alt+Q", "focus", "review-question", "type in the question"),
    Shortcut("KeyW", "Alt+W", "focus", "review-answer", "type in the answer"),
    Shortcut("KeyO", "Alt+O", "focus", "review-options", "type in the options (multiple choice)"),
    Shortcut("KeyC", "Alt+C", "focus", "review-comment", "type a comment"),
    Shortcut("KeyJ", "Alt+J", "click", "review-adjudicate", "lead: adjudicate with the chosen final verdict"),
) + tuple(Shortcut(f"Digit{(i + 1) % 10}", f"Alt+{(i + 1) % 10}", "reason", str(i), f"reason: {text}")
          for i, text in enumerate(REJECT_REASONS.values()))


def help_markdown() -> str:
    keys = [s for s in SHORTCUTS if s.kind != "reason"]
    reasons = [s for s in SHORTCUTS if s.kind == "reason"]
    rows = "\n".join(f"| `{s.keys}` | {s.does} |" for s in keys)
    picks = " · ".join(f"`{s.keys}` {s.does.removeprefix('reason: ')}" for s in reasons)
    return (f"| key | does |\n|---|---|\n{rows}\n\n**Rejection reasons:** {picks}\n\n"
            "Alt+key works anywhere in this tab; the bare key works when you are not typing in a box.")


def handler_js() -> str:
    """The `js_on_load` body: one capturing keydown listener on the document (installed once)."""
    table = {s.code: {"kind": s.kind, "target": s.target} for s in SHORTCUTS}
    script = """
if (!window.__wsiReviewKeys) {
  window.__wsiReviewKeys = true;
  const TABLE = __TABLE__;
  const typing = (el) => !!el && (el.isContentEditable || el.tagName === "TEXTAREA" ||
      (el.tagName === "INPUT" && !["radio", "checkbox", "button", "submit", "range"].includes(el.type)));
  document.addEventListener("keydown", (event) => {
    const root = document.getElementById("__ROOT__");
    if (!root || root.offsetParent === null) return;
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.repeat) return;
    if (!event.altKey && typing(event.target)) return;
    const action = TABLE[event.code];
    if (!action) return;
    event.preventDefault();
    event.stopPropagation();
    if (action.kind === "click") {
      const button = document.getElementById(action.target);
      if (button && !button.disabled && button.offsetParent !== null) button.click();
    } else if (action.kind === "focus") {
      const box = document.querySelector("#" + action.target + " textarea, #" + action.target + " input");
      if (box) box.focus();
    } else {
      const radios = document.querySelectorAll("#__REASONS__ input[type=radio]");
      const radio = radios[Number(action.target)];
      if (radio) radio.click();
    }
  }, true);
}
"""
    return script.replace("__TABLE__", json.dumps(table)).replace("__ROOT__", ROOT_ID).replace("__REASONS__", REASON_ID)
