"""The training run's configuration: one dataclass per YAML section, each validated on construction.

A config file (see `training/configs/*.yaml`) has the top-level key `stage` and the sections `data`,
`model`, `alignment` (stage 1 only), `lora` (stage 3 only), `train` and `hub`; `training.config_loading`
reads it, applies `--section.key value` overrides and builds a `RunConfig`. Every problem is a
`ConfigError` naming the file and the key, raised before anything is trained.

    from training.config_loading import load_config
    config = load_config("training/configs/stage3.yaml", stage=3, overrides=[("train.max_steps", "10")])
"""

from __future__ import annotations

from dataclasses import dataclass, field

from training.errors import TrainingError

# PubMedBERT, renamed BiomedBERT by Microsoft (Prov-GigaPath's own slide-report alignment used it).
DEFAULT_TEXT_ENCODER = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext"
DEFAULT_REPORT_PROMPT = "Write the pathology report of this whole slide image."
DTYPES = ("float32", "bfloat16", "float16")
TEXT_POOLINGS = ("cls", "mean")
EVAL_STRATEGIES = ("no", "steps", "epoch")
LR_SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")


class ConfigError(TrainingError):
    """A config key with a bad value (or unknown key); the message names the file and the key."""


def _fail(section: str, key: str, problem: str) -> None:
    raise ConfigError(f"{section}.{key}: {problem}")


def _positive(section: str, **values) -> None:
    for key, value in values.items():
        if value is None or value <= 0:
            _fail(section, key, f"must be > 0, got {value!r}.")


@dataclass
class DataConfig:
    train: str | None = None              # WSI-Bench file / folder / Hub dataset id (stages 1-2: report items)
    split: str | None = "train"           # keep only `*_{split}.json[l]` files of a folder or Hub dataset
    tasks: list[str] | None = None        # task names (file stems, metadata values, task ids); None = all
    val: str | None = None                # validation set (same formats); None = split `train` by patient
    val_split: str | None = None          # file filter for `val` (None = every file)
    val_fraction: float = 0.0             # patients held out for validation when `val` is None
    split_seed: int = 0
    reports_file: str | None = None       # stages 1-2: JSONL/CSV slide_id,text[,image] instead of report items
    report_prompt: str = DEFAULT_REPORT_PROMPT   # stage 2: the question the report answers
    features_root: str = ""               # folder with released .pt slide tokens and/or our features .h5
    skip_missing_features: bool = False   # leave items without feature files out (they are still reported)
    check_features: int = 8               # feature files opened and checked against the model before training
    max_items: int | None = None          # seeded subsample of the training items (smoke runs)
    max_length: int = 2048                # tokens per conversation, slide placeholders included
    text_max_length: int = 256            # stage 1: report tokens for the text encoder

    def __post_init__(self) -> None:
        if not self.features_root:
            _fail("data", "features_root", "is required: the folder holding the slide-token .pt or features .h5 files.")
        if not 0.0 <= self.val_fraction < 1.0:
            _fail("data", "val_fraction", f"must be in [0, 1), got {self.val_fraction}.")
        if self.val is not None and self.val_fraction > 0:
            _fail("data", "val_fraction", "set either data.val (a validation set) or data.val_fraction, not both.")
        _positive("data", max_length=self.max_length, text_max_length=self.text_max_length)
        if self.max_items is not None:
            _positive("data", max_items=self.max_items)
        if self.check_features < 0:
            _fail("data", "check_features", f"must be >= 0, got {self.check_features}.")
        if "<image>" in self.report_prompt:
            _fail("data", "report_prompt", "must not contain <image>; the slide placeholder is added in front of it.")


@dataclass
class ModelConfig:
    base_model: str = ""                  # WSI-LLaVA checkpoint: folder, Hub id or a known name
    base_model_revision: str | None = None
    init_from: list[str] = field(default_factory=list)   # earlier stage checkpoints to carry modules over from
    dtype: str = "float32"                # weights as loaded (bfloat16 as in LLaVA's recipe on GPUs)
    load_4bit: bool = False               # QLoRA: the language model in 4-bit nf4 (stage 3)

    def __post_init__(self) -> None:
        if not self.base_model:
            _fail("model", "base_model", "is required: a WSI-LLaVA checkpoint folder, Hub id or known name "
                  "(e.g. wsi-llava-tiny-random, or the output of `wsi-llava convert-llava`).")
        if self.dtype not in DTYPES:
            _fail("model", "dtype", f"{self.dtype!r} is not one of {DTYPES}.")


