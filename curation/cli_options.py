"""Command-line options shared by the `wsi-llava curate` steps: the store, the LLM, summaries, progress."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from llm.client import LLMClient
from llm.options import add_llm_options, llm_settings_from_args


def add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", required=True, metavar="PATH_OR_URL",
                        help="review store: a SQLite file path (created if missing) or an SQLAlchemy URL, "
                             "e.g. postgresql+psycopg://user@host/dbname")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--summary", metavar="PATH",
                        help="where to write the summary JSON with every input's status "
                             "(default: <store>.<step>-summary.json beside a file store, <database>.<step>-summary.json "
                             "in the current folder for a database URL)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (default: shown on a terminal)")


def add_llm(parser: argparse.ArgumentParser) -> None:
    add_llm_options(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="print how many requests, tokens and dollars the step would spend, then stop "
                             "(nothing is sent or cleaned/generated; `clean` still stores the input reports)")


def _beside_store(store: str, name: str) -> Path:
    """`<store>.<name>` beside a file store (so two stores in one folder never share a summary or a cache),
    or `<database>.<name>` in the current folder for a database URL."""
    if "://" in store:
        database = re.sub(r"[^A-Za-z0-9_.-]", "_", store.split("?")[0].rstrip("/").rsplit("/", 1)[-1]) or "store"
        return Path.cwd() / f"{database}.{name}"
    path = Path(store).expanduser().resolve()
    return path.parent / f"{path.stem}.{name}"


def llm_client(args: argparse.Namespace) -> LLMClient:
    """The client the flags describe; the reply cache defaults to <store>.llm-cache.sqlite beside a file store."""
    return LLMClient(llm_settings_from_args(args, cache_path=str(_beside_store(args.store, "llm-cache.sqlite"))))


def summary_path(args: argparse.Namespace, step: str) -> Path:
    return Path(args.summary) if args.summary else _beside_store(args.store, f"{step}-summary.json")


def progress(args: argparse.Namespace) -> bool | None:
    return False if args.no_progress else None


def csv_list(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None
