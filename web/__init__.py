"""The web pages: server-rendered from the same service layer the API calls (docs/architecture.md, "Web").

`web/routes/` holds one module per area (`/`, `/wallet`, `/public`, and the next ones), `web/templates/`
one Jinja2 template per page and shared partials, `web/static/` the stylesheet and the small JavaScript
modules some pages load, `web/locales/` the pages' catalogs. `web/pages.py` is the one place a page is
rendered: language, formats, security headers, CSRF and the signed-in principal all come from there.
"""
