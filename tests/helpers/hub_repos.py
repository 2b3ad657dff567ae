"""In-memory Hugging Face Hub repositories: the state behind the loopback Hub stand-in.

`HubState` holds model, dataset and space repos with git-like history (commits, branches, tags),
files stored either as regular git blobs or as LFS objects, users and their tokens, private and
gated repos. `tests/helpers/hub_server.py` serves it over HTTP; tests use it directly to seed repos
(`state.upload(...)`) and to inspect what a push wrote (`state.files(...)`).

Ids follow the Hub: a regular file's `oid` is its git blob SHA-1, an LFS file's tree `oid` is the
SHA-1 of its pointer file and its `lfs.oid` (and ETag) the SHA-256 of the content.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from dataclasses import dataclass, field

REPO_TYPES = ("model", "dataset", "space")
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}

# Files the Hub stores with LFS by default (its standard .gitattributes), or anything >= 10 MB.
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".parquet", ".arrow", ".npy",
                ".npz", ".onnx", ".pkl", ".msgpack", ".model", ".zip", ".gz", ".tar", ".tiff", ".svs")
LFS_MIN_SIZE = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"*{s} filter=lfs diff=lfs merge=lfs -text\n" for s in LFS_SUFFIXES).encode()


class HubError(Exception):
    """An HTTP-level error: status, the `X-Error-Code` header (may be empty) and a message."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def wants_lfs(path: str, size: int) -> bool:
    return size >= LFS_MIN_SIZE or path.lower().endswith(LFS_SUFFIXES)


@dataclass(frozen=True)
class StoredFile:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def oid(self) -> str:  # the git object id as the tree listing reports it
        return git_blob_sha1(lfs_pointer(self.sha256, len(self.data)) if self.lfs else self.data)

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.oid

    def tree_entry(self, path: str) -> dict:
        entry = {"type": "file", "path": path, "size": len(self.data), "oid": self.oid}
        if self.lfs:
            pointer = lfs_pointer(self.sha256, len(self.data))
            entry["lfs"] = {"oid": self.sha256, "size": len(self.data), "pointerSize": len(pointer)}
        return entry


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    author: str
    created_at: float
    files: dict[str, StoredFile]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    owner: str
    private: bool = False
    gated: bool = False
    granted: set[str] = field(default_factory=set)      # users allowed into a gated repo
    sdk: str | None = None                              # spaces only
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit:
        """A branch, a tag or a (full or >= 7 char) commit id -> the commit; else RevisionNotFound."""
        oid = self.branches.get(revision) or self.tags.get(revision)
        if oid is None and len(revision) >= 7:
            oid = next((c for c in self.commits if c.startswith(revision)), None)
        if oid is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return self.commits[oid]

    def history(self, revision: str) -> list[Commit]:
        commit, out = self.resolve(revision), []
        while commit is not None:
            out.append(commit)
            commit = self.commits.get(commit.parent) if commit.parent else None
        return out


