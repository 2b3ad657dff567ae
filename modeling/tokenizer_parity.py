"""The official tokenizer, restated over sentencepiece, and the check `convert-llava` runs against it.

WSI-LLaVA's official loader (`llava/model/builder.py`, transformers 4.37.2) reads a checkpoint's tokenizer
with `AutoTokenizer.from_pretrained(path, use_fast=False)`: the slow, sentencepiece `LlamaTokenizer`.
`SlowLlamaReference` restates what that class does with `tokenizer.model` + `tokenizer_config.json`
(tokenizer.json is never read):

- BOS before every call when `add_bos_token` (default True), EOS only with `add_eos_token` (default False).
- `legacy` as configured, True when unset. Legacy: every stretch of text between special tokens gets
  sentencepiece's dummy prefix ("</s>USER" -> "</s>", "▁USER"). Non-legacy: sentencepiece runs without
  the dummy prefix, the whole text gets one "▁" in front, text right after a special token gets none
  ("</s>", "US", "ER"), and a lone leading "▁" before a special token is dropped.
- Special and added tokens (<s>, </s>, <unk>, ...) are split out first, longest match first, honouring
  their lstrip/rstrip flags.

`llava_prompt_ids(prompt, tokenizer)` is LLaVA's `tokenizer_image_token` (each chunk around `<image>`
tokenized on its own, the first chunk's BOS kept, the later chunks' first token dropped, -200 for the
image). `check_processor_parity` tokenizes sample prompts with our processor (the fast tokenizer, 576
placeholders collapsed to one -200) and with the reference, and raises ModelError naming the file and the
first difference.

    reference = SlowLlamaReference.from_folder(Path("llava-v1.5-7b"))
    check_processor_parity(processor, reference, where="llava-v1.5-7b/tokenizer.model")
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from modeling.conversation import INFERENCE_TEMPLATE, TRAINING_TEMPLATE, get_template
from modeling.errors import ModelError

LLAVA_IMAGE_TOKEN_INDEX = -200          # llava/constants.py IMAGE_TOKEN_INDEX
SPIECE_UNDERLINE = "\u2581"


@dataclass(frozen=True)
class _Special:
    content: str
    token_id: int
    lstrip: bool = False
    rstrip: bool = False


@dataclass(frozen=True)
class Encoding:
    input_ids: list[int]


def _content(value) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


class SlowLlamaReference:
    """transformers 4.37.2's slow `LlamaTokenizer`, restated over sentencepiece (see the module docstring)."""

    def __init__(self, model_file: str | Path, legacy: bool = True, add_bos: bool = True, add_eos: bool = False,
                 bos: str = "<s>", eos: str = "</s>", unk: str = "<unk>", added: Sequence[_Special] = ()):
        import sentencepiece as spm

        self.model_file, self.legacy, self.add_bos, self.add_eos = Path(model_file), legacy, add_bos, add_eos
        self.sp = spm.SentencePieceProcessor()
        proto = self.model_file.read_bytes()
        if not legacy:                       # get_spm_processor: the model without the dummy prefix
            from sentencepiece import sentencepiece_model_pb2

            model = sentencepiece_model_pb2.ModelProto.FromString(proto)
            model.normalizer_spec.add_dummy_prefix = False
            proto = model.SerializeToString()
        self.sp.LoadFromSerializedProto(proto)
        self.unk = unk
        self.bos_token_id = self.sp.piece_to_id(bos)
        self.eos_token_id = self.sp.piece_to_id(eos)
        specials = {token.content: token for token in added}
        for text in (bos, eos, unk):
            specials.setdefault(text, _Special(text, self.sp.piece_to_id(text)))
        self.specials = specials
        alternatives = sorted(specials, key=len, reverse=True)
        self._split = re.compile("(" + "|".join(re.escape(text) for text in alternatives) + ")")
        self._unk_length = len(self.sp.encode(unk))

    @classmethod
    def from_folder(cls, folder: Path) -> "SlowLlamaReference":
        """The reference for a checkpoint folder's tokenizer.model, configured like the official loader."""
        config_file, map_file = folder / "tokenizer_config.json", folder / "special_tokens_map.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        special_map = json.loads(map_file.read_text()) if map_file.is_file() else {}
        names = {key: _content(config.get(f"{key}_token")) or _content(special_map.get(f"{key}_token"))
                 for key in ("bos", "eos", "unk")}
        added = [_Special(entry["content"], int(token_id), bool(entry.get("lstrip")), bool(entry.get("rstrip")))
                 for token_id, entry in (config.get("added_tokens_decoder") or {}).items()]
        added_file = folder / "added_tokens.json"
        if added_file.is_file():
            known = {token.content for token in added}
            added += [_Special(text, int(token_id)) for text, token_id in json.loads(added_file.read_text()).items()
                      if text not in known]
        legacy = config.get("legacy")
        return cls(folder / "tokenizer.model", legacy=True if legacy is None else bool(legacy),
                   add_bos=bool(config.get("add_bos_token", True)), add_eos=bool(config.get("add_eos_token", False)),
                   bos=names["bos"] or "<s>", eos=names["eos"] or "</s>", unk=names["unk"] or "<unk>", added=added)

    # -- tokenization, step for step like the slow tokenizer ------------------------------------------
    def _encode_text(self, text: str) -> list[str]:
        """LlamaTokenizer._tokenize: non-legacy text that starts with "▁"/" " is encoded behind the unk
        token (whose pieces are dropped), so sentencepiece keeps that leading "▁"."""
        pieces = self.sp.encode(text, out_type=str)
        if self.legacy or not text.startswith((SPIECE_UNDERLINE, " ")):
            return pieces
        pieces = self.sp.encode(self.unk + text, out_type=str)
        return pieces[self._unk_length:] if len(pieces) >= self._unk_length else pieces

    def tokenize(self, text: str) -> list[str]:
        if not self.legacy and text:
            text = SPIECE_UNDERLINE + text.replace(SPIECE_UNDERLINE, " ")
        parts = self._split.split(text)                   # odd positions: special tokens
        for index in range(1, len(parts), 2):
            special = self.specials[parts[index]]
            if special.rstrip and index + 1 < len(parts):
                parts[index + 1] = parts[index + 1].lstrip()
            if special.lstrip and index > 0:
                parts[index - 1] = parts[index - 1].rstrip()
        pieces: list[str] = []
        for index, part in enumerate(parts):
            if part:
                pieces += [part] if index % 2 else self._encode_text(part)
        if not self.legacy and len(pieces) > 1 and pieces[0] == SPIECE_UNDERLINE and pieces[1] in self.specials:
            pieces = pieces[1:]
        return pieces

    def encode(self, text: str) -> list[int]:
        ids = [self.specials[p].token_id if p in self.specials else self.sp.piece_to_id(p) for p in self.tokenize(text)]
        return ([self.bos_token_id] if self.add_bos else []) + ids + ([self.eos_token_id] if self.add_eos else [])

    def __call__(self, text: str) -> Encoding:
        return Encoding(self.encode(text))

    def piece(self, token_id: int) -> str:
        if token_id == LLAVA_IMAGE_TOKEN_INDEX:
            return "<image>"
        return self.sp.id_to_piece(token_id) if 0 <= token_id < self.sp.get_piece_size() else f"<id {token_id}>"


