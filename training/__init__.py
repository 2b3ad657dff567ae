"""training package: the three WSI-LLaVA stages on the Hugging Face Trainer (`wsi-llava train`), their data,
checkpoints and Hub publishing (`wsi-llava push-model`); see training/README.md."""