class HubState:
    """Every repo, LFS object and token of the stand-in. All methods are thread-safe via `lock`."""

    def __init__(self, tokens: dict[str, str] | None = None) -> None:
        import threading

        self.lock = threading.RLock()
        self.tokens: dict[str, str] = dict(tokens or {"hf_test": "tester"})
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self._counter = itertools.count()

    def reset(self) -> None:
        with self.lock:
            self.repos.clear()
            self.lfs_objects.clear()

    # -- users and access ----------------------------------------------------------------------
    def user_for(self, token: str | None) -> str | None:
        """The user a bearer token belongs to; None for anonymous; 401 for an unknown token."""
        if not token:
            return None
        if token not in self.tokens:
            raise HubError(401, "", "Invalid credentials in Authorization header")
        return self.tokens[token]

    def repo(self, repo_type: str, repo_id: str, user: str | None, write: bool = False) -> Repo:
        """The repo if `user` may read it (or write it); RepoNotFound / GatedRepo like the Hub."""
        with self.lock:
            repo = self.repos.get((repo_type, repo_id))
            if repo is None or (repo.private and user != repo.owner):
                raise HubError(404, "RepoNotFound", f"Repository not found: {repo_type} {repo_id}")
            if write and user != repo.owner:
                raise HubError(403, "", f"You don't have the rights to write to {repo_id}")
            if repo.gated and user != repo.owner and user not in repo.granted:
                status = 401 if user is None else 403
                raise HubError(status, "GatedRepo", f"Access to {repo_type} {repo_id} is restricted. You must "
                               "have access to it and be authenticated to access it. Please log in.")
            return repo

    # -- repos -----------------------------------------------------------------------------------
    def create_repo(self, repo_id: str, repo_type: str = "model", owner: str | None = None,
                    private: bool = False, gated: bool = False, sdk: str | None = None) -> Repo:
        if repo_type not in REPO_TYPES:
            raise HubError(400, "", f"Invalid repo type {repo_type!r}")
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise HubError(409, "", f"You already created this {repo_type} repo: {repo_id}")
            repo = Repo(repo_type, repo_id, owner or repo_id.split("/")[0], private, gated, sdk=sdk)
            self.repos[(repo_type, repo_id)] = repo
            initial = {".gitattributes": StoredFile(GITATTRIBUTES, lfs=False)}
            self._add_commit(repo, "main", initial, "initial commit", "", repo.owner)
            return repo

    def delete_repo(self, repo_id: str, repo_type: str = "model") -> None:
        with self.lock:
            if self.repos.pop((repo_type, repo_id), None) is None:
                raise HubError(404, "RepoNotFound", f"Repository not found: {repo_type} {repo_id}")

    def _add_commit(self, repo: Repo, branch: str, files: dict[str, StoredFile], title: str,
                    message: str, author: str) -> Commit:
        parent = repo.branches.get(branch)
        seed = f"{repo.repo_id}:{branch}:{next(self._counter)}:{time.time_ns()}".encode()
        commit = Commit(hashlib.sha1(seed).hexdigest(), parent, title, message, author, time.time(), files)
        repo.commits[commit.oid] = commit
        repo.branches[branch] = commit.oid
        return commit

    def commit(self, repo: Repo, branch: str, additions: dict[str, StoredFile], deletions: list[str],
               title: str, message: str = "", author: str = "", parent_commit: str | None = None) -> Commit:
        """Apply additions and deletions (a deletion ending in "/" removes a folder) on a branch."""
        with self.lock:
            if branch not in repo.branches:
                if branch in repo.tags or any(c.startswith(branch) for c in repo.commits):
                    raise HubError(400, "", f"Cannot commit to {branch!r}: not a branch")
                raise HubError(404, "RevisionNotFound", f"Invalid rev id: {branch}")
            head = repo.commits[repo.branches[branch]]
            if parent_commit is not None and parent_commit != head.oid:
                raise HubError(412, "", f"A commit has happened since {parent_commit}; head is {head.oid}")
            files = dict(head.files)
            for path in deletions:
                if path.endswith("/"):
                    gone = [p for p in files if p.startswith(path)]
                else:
                    gone = [path] if path in files else []
                if not gone:
                    raise HubError(404, "EntryNotFound", f"{path} does not exist in {repo.repo_id}@{branch}")
                for p in gone:
                    del files[p]
            files.update(additions)
            return self._add_commit(repo, branch, files, title, message, author or repo.owner)

    def upload(self, repo_id: str, files: dict[str, bytes | str], repo_type: str = "model",
               branch: str = "main", message: str = "seed files", create: bool = True, **repo_kwargs) -> Commit:
        """Test helper: write files (bytes or str) into a repo, creating it if needed."""
        with self.lock:
            repo = self.repos.get((repo_type, repo_id))
            if repo is None:
                if not create:
                    raise HubError(404, "RepoNotFound", repo_id)
                repo = self.create_repo(repo_id, repo_type, **repo_kwargs)
            additions = {}
            for path, content in files.items():
                data = content.encode() if isinstance(content, str) else bytes(content)
                additions[path] = StoredFile(data, lfs=wants_lfs(path, len(data)))
            return self.commit(repo, branch, additions, [], message)

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """Test helper: path -> content at a revision (no access checks)."""
        with self.lock:
            repo = self.repos.get((repo_type, repo_id))
            if repo is None:
                raise KeyError(f"no {repo_type} repo {repo_id!r}; have {sorted(self.repos)}")
            return {path: f.data for path, f in repo.resolve(revision).files.items()}

    def grant(self, repo_id: str, user: str, repo_type: str = "model") -> None:
        with self.lock:
            self.repos[(repo_type, repo_id)].granted.add(user)

    # -- listings ----------------------------------------------------------------------------------
    @staticmethod
    def tree(commit: Commit, path: str = "", recursive: bool = False) -> list[dict]:
        """Tree entries under `path` (files and directories, like the Hub); EntryNotFound if absent."""
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in commit.files):
            raise HubError(404, "EntryNotFound", f"{path} does not exist")
        files: list[dict] = []
        dirs: dict[str, list[str]] = {}
        for p, stored in sorted(commit.files.items()):
            if not p.startswith(prefix):
                continue
            rest = p[len(prefix):].split("/")
            for depth in range(1, len(rest)):
                if recursive or depth == 1:
                    dirs.setdefault(prefix + "/".join(rest[:depth]), []).append(stored.oid)
            if recursive or len(rest) == 1:
                files.append(stored.tree_entry(p))
        folders = [{"type": "directory", "path": d, "size": 0,
                    "oid": hashlib.sha1("".join(oids).encode()).hexdigest()} for d, oids in sorted(dirs.items())]
        return folders + files

    @staticmethod
    def paths_info(commit: Commit, paths: list[str]) -> list[dict]:
        """Entries for exactly these paths (files or folders); unknown paths are left out, like the Hub."""
        out = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                out.append(commit.files[path].tree_entry(path))
            elif any(p.startswith(path + "/") for p in commit.files):
                oids = "".join(f.oid for p, f in sorted(commit.files.items()) if p.startswith(path + "/"))
                out.append({"type": "directory", "path": path, "size": 0,
                            "oid": hashlib.sha1(oids.encode()).hexdigest()})
        return out
