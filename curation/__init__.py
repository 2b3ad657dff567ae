"""Curation: pathology reports -> cleaned reports -> LLM-generated VQA pairs with automatic checks -> review
(`curation.store`) -> export and Hub push; `wsi-llava curate`. A peer of `training` and `evaluation` (it
never imports them); below it only `modeling`, `wsi_bench`, `llm` and `common`."""