_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _utf8_like_sentencepiece(data: bytes) -> str:
    """Bytes -> text as sentencepiece decodes byte pieces: every byte that does not start a complete, valid
    UTF-8 character becomes one U+FFFD (Python's "replace" would merge a truncated character into one)."""
    out, index = [], 0
    while index < len(data):
        lead = data[index]
        size = 1 if lead < 0x80 else 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else \
            4 if 0xF0 <= lead <= 0xF4 else 0
        chunk = data[index:index + size]
        try:
            if size and len(chunk) == size:
                out.append(chunk.decode("utf-8"))
                index += size
                continue
        except UnicodeDecodeError:
            pass
        out.append("\ufffd")
        index += 1
    return "".join(out)


def sentencepiece_text(pieces: Sequence[str]) -> str:
    """Pieces (special tokens already left out) -> text as the slow LlamaTokenizer's sentencepiece decode
    gives it, up to leading/trailing whitespace: "▁" is a space, runs of byte pieces (<0xNN>) are decoded
    together, invalid bytes one U+FFFD each."""
    out: list[str] = []
    pending = bytearray()
    for piece in pieces:
        match = _BYTE_PIECE.fullmatch(piece)
        if match:
            pending.append(int(match.group(1), 16))
            continue
        if pending:
            out.append(_utf8_like_sentencepiece(bytes(pending)))
            pending.clear()
        out.append(piece.replace(SPIECE_UNDERLINE, " "))
    if pending:
        out.append(_utf8_like_sentencepiece(bytes(pending)))
    return "".join(out)


