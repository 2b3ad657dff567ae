"""The app wing: one sub-package per tab (`ui.qa`, `ui.review`, `ui.metrics`) with its tab, views and the
services only the app uses, plus the settings table (`config`), failures shown to people (`errors`),
handlers bound to their events (`events`), ZeroGPU (`zerogpu`) and `wsi-llava deploy-space`
(`space_deploy`). Only `app.py` and `wsi_llava_cli.py` import it; it may import every package below
(training, evaluation, curation, modeling, wsi_bench, llm, common)."""
