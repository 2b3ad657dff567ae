"""Benchmark: how much N clients guessing review-tab passwords slow another user's request.

Each guess is a full PBKDF2 check (600,000 rounds, `curation.store.users.DEFAULT_ITERATIONS`) of a name that
is not on the list (the constant-time dummy hash). A small piece of pure-Python work stands for another
user's request; its median time is measured idle, with N threads hashing at once (the sign-in before issue 13),
and with the same N threads going through `ui.review.session.password_sign_in` (at most
`MAX_CONCURRENT_HASHES` PBKDF2 checks at once; the per-client and global throttles are switched off here to
measure the hashing bound alone). Prints JSON: the slowdowns as factors of the idle time. Run from the repo root:

    .venv/bin/python benchmarks/sign_in_load.py [--clients 8] [--samples 15]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation.store.users import UsersFile  # noqa: E402
from ui.review.session import ReviewSettings, SignInError, SignInThrottle, password_sign_in  # noqa: E402


def request_time() -> float:
    started = time.perf_counter()
    sum(i * i for i in range(200_000))
    return time.perf_counter() - started


def median_under(load, clients: int, samples: int) -> float:
    stop = threading.Event()
    threads = [threading.Thread(target=load, args=(n, stop)) for n in range(clients)] if load else []
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    times = sorted(request_time() for _ in range(samples))
    stop.set()
    for thread in threads:
        thread.join()
    return times[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--samples", type=int, default=15)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sign-in-load-"))
    users = UsersFile.load(folder / "users.json", missing_ok=True)
    users.set_password("ann", "ann password")
    users.save()
    settings = ReviewSettings("unused.sqlite", users_file=str(users.path))
    throttle = SignInThrottle(max_failures=10 ** 9, max_attempts=10 ** 9)

    def all_at_once(number: int, stop: threading.Event) -> None:
        while not stop.is_set():
            UsersFile.load(users.path).verify(f"nobody{number}", "guess")

    def through_sign_in(number: int, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                password_sign_in(settings, None, f"nobody{number}", "guess", f"10.0.0.{number}", throttle)
            except SignInError:
                pass

    idle = median_under(None, 0, args.samples)
    unbounded = median_under(all_at_once, args.clients, args.samples)
    bounded = median_under(through_sign_in, args.clients, args.samples)
    print(json.dumps({"cpu_count": os.cpu_count(), "clients": args.clients, "idle_request_s": round(idle, 4),
                      "slowdown_all_hashing_at_once": round(unbounded / idle, 2),
                      "slowdown_through_sign_in": round(bounded / idle, 2)}, indent=1))


if __name__ == "__main__":
    main()
