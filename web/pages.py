"""How every page is rendered and protected: one Jinja2 environment, the visitor's language and the
formats, the security headers (a strict CSP: no inline script or style, nothing from another
origin), CSRF on every form (litestar's CSRF middleware, on the pages' routers only: the API is
called with bearer tokens and signatures, never cookies), and the session cookie.

A page handler calls the service the API calls and returns `render(request, "page.html", ...)`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from litestar import Request, Response
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.template.config import TemplateConfig
from markupsafe import Markup

if TYPE_CHECKING:
    from api.bootstrap import Context

from api.bootstrap import Context
from web import i18n

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")
SESSION_COOKIE = "entraide_session"
CSRF_COOKIE = "entraide_csrf"
CSRF_FIELD = "_csrf_token"  # litestar's form field name
YEAR_SECONDS = 365 * 24 * 3600

# Only our own origin, only files (no inline script, style or event handler), no frames, no plugins.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "font-src 'self'",
    "connect-src 'self'", "manifest-src 'self'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'",
))  # fmt: skip


def content_security_policy(img_origins: tuple[str, ...] = ()) -> str:
    """The policy, with images also allowed from `img_origins` (a page's map tiles, a setting)."""
    if not img_origins:
        return CONTENT_SECURITY_POLICY
    return CONTENT_SECURITY_POLICY.replace("img-src 'self' data:", " ".join(("img-src 'self' data:", *img_origins)))


SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), payment=(), usb=()",
}


# --- language and formats in templates ------------------------------------------------------


def _locale_of(context: Mapping[str, Any]) -> str:
    return context["lang"]


@pass_context
def _gettext(context, message: str, **variables: Any) -> str:
    """`{% trans %}` and `_()` in new style: translated, then filled with escaped variables."""
    text = i18n.gettext(_locale_of(context), message)
    if context.eval_ctx.autoescape:
        text = Markup(text)
    return text % variables if variables else text


@pass_context
def _ngettext(context, singular: str, plural: str, count: int, **variables: Any) -> str:
    text = i18n.translations(_locale_of(context)).ngettext(singular, plural, count)
    if context.eval_ctx.autoescape:
        text = Markup(text)
    return text % {"num": count, **variables}


def _formatter(format_: Callable[..., str]) -> Callable[..., str]:
    @pass_context
    def formatted(context, value: Any, *args: Any) -> str:
        return format_(_locale_of(context), value, *args)

    return formatted


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(("html", "svg", "xml")),
        undefined=StrictUndefined,  # a misspelt variable fails the page's test, not a visitor silently
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.newstyle_gettext = True  # type: ignore[attr-defined]  # set by the i18n extension
    env.globals.update(gettext=_gettext, _=_gettext, ngettext=_ngettext, language_names=i18n.LANGUAGE_NAMES,
                       locales=i18n.LOCALES)  # fmt: skip
    env.filters.update(points=_formatter(i18n.points), signed_points=_formatter(i18n.signed_points),
                       dollars=_formatter(i18n.dollars), moment=_formatter(i18n.moment), day=_formatter(i18n.day))  # fmt: skip
    return env


def template_config() -> TemplateConfig:
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment()))


# --- rendering ------------------------------------------------------------------------------


def locale(request: Request) -> str:
    return i18n.page_locale(request.cookies.get(i18n.LANGUAGE_COOKIE), request.headers.get("accept-language"))


def render(request: Request, template: str, status_code: int = 200, img_origins: tuple[str, ...] = (),
           **context: Any) -> Template:  # fmt: skip
    """A page in the visitor's language, with its security headers. `context` holds what the page
    shows, typed structs from the service layer as the API returns them; `img_origins`, another
    origin the page's images may come from (the map's tile server, when one is configured)."""
    lang = locale(request)
    return Template(
        template_name=template,
        context={"lang": lang, "path": request.url.path, "query": request.url.query, **context},
        status_code=status_code,
        headers={**SECURITY_HEADERS, "Content-Security-Policy": content_security_policy(img_origins), "Content-Language": lang,
                 "Cache-Control": "no-store", "Vary": "Cookie, Accept-Language"},
    )  # fmt: skip


def site_origin(request: Request, ctx: Context) -> str:
    """This site's public address (`ENTRAIDE_WEB_ORIGIN`), else the request's own: what absolute
    links back to us are built on (passkeys' relying party, the card processor's return page)."""
    return (ctx.settings.web_origin or f"{request.url.scheme}://{request.url.netloc}").rstrip("/")


def local_target(target: str | None, default: str = "/") -> str:
    """Where a form may send the visitor back to: a path of this site only (no scheme, host or `//`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else default


def see_other(target: str, cookies: list[Cookie] | None = None) -> Redirect:
    """After a form: 303 to a page of ours (POST-redirect-GET)."""
    return Redirect(local_target(target), status_code=303, cookies=cookies or [], headers=SECURITY_HEADERS)


def with_security_headers(response: Response) -> Response:
    """For the pages' routers' `after_request`: every answer (an error page, a download) has them."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


# --- cookies and CSRF -----------------------------------------------------------------------


def secure_cookie(name: str, value: str, max_age_seconds: int | None, secure: bool = True) -> Cookie:
    """HttpOnly, Secure and SameSite=Lax (the identity provider's redirect back is a top-level GET)."""
    return Cookie(key=name, value=value, max_age=max_age_seconds, path="/", httponly=True, secure=secure,
                  samesite="lax")  # fmt: skip


def csrf_middleware(ctx: Context) -> DefineMiddleware:
    """litestar's double-submit CSRF check: a form's hidden `_csrf_token` must match the cookie's,
    which is signed with a secret of the deployment (every worker shares it)."""
    secret = hmac.new(ctx.keys.secret("web"), b"entraide/csrf", hashlib.sha256).hexdigest()
    config = CSRFConfig(secret=secret, cookie_name=CSRF_COOKIE, cookie_secure=True, cookie_httponly=True,
                        cookie_samesite="lax")  # fmt: skip
    return DefineMiddleware(CSRFMiddleware, config=config)


def map_tiles(ctx: Context) -> tuple[str | None, tuple[str, ...]]:
    """A map's tile URL template (None: a blank map) and the origin the page's CSP must allow for it."""
    url = ctx.settings.map_tiles_url
    if not url:
        return None, ()
    parts = urlsplit(url)
    return url, (f"{parts.scheme}://{parts.netloc}",)


def city_name(ctx: Context, city: str) -> str:
    """A city's name as the pages show it (its id if it has no program)."""
    return next((c.name for c in ctx.programs.communities() if c.city == city), city)
