"""Command-line options for the one LLM client, shared by every command that calls an LLM.

`wsi-llava curate clean|enrich|generate` use them unprefixed (`--base-url`, `--model`); `wsi-llava
evaluate score` names the endpoint with a `judge-` prefix (`--judge-base-url`, `--judge-model`,
`--judge-api-key-env`). Both read the same `LLMSettings` back:

    add_llm_options(parser)                                  # --base-url --model --api-key-env --workers ...
    settings = llm_settings_from_args(args, cache_path="cache.sqlite")
"""

from __future__ import annotations

import argparse

from llm.client import STRUCTURED_OUTPUT_MODES, LLMSettings


def add_llm_options(parser: argparse.ArgumentParser, *, prefix: str = "", title: str | None = None,
                    default_model: str | None = LLMSettings.model, temperature: bool = True) -> None:
    """Add the endpoint flags (`--{prefix}base-url`, `--{prefix}model`, `--{prefix}api-key-env`) and the
    request flags (`--workers`, `--cache`, `--seed`, `--timeout`, `--max-attempts`, `--structured-output`,
    `--price-input`, `--price-output`, and `--temperature` unless `temperature=False`)."""
    defaults = LLMSettings()
    group = parser.add_argument_group(title or "LLM (any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, "
                                               "llama.cpp server)")
    group.add_argument(f"--{prefix}base-url", default=defaults.base_url,
                       help="endpoint base URL (default: %(default)s)")
    group.add_argument(f"--{prefix}model", default=default_model,
                       help="model name the endpoint serves" + (" (default: %(default)s)" if default_model else ""))
    group.add_argument(f"--{prefix}api-key-env", default=defaults.api_key_env, metavar="VAR",
                       help="name of the environment variable holding the API key (default: %(default)s); "
                            "the key itself is never logged or stored")
    group.add_argument("--workers", "--concurrency", dest="workers", type=int, default=defaults.concurrency,
                       metavar="N", help="requests in flight at once (default: %(default)s)")
    group.add_argument("--cache", metavar="PATH",
                       help="on-disk reply cache (SQLite); a re-run sends no request for cached replies")
    if temperature:
        group.add_argument("--temperature", type=float, default=defaults.temperature)
    group.add_argument("--seed", type=int, default=defaults.seed)
    group.add_argument("--timeout", type=float, default=defaults.timeout_s, metavar="SECONDS")
    group.add_argument("--max-attempts", type=int, default=defaults.max_attempts,
                       help="tries per request, counting retries after 429/5xx/timeouts/invalid replies")
    group.add_argument("--structured-output", choices=STRUCTURED_OUTPUT_MODES, default=defaults.structured_output,
                       help="auto: JSON schema, falling back to JSON mode, then plain text, as the server allows")
    group.add_argument("--price-input", type=float, metavar="USD_PER_1M",
                       help="input price per million tokens (known OpenAI models have defaults)")
    group.add_argument("--price-output", type=float, metavar="USD_PER_1M", help="output price per million tokens")


def llm_settings_from_args(args: argparse.Namespace, *, prefix: str = "", cache_path: str | None = None,
                           temperature: float | None = None) -> LLMSettings:
    """The `LLMSettings` the flags describe (`LLMConfigError` names a bad value). `cache_path` is used when
    `--cache` is not given; `temperature` overrides the flag (judges always run at 0)."""
    name = prefix.replace("-", "_")
    return LLMSettings(
        base_url=getattr(args, f"{name}base_url"), model=getattr(args, f"{name}model"),
        api_key_env=getattr(args, f"{name}api_key_env"),
        temperature=args.temperature if temperature is None else temperature, seed=args.seed,
        timeout_s=args.timeout, max_attempts=args.max_attempts, concurrency=args.workers,
        cache_path=args.cache or cache_path, structured_output=args.structured_output,
        price_input_per_1m_usd=args.price_input, price_output_per_1m_usd=args.price_output)
