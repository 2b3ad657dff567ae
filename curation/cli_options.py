"""Command-line options shared by the `wsi-llava curate` steps: the store, the LLM, summaries, progress."""

from __future__ import annotations

import argparse
from pathlib import Path

from curation.llm_client import STRUCTURED_OUTPUT_MODES, LLMClient, LLMSettings


def add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, metavar="PATH_OR_URL",
                        help="review store: a SQLite file path (created if missing) or an SQLAlchemy URL, "
                             "e.g. postgresql+psycopg://user@host/dbname")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--summary", metavar="PATH",
                        help="where to write the summary JSON with every input's status "
                             "(default: <step>-summary.json beside a file store, else in the current folder)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (default: shown on a terminal)")


def add_llm(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("LLM (any OpenAI-compatible endpoint: OpenAI, vLLM, Ollama, llama.cpp)")
    defaults = LLMSettings()
    group.add_argument("--base-url", default=defaults.base_url, help="endpoint base URL (default: %(default)s)")
    group.add_argument("--model", default=defaults.model, help="model name (default: %(default)s)")
    group.add_argument("--api-key-env", default=defaults.api_key_env, metavar="VAR",
                       help="name of the environment variable holding the API key (default: %(default)s); "
                            "the key itself is never logged or stored")
    group.add_argument("--concurrency", "--workers", type=int, default=defaults.concurrency, metavar="N",
                       help="requests in flight at once (default: %(default)s)")
    group.add_argument("--cache", metavar="PATH",
                       help="on-disk reply cache; a re-run makes no call for cached replies "
                            "(default: <store>.llm-cache.sqlite beside a file store, else ./llm-cache.sqlite)")
    group.add_argument("--temperature", type=float, default=defaults.temperature)
    group.add_argument("--seed", type=int, default=defaults.seed)
    group.add_argument("--timeout", type=float, default=defaults.timeout_s, metavar="SECONDS")
    group.add_argument("--max-attempts", type=int, default=defaults.max_attempts)
    group.add_argument("--structured-output", choices=STRUCTURED_OUTPUT_MODES, default=defaults.structured_output)
    group.add_argument("--price-input", type=float, metavar="USD_PER_1M",
                       help="input price per million tokens (known OpenAI models have defaults)")
    group.add_argument("--price-output", type=float, metavar="USD_PER_1M", help="output price per million tokens")
    group.add_argument("--dry-run", action="store_true",
                       help="print how many requests, tokens and dollars the step would spend, then stop "
                            "(nothing is sent or cleaned/generated; `clean` still stores the input reports)")


def _beside_store(store: str, name: str) -> Path:
    if "://" in store:
        return Path.cwd() / name
    path = Path(store).expanduser().resolve()
    return path.parent / f"{path.stem}.{name}" if name.endswith(".sqlite") else path.parent / name


def llm_client(args: argparse.Namespace) -> LLMClient:
    settings = LLMSettings(
        base_url=args.base_url, model=args.model, api_key_env=args.api_key_env, temperature=args.temperature,
        seed=args.seed, timeout_s=args.timeout, max_attempts=args.max_attempts, concurrency=args.concurrency,
        cache_path=str(args.cache or _beside_store(args.store, "llm-cache.sqlite")),
        structured_output=args.structured_output, price_input_per_1m_usd=args.price_input,
        price_output_per_1m_usd=args.price_output)
    return LLMClient(settings)


def summary_path(args: argparse.Namespace, step: str) -> Path:
    return Path(args.summary) if args.summary else _beside_store(args.store, f"{step}-summary.json")


def progress(args: argparse.Namespace) -> bool | None:
    return False if args.no_progress else None


def csv_list(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None
