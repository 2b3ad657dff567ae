"""The model, and only the model: slide pixels (`modeling.slide`), tile and slide encoders, projector, the
config/model/processor trio, checkpoints, inference, convert and ask. Below `training`, `evaluation`,
`curation` and `ui`; it imports only `common` (never an upper floor).

Importing the package itself is cheap (no torch, no transformers), so `wsi-llava tile` and the slide
pipeline start fast. `import modeling.auto_registration` registers WSI-LLaVA with transformers' Auto
classes; `modeling.checkpoints` (the loader everything uses) does so on import. Then
`AutoModelForImageTextToText` / `AutoProcessor.from_pretrained` load our checkpoints without
`trust_remote_code`.
"""
