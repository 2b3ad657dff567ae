"""WSI-LLaVA studio: the Gradio app. Run `python app.py` (http://127.0.0.1:7860).

This first version is a landing page; the slide Q&A, curation review and metrics tabs arrive with
their issues and are composed here.
"""

from __future__ import annotations

import argparse


def build_app():
    import gradio as gr

    with gr.Blocks(title="WSI-LLaVA studio") as demo:
        gr.Markdown(
            "# WSI-LLaVA studio\n"
            "Slide Q&A with WSI-LLaVA, curation review of WSI-Bench VQA pairs and metric dashboards "
            "are being built. Meanwhile the `wsi-llava` command line tiles slides and extracts tile "
            "features (`wsi-llava --help`)."
        )
    return demo


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    args = parser.parse_args(argv)
    build_app().launch(server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    main()
