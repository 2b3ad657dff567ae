"""Training: the three WSI-LLaVA stages on the Hugging Face Trainer (`wsi-llava train`), their data,
checkpoints and Hub publishing (`wsi-llava push-model`); see training/README.md. A peer of `evaluation` and
`curation` (it never imports them); below it only `modeling`, `wsi_bench`, `llm` and `common`."""
