"""A local stand-in for the forge APIs the docs/ci examples call: GitHub's and GitLab's REST comments and issues.

Only the HTTP API is faked (the CI scripts, reproducer and its Terraform run for real). It pages lists as the
forges do (GitHub: 30 a page by default, a ``Link`` header with ``rel="next"``; GitLab: 20 by default,
``X-Next-Page``; both at most 100: docs/reference/forges.md#pagination), checks the token, and records every request.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "forge-test-token"
_DEFAULT_PAGE = {"github": 30, "gitlab": 20}


@dataclass
class Forge:
    """The state of one fake forge: comments (notes) per pull or merge request, issues, requests seen."""

    kind: str  # github | gitlab
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    issues: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""
    _next_id: int = 1000
    _server: ThreadingHTTPServer | None = None

    def new_id(self) -> int:
        """A fresh comment or issue id."""
        self._next_id += 1
        return self._next_id

    def add_comment(self, number: int, body: str) -> dict[str, Any]:
        """A comment someone else made on pull or merge request ``number``."""
        comment = {"id": self.new_id(), "body": body, "user": {"login": "someone"}}
        self.comments.setdefault(number, []).append(comment)
        return comment

    def add_issue(self, title: str, body: str, labels: list[str], state: str = "open") -> dict[str, Any]:
        """An issue someone else opened."""
        number = self.new_id()
        issue = {"number": number, "iid": number, "id": number, "title": title, "labels": labels, "state": state}
        issue["body" if self.kind == "github" else "description"] = body
        self.issues.append(issue)
        self.comments.setdefault(number, [])
        return issue

    @property
    def writes(self) -> list[tuple[str, str]]:
        """The requests that changed something."""
        return [r for r in self.requests if r[0] != "GET"]

    def start(self) -> Forge:
        """Serve on a free loopback port in a daemon thread."""
        forge = self

        class Handler(_Handler):
            state = forge

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}" + ("/api/v4" if self.kind == "gitlab" else "")
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    state: Forge

    def log_message(self, *_: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        forge = self.state
        parts = urlsplit(self.path)
        forge.requests.append((method, self.path))
        token = self.headers.get("Authorization") if forge.kind == "github" else self.headers.get("PRIVATE-TOKEN")
        if token not in (f"Bearer {TOKEN}", TOKEN):
            self._answer(401, {"message": "Bad credentials"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        data = json.loads(self.rfile.read(length)) if length else {}
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        route = _github if forge.kind == "github" else _gitlab
        route(self, forge, method, parts.path, query, data)

    def page(self, items: list[dict[str, Any]], query: dict[str, str]) -> None:
        """Answer one page of ``items``, with the forge's paging headers."""
        per_page = min(int(query.get("per_page", _DEFAULT_PAGE[self.state.kind])), 100)
        page = int(query.get("page", "1"))
        chunk = items[(page - 1) * per_page : page * per_page]
        more = page * per_page < len(items)
        headers = {}
        if self.state.kind == "github" and more:
            nxt = {**query, "page": str(page + 1), "per_page": str(per_page)}
            link = f"{self.state.url}{urlsplit(self.path).path}?" + "&".join(f"{k}={v}" for k, v in nxt.items())
            headers["Link"] = f'<{link}>; rel="next"'
        if self.state.kind == "gitlab":
            headers["X-Next-Page"] = str(page + 1) if more else ""
        self._answer(200, chunk, headers)

    def _answer(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def missing(self) -> None:
        """404 for a route the fake does not know."""
        self._answer(404, {"message": "Not Found"})


def _find(items: list[dict[str, Any]], key: str, value: int) -> dict[str, Any] | None:
    return next((item for item in items if item[key] == value), None)


def _github(h: _Handler, forge: Forge, method: str, path: str, query: dict[str, str], data: dict[str, Any]) -> None:
    comments = re.fullmatch(r"/repos/[^/]+/[^/]+/issues/(\d+)/comments", path)
    comment = re.fullmatch(r"/repos/[^/]+/[^/]+/issues/comments/(\d+)", path)
    issue = re.fullmatch(r"/repos/[^/]+/[^/]+/issues/(\d+)", path)
    if comments and method == "GET":
        h.page(forge.comments.get(int(comments.group(1)), []), query)
    elif comments and method == "POST":
        h._answer(201, forge.add_comment(int(comments.group(1)), data["body"]))
    elif comment and method == "PATCH":
        found = next((c for cs in forge.comments.values() for c in cs if c["id"] == int(comment.group(1))), None)
        _update(h, found, data)
    elif re.fullmatch(r"/repos/[^/]+/[^/]+/issues", path) and method == "GET":
        label = query.get("labels")
        wanted = query.get("state", "open")
        h.page([i for i in forge.issues if i["state"] == wanted and (not label or label in i["labels"])], query)
    elif re.fullmatch(r"/repos/[^/]+/[^/]+/issues", path) and method == "POST":
        h._answer(201, forge.add_issue(data["title"], data["body"], data.get("labels", [])))
    elif issue and method == "PATCH":
        _update(h, _find(forge.issues, "number", int(issue.group(1))), data)
    else:
        h.missing()


def _gitlab(h: _Handler, forge: Forge, method: str, path: str, query: dict[str, str], data: dict[str, Any]) -> None:
    notes = re.fullmatch(r"/api/v4/projects/\d+/(?:merge_requests|issues)/(\d+)/notes", path)
    note = re.fullmatch(r"/api/v4/projects/\d+/merge_requests/\d+/notes/(\d+)", path)
    issue = re.fullmatch(r"/api/v4/projects/\d+/issues/(\d+)", path)
    if notes and method == "GET":
        h.page(forge.comments.get(int(notes.group(1)), []), query)
    elif notes and method == "POST":
        h._answer(201, forge.add_comment(int(notes.group(1)), data["body"]))
    elif note and method == "PUT":
        found = next((c for cs in forge.comments.values() for c in cs if c["id"] == int(note.group(1))), None)
        _update(h, found, data)
    elif re.fullmatch(r"/api/v4/projects/\d+/issues", path) and method == "GET":
        label = query.get("labels")
        state = {"opened": "open"}.get(query.get("state", ""), query.get("state"))
        h.page([i for i in forge.issues if i["state"] == state and (not label or label in i["labels"])], query)
    elif re.fullmatch(r"/api/v4/projects/\d+/issues", path) and method == "POST":
        h._answer(201, forge.add_issue(data["title"], data["description"], data["labels"].split(",")))
    elif issue and method == "PUT":
        found = _find(forge.issues, "iid", int(issue.group(1)))
        if found is not None and data.get("state_event") == "close":
            data = {"state": "closed"}
        _update(h, found, data)
    else:
        h.missing()


def _update(h: _Handler, found: dict[str, Any] | None, data: dict[str, Any]) -> None:
    if found is None:
        h.missing()
        return
    found.update(data)
    h._answer(200, found)
