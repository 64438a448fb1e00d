"""The admin UI as a WSGI application: routing, security headers, login, errors.

Werkzeug parses requests and routes them; Jinja2 renders every page with autoescaping on, so a
value from the database is text wherever it lands. Every response carries a strict
Content-Security-Policy (scripts and styles from this server only, no inline code). Without
credentials the UI is read-only and no action route answers; with them every route needs a
session, and every POST the session's CSRF token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from werkzeug.exceptions import Forbidden, HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from minion_daemon.admin import actions, pages, present
from minion_daemon.admin.auth import COOKIE_NAME, SESSION_SECONDS, Credentials, Sessions
from minion_daemon.backend import PgBackend
from minion_daemon.config import redact_dsn
from minion_daemon.errors import BackendError, DatabaseUnavailableError
from minion_daemon.minion import Minion

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

STATIC: Final = Path(__file__).parent / "static"
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: with it a browser sends "Origin: null" even from our own forms.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_STATIC_TYPES: Final = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}

Handler = Callable[..., Response]

_PAGES: Final[dict[str, Handler]] = {
    "/": pages.dashboard,
    "/stats": pages.stats_json,
    "/jobs": pages.jobs,
    "/jobs/<int(max=9223372036854775807):job_id>": pages.job,
    "/workers": pages.workers,
    "/locks": pages.locks,
    "/schedules": pages.schedules,
    "/queues": pages.queues,
}
_ACTIONS: Final[dict[str, Handler]] = {
    "/jobs/manage": actions.manage_jobs,
    "/workers/broadcast": actions.broadcast,
    "/locks/unlock": actions.unlock,
    "/schedules/manage": actions.manage_schedules,
}


class _Request(Request):
    #: A form of this UI is a few hundred bytes per selected job; nothing needs a megabyte.
    max_content_length = 1 << 20
    max_form_parts = 10_000


class AdminApp:
    """The WSGI application over one backend (which it never migrates)."""

    def __init__(
        self,
        backend: PgBackend,
        credentials: Credentials,
        secret: bytes,
        *,
        query_timeout: float = 2.0,
    ) -> None:
        self.backend = backend
        self.minion = Minion(backend)
        self.credentials = credentials
        self.sessions = Sessions(secret)
        self.query_timeout = query_timeout
        self.templates = Environment(
            loader=PackageLoader("minion_daemon.admin", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        present.install(self.templates)
        rules = [Rule(path, endpoint=path, methods=["GET"]) for path in _PAGES]
        rules += [Rule(path, endpoint=path, methods=["POST"]) for path in _ACTIONS]
        rules += [
            Rule("/login", endpoint="/login", methods=["GET", "POST"]),
            Rule("/logout", endpoint="/logout", methods=["POST"]),
            Rule("/static/<name>", endpoint="/static", methods=["GET"]),
        ]
        self.url_map = Map(rules, strict_slashes=False)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = _Request(environ)
        response = self._respond(request)
        response.headers.update(_HEADERS)
        answer: Iterable[bytes] = response(environ, start_response)
        return answer

    # Rendering

    def render(self, request: Request, template: str, status: int = 200, **values: Any) -> Response:
        cookie = request.cookies.get(COOKIE_NAME)
        signed_in = self.sessions.valid(cookie, time.time())
        page = self.templates.get_template(template).render(
            request=request,
            can_act=signed_in,
            login_enabled=self.credentials.configured,
            csrf=self.sessions.csrf_token(cookie) if signed_in and cookie else "",
            notice=present.NOTICES.get(request.args.get("notice", "")),
            **values,
        )
        return Response(page, status=status, content_type="text/html; charset=utf-8")

    # Dispatch

    def _respond(self, request: Request) -> Response:
        try:
            endpoint, values = self.url_map.bind_to_environ(request.environ).match()
            return self._dispatch(request, str(endpoint), values)
        except HTTPException as error:
            return self._error(request, error.code or 500, error.description or error.name)
        except DatabaseUnavailableError as error:
            return self._error(request, 503, f"The database is unreachable: {error}")
        except BackendError as error:
            return self._error(request, 503, f"The database did not answer: {error}")
        except ValueError as error:  # the backend's own check of a value from the request
            return self._error(request, 400, str(error))

    def _dispatch(self, request: Request, endpoint: str, values: Mapping[str, Any]) -> Response:
        if endpoint == "/static":
            return _static(values["name"])
        if endpoint == "/login":
            return self._login(request)
        if self.credentials.configured and not self._signed_in(request):
            return redirect("/login", code=303)
        if endpoint == "/logout":
            self._check_post(request)
            response = redirect("/login", code=303)
            response.delete_cookie(COOKIE_NAME)
            return response
        if endpoint in _ACTIONS:
            self._check_post(request)
            return _ACTIONS[endpoint](self, request)
        return _PAGES[endpoint](self, request, **values)

    def _error(self, request: Request, status: int, message: str) -> Response:
        return self.render(request, "error.html", status=status, message=redact_dsn(message))

    # Sessions

    def _signed_in(self, request: Request) -> bool:
        return self.sessions.valid(request.cookies.get(COOKIE_NAME), time.time())

    def _check_post(self, request: Request) -> None:
        """A state change needs credentials, a session, its CSRF token and no foreign origin."""
        if not self.credentials.configured:
            raise Forbidden(
                "Actions are off: set admin.password_hash (minion-daemon admin --hash-password)."
            )
        _same_origin(request)
        cookie = request.cookies.get(COOKIE_NAME)
        if not self.sessions.csrf_valid(cookie, request.form.get("csrf")):
            raise Forbidden("The form's CSRF token is missing or stale: reload the page.")

    def _login(self, request: Request) -> Response:
        if not self.credentials.configured:
            raise NotFound("No login: the UI is read-only until admin.password_hash is set.")
        if request.method == "GET":
            return self.render(request, "login.html")
        _same_origin(request)
        if not self.credentials.accept(request.form.get("password", "")):
            return self.render(request, "login.html", status=403, failed=True)
        response = redirect("/", code=303)
        response.set_cookie(
            COOKIE_NAME,
            self.sessions.issue(time.time()),
            max_age=SESSION_SECONDS,
            httponly=True,
            samesite="Strict",
            secure=request.is_secure,
            path="/",
        )
        return response


def _same_origin(request: Request) -> None:
    origin = request.headers.get("Origin")
    if origin and (origin == "null" or urlsplit(origin).netloc != request.host):
        raise Forbidden("A form from another site cannot act here.")


def _static(name: str) -> Response:
    path = STATIC / name
    if path.suffix not in _STATIC_TYPES or not path.is_file() or path.parent != STATIC:
        raise NotFound()
    return Response(path.read_bytes(), content_type=f"{_STATIC_TYPES[path.suffix]}; charset=utf-8")