@dataclass
class AlignmentConfig:
    text_encoder: str = DEFAULT_TEXT_ENCODER   # Hugging Face id/folder (AutoModel) or a built-in name
    text_encoder_revision: str | None = None
    text_pooling: str = "cls"             # cls | mean (over non-padding tokens)
    embed_dim: int = 512                  # shared embedding width of the two projection heads
    init_temperature: float = 0.07        # CLIP's initial softmax temperature (learnable)
    max_logit_scale: float = 100.0        # CLIP's clamp on 1 / temperature
    recall_at: list[int] = field(default_factory=lambda: [1, 5, 10])

    def __post_init__(self) -> None:
        if self.text_pooling not in TEXT_POOLINGS:
            _fail("alignment", "text_pooling", f"{self.text_pooling!r} is not one of {TEXT_POOLINGS}.")
        _positive("alignment", embed_dim=self.embed_dim, init_temperature=self.init_temperature)
        if self.max_logit_scale <= 1.0 / self.init_temperature:
            _fail("alignment", "max_logit_scale", f"{self.max_logit_scale} must exceed 1 / init_temperature "
                  f"= {1.0 / self.init_temperature:.3g}.")
        if not self.recall_at or min(self.recall_at) <= 0:
            _fail("alignment", "recall_at", f"must be a non-empty list of positive ranks, got {self.recall_at}.")


@dataclass
class LoraConfigSection:
    r: int = 128
    alpha: int = 256
    dropout: float = 0.05

    def __post_init__(self) -> None:
        _positive("lora", r=self.r, alpha=self.alpha)
        if not 0.0 <= self.dropout < 1.0:
            _fail("lora", "dropout", f"must be in [0, 1), got {self.dropout}.")


@dataclass
class TrainConfig:
    output_dir: str = ""                  # "{stage}" is replaced by the stage number
    num_train_epochs: float = 3.0
    max_steps: int = -1                   # > 0 overrides num_train_epochs
    learning_rate: float = 2e-4           # stage 3: the LoRA learning rate
    projector_lr: float | None = None     # stage 3: the projector's own learning rate (None = learning_rate)
    effective_batch_size: int = 128       # per-device batch x gradient accumulation x processes
    per_device_batch_size: int = 32
    per_device_eval_batch_size: int = 8
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 42
    bf16: bool = False
    fp16: bool = False
    gradient_checkpointing: bool = False
    logging_steps: int = 1
    save_steps: int = 500
    save_total_limit: int | None = 2
    eval_strategy: str = "no"             # no | steps | epoch
    eval_steps: int | None = None
    resume_from_checkpoint: str | None = None   # None | "last" | a checkpoint-N folder
    deepspeed: str | None = None          # a DeepSpeed JSON (training/configs/zero2.json, zero3.json)
    dataloader_num_workers: int = 0
    tensorboard: bool = True
    progress_bar: bool = False

    def __post_init__(self) -> None:
        if not self.output_dir:
            _fail("train", "output_dir", "is required.")
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            _fail("train", "num_train_epochs", "must be > 0 (or set train.max_steps).")
        _positive("train", learning_rate=self.learning_rate, effective_batch_size=self.effective_batch_size,
                  per_device_batch_size=self.per_device_batch_size, logging_steps=self.logging_steps,
                  save_steps=self.save_steps, per_device_eval_batch_size=self.per_device_eval_batch_size)
        if self.projector_lr is not None:
            _positive("train", projector_lr=self.projector_lr)
        if self.effective_batch_size % self.per_device_batch_size:
            _fail("train", "effective_batch_size", f"{self.effective_batch_size} is not a multiple of "
                  f"per_device_batch_size={self.per_device_batch_size}.")
        if self.lr_scheduler not in LR_SCHEDULERS:
            _fail("train", "lr_scheduler", f"{self.lr_scheduler!r} is not one of {LR_SCHEDULERS}.")
        if not 0.0 <= self.warmup_ratio < 1.0:
            _fail("train", "warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}.")
        if self.bf16 and self.fp16:
            _fail("train", "fp16", "bf16 and fp16 are exclusive; choose one.")
        if self.eval_strategy not in EVAL_STRATEGIES:
            _fail("train", "eval_strategy", f"{self.eval_strategy!r} is not one of {EVAL_STRATEGIES}.")
        if self.eval_strategy == "steps" and not (self.eval_steps and self.eval_steps > 0):
            _fail("train", "eval_steps", "must be > 0 when train.eval_strategy is 'steps'.")
        if self.save_total_limit is not None and self.save_total_limit < 1:
            _fail("train", "save_total_limit", f"must be >= 1 or null, got {self.save_total_limit}.")


