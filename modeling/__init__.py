"""modeling package: slide pipeline (`modeling.slide`), encoders, projector, the WSI-LLaVA model,
processor, checkpoints and inference.

Importing the package itself is cheap (no torch, no transformers), so `wsi-llava tile` and the slide
pipeline start fast. `import modeling.auto_registration` registers WSI-LLaVA with transformers' Auto
classes; `modeling.checkpoints` (the loader everything uses) does so on import. Then
`AutoModelForImageTextToText` / `AutoProcessor.from_pretrained` load our checkpoints without
`trust_remote_code`.
"""