def llava_prompt_ids(prompt: str, tokenizer, image_token_index: int = LLAVA_IMAGE_TOKEN_INDEX) -> list[int]:
    """LLaVA's `tokenizer_image_token` (llava/mm_utils.py), restated."""
    chunks = [list(tokenizer(chunk).input_ids) for chunk in prompt.split("<image>")]
    ids: list[int] = []
    offset = 0
    if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        ids.append(chunks[0][0])
    for index, chunk in enumerate(chunks):
        if index:                                # insert_separator: [-200] * (offset + 1), cut like a chunk
            ids += ([image_token_index] * (offset + 1))[offset:]
        ids += chunk[offset:]
    return ids


def collapse_placeholders(ids: Sequence[int], placeholder_id: int) -> list[int]:
    """Our runs of slide placeholders -> LLaVA's single -200 per image."""
    out: list[int] = []
    for index, token in enumerate(ids):
        if token == placeholder_id:
            if index and ids[index - 1] == placeholder_id:
                continue
            token = LLAVA_IMAGE_TOKEN_INDEX
        out.append(int(token))
    return out


def sample_prompts() -> list[str]:
    """Prompts covering what WSI-LLaVA's text holds: the image placeholder, digits, double spaces, new
    lines, options, and a second turn after "</s>" (where `legacy` matters); inference and training templates."""
    first = "Describe the  tissue architecture.\nIs there necrosis? A) Yes B) No"
    answer = "Invasive ductal carcinoma, grade 2 (pT2 N1 M0); Ki-67 30%."
    generation = get_template(INFERENCE_TEMPLATE).render([f"<image>\n{first}", answer, "What is the stage?", None])[0]
    training = get_template(TRAINING_TEMPLATE).render([f"<image>\n{first}", answer, "Grade?", " G2 "])[0]
    return [generation, training]


def check_processor_parity(processor, reference: SlowLlamaReference, where: str,
                           prompts: Sequence[str] | None = None) -> None:
    """ModelError unless `processor.tokenize` gives the official ids for every sample prompt."""
    for prompt in prompts or sample_prompts():
        ours = collapse_placeholders(processor.tokenize(prompt)[0], processor.image_token_id)
        official = llava_prompt_ids(prompt, reference)
        if ours == official:
            continue
        position = next((i for i, (a, b) in enumerate(zip(ours, official)) if a != b), min(len(ours), len(official)))
        window = slice(max(0, position - 3), position + 4)
        ours_pieces = [reference.piece(t) for t in ours[window]]
        official_pieces = [reference.piece(t) for t in official[window]]
        raise ModelError(
            f"{where}: the converted tokenizer does not reproduce the official one (slow LlamaTokenizer over "
            f"sentencepiece, legacy={reference.legacy}, add_bos_token={reference.add_bos}) on the sample prompt "
            f"{prompt[:60]!r}...: {len(ours)} vs {len(official)} ids, first difference at position {position}: "
            f"ours {ours_pieces} vs official {official_pieces}. Converting would change every prompt the model "
            "sees; check tokenizer.model / tokenizer_config.json (a tokenizer.json is not what the official "
            "code reads).")
