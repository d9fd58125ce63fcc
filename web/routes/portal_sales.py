"""`/portal/sales`, `/portal/statements`: a merchant owner's money pages (web.auth `Merchant`). Sales
today and over a month (`?month=YYYY-MM`), paged; the closed periods, each with what the city pays
(its payout and status) or collects; a closed period's statement as a page, a CSV download and a
printable PDF, which WeasyPrint renders from the page's own template with its print stylesheet,
fetching nothing but our static files. All of it from `ctx.merchant_statements`, the service that
reads the POS statement (`/v1/pos/statement`) and the city's stored statements.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from litestar import Request, Response, Router, get
from litestar.response import Template
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

from api.http.params import Ctx, OptionalPeriod, OptionalSequence, Period
from finance.schemas import MerchantPeriod
from web import pages
from web.auth import Merchant, owner_merchant

# WeasyPrint resolves the page's links against this base, and fetches only what lies under /static/.
PDF_BASE_URL = "https://entraide.invalid/"
STATEMENT_TEMPLATE = "portal/statement.html"
_PRINT = pages.environment()  # the pages' own Jinja2 environment, for rendering outside a response


def _context(ctx: Ctx, owner: Merchant) -> dict[str, Any]:
    city, merchant_id = owner_merchant(owner)
    return {"merchant": ctx.merchants.get(merchant_id, city), "city_name": pages.city_name(ctx, city),
            "timezone": ctx.programs.get(city).timezone}  # fmt: skip


@get("/portal/sales", sync_to_thread=True)
def sales(request: Request, ctx: Ctx, owner: Merchant, month: OptionalPeriod = None,
          before: OptionalSequence = None) -> Template:  # fmt: skip
    """Today's and a month's awards, redemptions and refunds, with their totals in points and dollars."""
    city, merchant_id = owner_merchant(owner)
    found = ctx.merchant_statements.sales(city, merchant_id, month, before)
    return pages.render(request, "portal/sales.html", sales=found, before=before, **_context(ctx, owner))


@get("/portal/statements", sync_to_thread=True)
def statements(request: Request, ctx: Ctx, owner: Merchant) -> Template:
    """The closed periods, latest first, with what each pays or collects and where that stands."""
    city, merchant_id = owner_merchant(owner)
    found = ctx.merchant_statements.periods(city, merchant_id)
    return pages.render(request, "portal/statements.html", periods=found.periods, **_context(ctx, owner))


@get("/portal/statements/{period:str}", sync_to_thread=True)
def statement(request: Request, ctx: Ctx, owner: Merchant, period: Period) -> Template:
    city, merchant_id = owner_merchant(owner)
    found = ctx.merchant_statements.closed(city, merchant_id, period)
    return pages.render(request, STATEMENT_TEMPLATE, statement=found, printed=False, **_context(ctx, owner))


@get("/portal/statements/{period:str}/statement.csv", sync_to_thread=True)
def statement_csv(ctx: Ctx, owner: Merchant, period: Period) -> Response[bytes]:
    city, merchant_id = owner_merchant(owner)
    body = ctx.merchant_statements.closed_csv(city, merchant_id, period)
    return pages.download(body, "text/csv; charset=utf-8", f"entraide-statement-{city}-{merchant_id}-{period}.csv")


@get("/portal/statements/{period:str}/statement.pdf", sync_to_thread=True)
def statement_pdf(request: Request, ctx: Ctx, owner: Merchant, period: Period) -> Response[bytes]:
    """The statement page itself, printed: the same template and data, the print stylesheet applied."""
    city, merchant_id = owner_merchant(owner)
    found = ctx.merchant_statements.closed(city, merchant_id, period)
    pdf = statement_document(pages.locale(request), found, **_context(ctx, owner)).write_pdf()
    return pages.download(pdf, "application/pdf", f"entraide-statement-{city}-{merchant_id}-{period}.pdf")


def statement_document(lang: str, found: MerchantPeriod, **context: Any) -> Any:
    """The statement page in `lang` laid out for print by WeasyPrint (its `Document`: pages, then
    `write_pdf`): the page's template and data, without its links to downloads (`printed`)."""
    page = {"lang": lang, "path": f"/portal/statements/{found.period}", "query": "", "csrf_input": ""}
    html = _PRINT.get_template(STATEMENT_TEMPLATE).render(**page, statement=found, printed=True, **context)
    return HTML(string=html, base_url=PDF_BASE_URL, url_fetcher=StaticFiles()).render()


class StaticFiles(URLFetcher):
    """WeasyPrint's fetcher, limited to our own static files read from disk: no network, no other file."""

    def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
        if not url.startswith(PDF_BASE_URL + "static/"):
            raise ValueError(f"a printed page fetches only our static files, not {url}")
        relative = url.removeprefix(PDF_BASE_URL + "static/").split("?")[0].split("#")[0]
        path = (pages.STATIC_DIR / relative).resolve()
        if not path.is_relative_to(pages.STATIC_DIR.resolve()) or not path.is_file():
            raise ValueError(f"no static file {relative}")
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": media_type})


ROUTER = Router("/", route_handlers=[sales, statements, statement, statement_csv, statement_pdf])
