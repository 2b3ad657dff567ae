"""The local sign-in list of the review UI: annotator names with salted PBKDF2-SHA256 password hashes.

A JSON file, written atomically with mode 0600, that never holds a password, only
`{"format": ..., "users": {name: {"algorithm", "iterations", "salt", "hash", "created_at"}}}`.
It only proves who someone is; their role (annotator or lead) is the review store's
(`wsi-llava curate annotators --store S --add NAME --as LEAD`). On a Hugging Face Space the review tab
signs people in with Hugging Face OAuth instead and needs no such file.

    python -m curation.store.users --users-file review-users.json add ann        # asks the password twice
    echo "$PASSWORD" | python -m curation.store.users --users-file F add ann --password-stdin
    python -m curation.store.users --users-file F list | remove ann

    users = UsersFile.load("review-users.json"); users.verify("ann", "secret")   # -> True / False
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from common.atomic import atomic_write_json
from curation.errors import CurationError

FORMAT = "wsi-llava-review-users/1"
ALGORITHM = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 600_000          # OWASP 2023 for PBKDF2-HMAC-SHA256; ~0.1 s on one core
MIN_PASSWORD_CHARS = 8
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class UsersFileError(CurationError):
    """The users file cannot be read or changed as asked; the message names the file and the fix."""


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise UsersFileError(f"annotator name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-', starting "
                             "with a letter or digit (the same name as in the review store).")
    return name


def hash_password(password: str, salt: bytes, iterations: int) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations).hex()


@dataclass
class UsersFile:
    path: Path
    users: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path, missing_ok: bool = False) -> UsersFile:
        path = Path(path).expanduser()
        if not path.exists():
            if missing_ok:
                return cls(path)
            raise UsersFileError(f"users file {path} does not exist; create it with `python -m curation.store.users "
                                 f"--users-file {path} add NAME`.")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UsersFileError(f"users file {path} cannot be read as JSON ({exc}); recreate it with "
                                 "`python -m curation.store.users --users-file FILE add NAME`.") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("users"), dict):
            raise UsersFileError(f"users file {path} is not a {FORMAT} file (field 'format'); recreate it with "
                                 "`python -m curation.store.users --users-file FILE add NAME`.")
        for name, entry in data["users"].items():
            if not isinstance(entry, dict) or entry.get("algorithm") != ALGORITHM or not {
                    "iterations", "salt", "hash"} <= set(entry):
                raise UsersFileError(f"users file {path}: the entry of {name!r} is not a {ALGORITHM} hash; "
                                     "set its password again with `... add NAME --replace`.")
        return cls(path, dict(data["users"]))

    def save(self) -> None:
        atomic_write_json(self.path, {"format": FORMAT, "users": self.users})
        os.chmod(self.path, 0o600)

    def set_password(self, name: str, password: str, replace: bool = False,
                     iterations: int = DEFAULT_ITERATIONS) -> None:
        check_name(name)
        if name in self.users and not replace:
            raise UsersFileError(f"{name!r} is already in {self.path}; pass --replace to set a new password.")
        if len(password) < MIN_PASSWORD_CHARS:
            raise UsersFileError(f"the password of {name!r} needs at least {MIN_PASSWORD_CHARS} characters.")
        if iterations < 1_000:
            raise UsersFileError(f"iterations must be at least 1000, got {iterations}.")
        salt = secrets.token_bytes(16)
        self.users[name] = {"algorithm": ALGORITHM, "iterations": iterations, "salt": salt.hex(),
                            "hash": hash_password(password, salt, iterations),
                            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    def remove(self, name: str) -> None:
        if self.users.pop(name, None) is None:
            raise UsersFileError(f"{name!r} is not in {self.path}.")

    def verify(self, name: str, password: str) -> bool:
        """True when `password` is `name`'s; constant-time compare, same work for unknown names."""
        entry = self.users.get(name)
        if entry is None:
            hash_password(password, b"\0" * 16, DEFAULT_ITERATIONS)       # no timing hint that the name is unknown
            return False
        computed = hash_password(password, bytes.fromhex(entry["salt"]), int(entry["iterations"]))
        return hmac.compare_digest(computed, entry["hash"])


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise UsersFileError("the two passwords differ; nothing was written.")
    return first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m curation.store.users", description=__doc__.splitlines()[0])
    parser.add_argument("--users-file", required=True, help="the JSON users file (created when missing)")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="add a user, or set a new password with --replace")
    add.add_argument("name")
    add.add_argument("--replace", action="store_true")
    add.add_argument("--password-stdin", action="store_true", help="read the password from one stdin line")
    add.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS)
    sub.add_parser("remove", help="remove a user").add_argument("name")
    sub.add_parser("list", help="print the user names")
    args = parser.parse_args(argv)
    try:
        users = UsersFile.load(args.users_file, missing_ok=args.command == "add")
        if args.command == "list":
            print("\n".join(sorted(users.users)))
            return 0
        if args.command == "add":
            users.set_password(check_name(args.name), _read_password(args.password_stdin), args.replace,
                               args.iterations)
        else:
            users.remove(args.name)
        users.save()
        print(f"{args.command}: {args.name} ({users.path}, {len(users.users)} user(s))")
        return 0
    except CurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    from common.pipes import exit_quietly_on_closed_pipe

    sys.exit(exit_quietly_on_closed_pipe(main))
