"""Evaluation: prediction files -> claims -> WSI-Precision / WSI-Relevance (LLM or offline judge), closed-answer
accuracy, NLU metrics, summaries in the paper's layouts; `wsi-llava evaluate predict|score`. A peer of
`training` and `curation` (it never imports them); below it only `modeling`, `wsi_bench`, `llm`, `common`."""
