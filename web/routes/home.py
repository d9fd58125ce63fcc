"""`/`: the welcome page, and the language switch every page carries."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Request, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.http.params import Ctx
from web import i18n, pages


class LanguageChoice(msgspec.Struct, frozen=True):
    lang: str
    next: str = "/"


@get("/", sync_to_thread=True)
def welcome(request: Request, ctx: Ctx) -> Template:
    return pages.render(request, "home.html", cities=ctx.programs.communities())


@post("/language", status_code=303)
async def choose_language(
    request: Request, data: Annotated[LanguageChoice, Body(media_type=RequestEncodingType.URL_ENCODED)]
) -> Redirect:
    """Remember the visitor's language for a year (an unknown one is ignored) and go back to the page."""
    cookies = []
    if data.lang in i18n.LOCALES:
        cookies.append(pages.secure_cookie(i18n.LANGUAGE_COOKIE, data.lang, pages.YEAR_SECONDS))
    return pages.see_other(data.next, cookies)


ROUTER = Router("/", route_handlers=[welcome, choose_language])
