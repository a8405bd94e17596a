"""The few small pages the edge ever shows: not found, gone, and the password form."""

from __future__ import annotations

from html import escape

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:15vh auto;
padding:0 1rem;color:#222}}
input,button{{font:inherit;padding:.5rem;margin:.25rem 0}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


def page(title: str, body: str) -> bytes:
    return _PAGE.format(title=escape(title), body=body).encode()


NOT_FOUND = page("Link not found", "<p>This short link does not exist.</p>")
EXPIRED = page("Link expired", "<p>This short link has expired.</p>")
TAKEN_DOWN = page("Link unavailable", "<p>This short link has been disabled.</p>")
TOO_MANY = page("Too many attempts", "<p>Too many wrong passwords. Try again later.</p>")
TOO_LARGE = page("Request too large", "<p>That form was larger than any password.</p>")
BAD_REQUEST = page("Bad request", "<p>The request could not be read.</p>")


def password_form(action: str, wrong: bool = False) -> bytes:
    # POST, never GET: the password must not end up in a URL, a log or a Referer header.
    note = '<p role="alert">That password is not right.</p>' if wrong else ""
    return page(
        "Password required",
        f'{note}<form method="post" action="{escape(action)}">'
        '<label for="p">This link is protected. Password:</label><br>'
        '<input id="p" name="password" type="password" autocomplete="off" required autofocus>'
        '<button type="submit">Continue</button></form>',
    )


UNAVAILABLE = page("Temporarily unavailable", "<p>Please try again in a moment.</p>")
