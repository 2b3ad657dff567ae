"""A loopback Hugging Face Hub stand-in: real HTTP on 127.0.0.1 over in-memory repos (`hub_repos.py`).

huggingface_hub, transformers and datasets talk to it exactly as to huggingface.co once
`HF_ENDPOINT=<server.url>`, `HF_TOKEN=hf_test` and `HF_HUB_DISABLE_XET=1` are set before they are
imported (tests/conftest.py does this for the whole suite and exposes the server as the `hub` fixture).

Served (models, datasets and spaces alike): whoami, repo create/delete/move/settings, repo info (at a
revision), tree listing (recursive, with directory entries), paths-info, refs, commits, branches and
tags, preupload, NDJSON commits (regular files, LFS files, deletions, copies), the LFS batch API with
basic PUT uploads, `resolve` (HEAD/GET, Range, ETag, X-Repo-Commit, X-Linked-*), validate-yaml,
auth-check and space runtime. Errors carry `X-Error-Code` (RepoNotFound, RevisionNotFound,
EntryNotFound, GatedRepo) like the Hub, so the client raises its usual exception types.

    with HubStandIn() as hub:                  # or the `hub` fixture in tests
        hub.state.upload("org/model", {"config.json": "{}"})
        ...  # HfApi(endpoint=hub.url).upload_folder(...), from_pretrained(...), load_dataset(...)
        hub.state.files("org/model")           # what was pushed
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from tests.helpers.hub_repos import URL_PREFIXES, HubError, HubState, StoredFile, wants_lfs

_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_API_REPO = re.compile(r"^/api/(models|datasets|spaces)/([^/]+)/([^/]+)(?:/(.*))?$")
_LFS_BATCH = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+)/([^/]+?)\.git/info/lfs/objects/batch$")
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+)/([^/]+)/resolve/([^/]+)/(.+)$")


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


class HubStandIn:
    """The HTTP server. `state` is the `HubState`; `requests` records (method, path) of every call."""

    def __init__(self, state: HubState | None = None, port: int = 0) -> None:
        self.state = state or HubState()
        self.requests: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "HubStandIn":
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-stand-in", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        """Forget every repo, LFS object and recorded request (users and tokens stay)."""
        self.state.reset()
        self.requests.clear()

    def __enter__(self) -> "HubStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- request handling ------------------------------------------------------------------------
    def _handler_class(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def _dispatch(self) -> None:
                hub.requests.append((self.command, self.path))
                self._body = self._read_body()   # always drain it: the connection is kept alive
                try:
                    hub._route(self)
                except HubError as err:
                    self.send_json({"error": err.message}, err.status, err.code, err.message, err.headers)
                except Exception as err:  # a bug in the stand-in: answer 500 with the reason
                    self.send_json({"error": f"stand-in failure: {err!r}"}, 500, "", repr(err))

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch

            def body(self) -> bytes:
                return self._body

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def send(self, status: int, data: bytes, headers: dict | None = None,
                     content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def send_json(self, obj, status: int = 200, code: str = "", message: str = "",
                          extra: dict | None = None) -> None:
                headers = dict(extra or {})
                if code:
                    headers["X-Error-Code"] = code
                if message:
                    headers["X-Error-Message"] = message.replace("\n", " ")
                self.send(status, json.dumps(obj).encode(), headers)

        return Handler

    def _route(self, h) -> None:
        split = urlsplit(h.path)
        path, query = split.path, parse_qs(split.query)
        token = (h.headers.get("Authorization") or "").removeprefix("Bearer ").strip() or None
        user = self.state.user_for(token)
        method = h.command

        if path == "/api/whoami-v2":
            if user is None:
                raise HubError(401, "", "Invalid credentials in Authorization header")
            return h.send_json({"type": "user", "id": user, "name": user, "fullname": user.title(),
                                "email": f"{user}@example.org", "orgs": [], "isPro": False,
                                "auth": {"type": "access_token",
                                         "accessToken": {"displayName": "tests", "role": "write"}}})
        if path == "/api/validate-yaml":
            h.body()
            return h.send_json({"errors": [], "warnings": []})
        if path.startswith("/api/repos/"):
            return self._repos_endpoint(h, path.removeprefix("/api/repos/"), user)
        if path.startswith("/lfs-upload/") and method == "PUT":
            return self._lfs_put(h, path.removeprefix("/lfs-upload/"))
        if path.startswith("/lfs-download/") and method in ("GET", "HEAD"):
            data = self.state.lfs_objects.get(path.removeprefix("/lfs-download/"))
            if data is None:
                raise HubError(404, "", f"no LFS object {path}")
            return h.send(200, data, content_type="application/octet-stream")
        if m := _API_REPO.match(path):
            kind, ns, name, rest = m.groups()
            return self._repo_api(h, _TYPES[kind], f"{unquote(ns)}/{unquote(name)}", rest or "", query, user)
        if (m := _LFS_BATCH.match(path)) and method == "POST":
            kind, ns, name = m.groups()
            return self._lfs_batch(h, _TYPES.get(kind or "models"), f"{ns}/{name}", user)
        if (m := _RESOLVE.match(path)) and method in ("GET", "HEAD"):
            kind, ns, name, rev, file_path = m.groups()
            return self._resolve(h, _TYPES.get(kind or "models"), f"{unquote(ns)}/{unquote(name)}",
                                 unquote(rev), unquote(file_path), user)
        raise HubError(404, "", f"The stand-in does not serve {method} {path}")

    # -- /api/repos/* ------------------------------------------------------------------------------
    def _repos_endpoint(self, h, action: str, user: str | None) -> None:
        if user is None:
            raise HubError(401, "", "You must be authenticated to manage repos")
        payload = json.loads(h.body() or b"{}")
        repo_type = payload.get("type") or "model"
        if action == "create":
            repo_id = f"{payload.get('organization') or user}/{payload['name']}"
            private = payload.get("private") or payload.get("visibility") == "private"
            url = f"{self.url}/{URL_PREFIXES[repo_type]}{repo_id}"
            try:
                self.state.create_repo(repo_id, repo_type, owner=user, private=bool(private), sdk=payload.get("sdk"))
            except HubError as err:
                if err.status == 409:
                    return h.send_json({"error": err.message, "url": url}, 409, "", err.message)
                raise
            return h.send_json({"url": url, "name": repo_id, "id": repo_id})
        if action == "delete":
            repo_id = f"{payload.get('organization') or user}/{payload['name']}"
            self.state.repo(repo_type, repo_id, user, write=True)
            self.state.delete_repo(repo_id, repo_type)
            return h.send_json({})
        if action == "move":
            repo = self.state.repo(repo_type, payload["fromRepo"], user, write=True)
            with self.state.lock:
                del self.state.repos[(repo_type, repo.repo_id)]
                repo.repo_id = payload["toRepo"]
                self.state.repos[(repo_type, repo.repo_id)] = repo
            return h.send_json({})
        raise HubError(404, "", f"unknown repos action {action!r}")

    # -- /api/{type}s/{repo}/... -----------------------------------------------------------------
    def _repo_api(self, h, repo_type: str, repo_id: str, rest: str, query: dict, user: str | None) -> None:
        method = h.command
        parts = [unquote(p) for p in rest.split("/")] if rest else []
        head, args = (parts[0] if parts else ""), parts[1:]
        write = method in ("POST", "PUT", "DELETE") and head not in ("paths-info", "preupload")
        repo = self.state.repo(repo_type, repo_id, user, write=write and head != "auth-check")

        if head in ("", "revision") and method == "GET":
            return h.send_json(self._info(repo, args[0] if args else "main"))
        if head == "tree" and method == "GET":
            commit = repo.resolve(args[0])
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            return h.send_json(self.state.tree(commit, "/".join(args[1:]), recursive))
        if head == "paths-info" and method == "POST":
            commit = repo.resolve(args[0])
            raw = h.body()
            if (h.headers.get("Content-Type") or "").startswith("application/json"):
                paths = json.loads(raw).get("paths", [])
            else:
                paths = parse_qs(raw.decode()).get("paths", [])
            return h.send_json(self.state.paths_info(commit, paths))
        if head == "refs" and method == "GET":
            def refs(names: dict, kind: str) -> list[dict]:
                return [{"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": oid} for n, oid in names.items()]

            return h.send_json({"branches": refs(repo.branches, "heads"), "tags": refs(repo.tags, "tags"),
                                "converts": [], "pullRequests": []})
        if head == "commits" and method == "GET":
            return h.send_json([{"id": c.oid, "title": c.title, "message": c.message,
                                 "authors": [{"user": c.author}], "date": _iso(c.created_at)}
                                for c in repo.history(args[0])])
        if head == "preupload" and method == "POST":
            commit = repo.resolve(args[0])
            files = json.loads(h.body())["files"]
            return h.send_json({"files": [{
                "path": f["path"], "shouldIgnore": False,
                "uploadMode": "lfs" if wants_lfs(f["path"], int(f["size"])) else "regular",
                "oid": commit.files[f["path"]].oid if f["path"] in commit.files else None,
            } for f in files]})
        if head == "commit" and method == "POST":
            if "create_pr" in parse_qs(urlsplit(h.path).query):
                raise HubError(400, "", "The Hub stand-in does not support pull requests (create_pr)")
            return self._commit(h, repo, args[0], user)
        if head == "branch" and method in ("POST", "DELETE"):
            return self._branch(h, repo, args[0], method)
        if head == "tag" and method in ("POST", "DELETE"):
            return self._tag(h, repo, args[0], method)
        if head == "settings" and method == "PUT":
            payload = json.loads(h.body() or b"{}")
            with self.state.lock:
                if "private" in payload or "visibility" in payload:
                    repo.private = bool(payload.get("private")) or payload.get("visibility") == "private"
                if "gated" in payload:
                    repo.gated = payload["gated"] not in (False, None, "false")
            return h.send_json({})
        if head == "auth-check" and method == "GET":
            return h.send_json({})
        if head == "runtime" and method == "GET" and repo_type == "space":
            return h.send_json({"stage": "RUNNING", "hardware": {"current": "cpu-basic", "requested": "cpu-basic"},
                                "storage": None, "gcTimeout": None})
        raise HubError(404, "", f"The stand-in does not serve {method} /api/{repo_type}s/{repo_id}/{rest}")

    def _info(self, repo, revision: str) -> dict:
        commit = repo.resolve(revision)
        first = repo.history(revision)[-1]
        siblings = []
        for path, stored in sorted(commit.files.items()):
            sibling = {"rfilename": path, "size": len(stored.data), "blobId": stored.oid}
            if stored.lfs:
                sibling["lfs"] = stored.tree_entry(path)["lfs"] | {"sha256": stored.sha256}
            siblings.append(sibling)
        info = {"_id": commit.oid[:24], "id": repo.repo_id, "author": repo.owner, "sha": commit.oid,
                "lastModified": _iso(commit.created_at), "createdAt": _iso(first.created_at),
                "private": repo.private, "gated": "manual" if repo.gated else False, "disabled": False,
                "downloads": 0, "likes": 0, "tags": [], "siblings": siblings}
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
        if repo.repo_type == "space":
            info["sdk"] = repo.sdk
        return info

    def _commit(self, h, repo, branch: str, user: str | None) -> None:
        header: dict = {}
        additions: dict[str, StoredFile] = {}
        deletions: list[str] = []
        for line in h.body().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                data = base64.b64decode(value["content"]) if value.get("encoding") == "base64" \
                    else value["content"].encode()
                additions[value["path"]] = StoredFile(data, lfs=False)
            elif key == "lfsFile":
                data = self.state.lfs_objects.get(value["oid"])
                if data is None:
                    raise HubError(400, "", f"LFS object {value['oid']} for {value['path']} was never uploaded")
                additions[value["path"]] = StoredFile(data, lfs=True)
            elif key in ("deletedFile", "deletedFolder"):
                deletions.append(value["path"].rstrip("/") + ("/" if key == "deletedFolder" else ""))
            else:
                raise HubError(400, "", f"unknown commit operation {key!r}")
        commit = self.state.commit(repo, branch, additions, deletions, header.get("summary", ""),
                                   header.get("description", ""), user or "", header.get("parentCommit"))
        url = f"{self.url}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}/commit/{commit.oid}"
        h.send_json({"success": True, "commitOid": commit.oid, "commitUrl": url,
                     "commitMessage": commit.title, "pullRequestUrl": None})

    def _branch(self, h, repo, branch: str, method: str) -> None:
        payload = json.loads(h.body() or b"{}")
        with self.state.lock:
            if method == "DELETE":
                if repo.branches.pop(branch, None) is None:
                    raise HubError(404, "RevisionNotFound", f"Invalid rev id: {branch}")
            else:
                if branch in repo.branches:
                    raise HubError(409, "", f"Branch {branch} already exists")
                repo.branches[branch] = repo.resolve(payload.get("startingPoint") or "main").oid
        h.send_json({})

    def _tag(self, h, repo, name: str, method: str) -> None:
        payload = json.loads(h.body() or b"{}")
        with self.state.lock:
            if method == "DELETE":
                if repo.tags.pop(name, None) is None:
                    raise HubError(404, "RevisionNotFound", f"Invalid tag: {name}")
            else:  # POST /tag/{revision} with {"tag": name}
                if payload["tag"] in repo.tags:
                    raise HubError(409, "", f"Tag {payload['tag']} already exists")
                repo.tags[payload["tag"]] = repo.resolve(name).oid
        h.send_json({})

    # -- LFS ---------------------------------------------------------------------------------------
    def _lfs_batch(self, h, repo_type: str, repo_id: str, user: str | None) -> None:
        payload = json.loads(h.body())
        self.state.repo(repo_type, repo_id, user, write=payload.get("operation") == "upload")
        objects = []
        for obj in payload.get("objects", []):
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if payload.get("operation") == "upload" and obj["oid"] not in self.state.lfs_objects:
                entry["actions"] = {"upload": {"href": f"{self.url}/lfs-upload/{obj['oid']}", "header": {}}}
            elif payload.get("operation") == "download":
                entry["actions"] = {"download": {"href": f"{self.url}/lfs-download/{obj['oid']}"}}
            objects.append(entry)
        h.send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
               content_type="application/vnd.git-lfs+json")

    def _lfs_put(self, h, oid: str) -> None:
        data = h.body()
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, "", f"uploaded bytes do not hash to {oid}")
        with self.state.lock:
            self.state.lfs_objects[oid] = data
        h.send(200, b"")

    # -- resolve -------------------------------------------------------------------------------------
    def _resolve(self, h, repo_type: str, repo_id: str, revision: str, file_path: str, user: str | None) -> None:
        repo = self.state.repo(repo_type, repo_id, user)
        commit = repo.resolve(revision)
        stored = commit.files.get(file_path)
        if stored is None:
            raise HubError(404, "EntryNotFound", f"{file_path} does not exist in {repo_id}@{revision}",
                           headers={"X-Repo-Commit": commit.oid})
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{stored.etag}"', "Accept-Ranges": "bytes"}
        if stored.lfs:
            headers |= {"X-Linked-Etag": f'"{stored.etag}"', "X-Linked-Size": str(len(stored.data))}
        data, status = stored.data, 200
        if (rng := h.headers.get("Range")) and (m := re.match(r"bytes=(\d*)-(\d*)$", rng.strip())):
            start_s, end_s = m.groups()
            size = len(data)
            start = int(start_s) if start_s else max(0, size - int(end_s))
            end = min(int(end_s), size - 1) if (end_s and start_s) else size - 1
            if start >= size and size > 0:
                raise HubError(416, "", f"range {rng} outside a {size}-byte file")
            data, status = data[start:end + 1], 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        h.send(status, data, headers, content_type="application/octet-stream")