@dataclass
class HubConfig:
    push_to_hub: str | None = None        # owner/name: upload the final checkpoint with its model card
    private: bool = False

    def __post_init__(self) -> None:
        if self.push_to_hub is not None and self.push_to_hub.count("/") != 1:
            _fail("hub", "push_to_hub", f"{self.push_to_hub!r} is not a Hub repo id (owner/name).")


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "alignment": AlignmentConfig,
                             "lora": LoraConfigSection, "train": TrainConfig, "hub": HubConfig}


@dataclass
class RunConfig:
    stage: int
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    lora: LoraConfigSection = field(default_factory=LoraConfigSection)
    hub: HubConfig = field(default_factory=HubConfig)
    source: str = "<config>"              # the YAML file it came from (for messages and the model card)

    def __post_init__(self) -> None:
        from training.stages import STAGES

        if self.stage not in STAGES:
            raise ConfigError(f"stage: {self.stage!r} is not a training stage; choose one of {sorted(STAGES)} "
                              f"({', '.join(f'{n} {s.title}' for n, s in STAGES.items())}).")
        spec = STAGES[self.stage]
        self.train.output_dir = self.train.output_dir.replace("{stage}", str(self.stage))
        if spec.data_kind == "reports" and not (self.data.reports_file or self.data.train):
            _fail("data", "train", f"stage {self.stage} needs reports: set data.reports_file, or data.train to "
                  "WSI-Bench files with report-generation items.")
        if spec.data_kind == "instructions" and not self.data.train:
            _fail("data", "train", "stage 3 needs WSI-Bench instruction data (file, folder or Hub id).")
        if self.model.load_4bit and not spec.lora:
            _fail("model", "load_4bit", f"4-bit (QLoRA) is for stage 3 only; stage {self.stage} trains "
                  "non-quantisable weights without LoRA.")
        if self.stage == 1:
            if self.train.per_device_batch_size < 2:
                _fail("train", "per_device_batch_size", "stage 1's contrastive loss needs >= 2 pairs per batch.")
            if self.train.gradient_checkpointing:
                _fail("train", "gradient_checkpointing", "is not supported in stage 1 (the slide encoder has "
                      "no activation checkpointing); set it to false.")
        if self.train.eval_strategy != "no" and self.data.val is None and self.data.val_fraction == 0:
            _fail("train", "eval_strategy", f"{self.train.eval_strategy!r} needs validation data: set data.val "
                  "or data.val_fraction > 0 (or eval_strategy: no).")

    @property
    def spec(self):
        from training.stages import STAGES

        return STAGES[self.stage]

    def learning_rate_for(self, setting: str) -> float:
        """The value of a stage table's `lr_setting` ("learning_rate" or "projector_lr")."""
        if setting == "projector_lr":
            return self.train.projector_lr if self.train.projector_lr is not None else self.train.learning_rate
        return self.train.learning_rate

    def unused_sections(self) -> list[str]:
        """Sections this stage ignores (kept so one tiny config serves every stage)."""
        unused = []
        if self.stage != 1:
            unused.append("alignment")
        if not self.spec.lora:
            unused.append("lora")
        return unused
