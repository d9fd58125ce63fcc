"""The e-mail a resident receives with an activation code, in their language (the pages' catalogs)."""

from __future__ import annotations

from api.bootstrap import Context
from community.service_layer.activation import Compose
from web import i18n
from web.auth import SIGN_IN_PATH
from web.i18n import N_

SUBJECT = N_("Your Entraide activation code")
BODY = N_("""Hello,

Here is your activation code for Entraide, the community rewards of your city:

    %(code)s

To sign in, open %(url)s and type the code. It works once, until %(expires)s. Then create a passkey on your device, to sign in next time without a code.

If you did not ask your city for this code, ignore this message: nobody can use it without this e-mail.

Entraide""")


def activation_message(ctx: Context, site: str) -> Compose:
    """How `ctx.activation.send` words the message, for a site at `site` (its origin)."""

    def compose(language: str, code: str, expires_at_us: int, city: str) -> tuple[str, str]:
        lang = language if language in i18n.LOCALES else i18n.LOCALES[0]
        expires = i18n.moment(lang, expires_at_us, ctx.programs.get(city).timezone)
        text = i18n.gettext(lang, BODY) % {"code": code, "url": site.rstrip("/") + SIGN_IN_PATH, "expires": expires}
        return i18n.gettext(lang, SUBJECT), text

    return compose
