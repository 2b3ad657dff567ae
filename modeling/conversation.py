"""Conversation templates as WSI-LLaVA (LLaVA-1.5) used them, with the character spans of the answers.

WSI-LLaVA trains with `--version v1`, i.e. LLaVA's `conv_vicuna_v1` (separator style TWO,
`TRAINING_TEMPLATE`):

    "{system} USER: <image>\\n{question} ASSISTANT: {answer}</s>USER: {question 2} ASSISTANT: {answer 2}</s>"

A prompt for generation ends with "ASSISTANT:" (no trailing space). The official WSI-Bench evaluation
script runs with `--conv-mode llava_v1` (`INFERENCE_TEMPLATE`), the same layout with a different system
prompt ("curious human"); both are registered. `render` returns the text and, for every assistant message, the span
from the space after "ASSISTANT:" through its closing "</s>": exactly the characters LLaVA's
`preprocess_v1` trains on (everything else gets label -100).

LLaVA also moves the `<image>` placeholder to the start of its message, followed by a newline
(`preprocess_multimodal`); `normalize_image_placeholder` does the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

IMAGE_PLACEHOLDER = "<image>"

# LLaVA conversation JSON uses "human"/"gpt"; chat-style data uses "user"/"assistant".
SPEAKERS = {"human": 0, "user": 0, "gpt": 1, "assistant": 1}


@dataclass(frozen=True)
class ConversationTemplate:
    name: str
    system: str
    roles: tuple[str, str] = ("USER", "ASSISTANT")
    sep: str = " "          # after the system prompt and after every user message
    sep2: str = "</s>"      # after every assistant message

    def render(self, messages: Sequence[str | None]) -> tuple[str, list[tuple[int, int]]]:
        """Alternating user/assistant messages (a final None = generation prompt) -> (text, answer spans).

        Spans are [start, end) character offsets of " {answer}</s>" for every assistant message.
        """
        text = self.system + self.sep
        spans: list[tuple[int, int]] = []
        for index, message in enumerate(messages):
            role = self.roles[index % 2]
            if message is None:
                if index != len(messages) - 1 or index % 2 != 1:
                    raise ValueError("Only the last message may be None, and only the assistant's.")
                text += f"{role}:"
                continue
            if index % 2 == 0:
                text += f"{role}: {message}{self.sep}"
            else:
                start = len(text) + len(role) + 1          # the space after "ASSISTANT:"
                text += f"{role}: {message}{self.sep2}"
                spans.append((start, len(text)))
        return text, spans


VICUNA_V1 = ConversationTemplate(
    name="vicuna_v1",
    system="A chat between a curious user and an artificial intelligence assistant. "
           "The assistant gives helpful, detailed, and polite answers to the user's questions.",
)
LLAVA_V1 = ConversationTemplate(
    name="llava_v1",
    system="A chat between a curious human and an artificial intelligence assistant. "
           "The assistant gives helpful, detailed, and polite answers to the human's questions.",
)

TEMPLATES: dict[str, ConversationTemplate] = {t.name: t for t in (VICUNA_V1, LLAVA_V1)}
TRAINING_TEMPLATE = VICUNA_V1.name      # finetune_lora.sh: --version v1
INFERENCE_TEMPLATE = LLAVA_V1.name      # scripts/wsi-vqa.sh: --conv-mode llava_v1


def get_template(name: str) -> ConversationTemplate:
    if name not in TEMPLATES:
        raise ValueError(f"Unknown conversation template {name!r}; known: {sorted(TEMPLATES)}.")
    return TEMPLATES[name]


def normalize_image_placeholder(message: str) -> str:
    """LLaVA's `preprocess_multimodal`: a message holding `<image>` becomes "<image>\\n" + the rest, stripped
    (an image-only message is just "<image>")."""
    if IMAGE_PLACEHOLDER not in message:
        return message
    return (IMAGE_PLACEHOLDER + "\n" + message.replace(IMAGE_PLACEHOLDER, "").strip()).strip()


def messages_from_turns(turns: Sequence[dict]) -> list[str]:
    """LLaVA conversation JSON (`from`/`value`) or chat messages (`role`/`content`) -> alternating texts.

    The first turn must be the user's and turns must alternate; raises ValueError naming the turn.
    """
    messages: list[str] = []
    for index, turn in enumerate(turns):
        speaker = turn.get("from", turn.get("role"))
        text = turn.get("value", turn.get("content"))
        if speaker not in SPEAKERS or not isinstance(text, str):
            raise ValueError(f"turn {index}: expected {{'from': 'human'|'gpt', 'value': str}} or "
                             f"{{'role': 'user'|'assistant', 'content': str}}, got {turn!r}")
        if SPEAKERS[speaker] != index % 2:
            expected = "user/human" if index % 2 == 0 else "assistant/gpt"
            raise ValueError(f"turn {index} is from {speaker!r} but turns must alternate starting with the "
                             f"user: expected {expected}")
        messages.append(normalize_image_placeholder(text))
    return messages
