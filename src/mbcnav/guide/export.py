"""The guide as PDF, plain text and an email message (text + HTML + the PDF attached)."""

from __future__ import annotations

import re
import textwrap
from email.message import EmailMessage
from email.policy import SMTP
from html import escape

from mbcnav.engine import DISCLAIMER
from mbcnav.guide.model import Guide
from mbcnav.guide.pdf import TITLE, guide_pdf

__all__ = ["SUBJECT", "HeaderInjectionError", "guide_email", "guide_html", "guide_pdf", "guide_text"]

SUBJECT = "Your Doctor Discussion Guide"
# 7-bit clean on the wire (base64 / quoted-printable), so no SMTP server needs 8BITMIME.
POLICY = SMTP.clone(cte_type="7bit")
PDF_NAME = "doctor-discussion-guide.pdf"
_LINK = re.compile(r"^https?://[^\s<>\"'\x00-\x1f\x7f]{1,300}$")


class HeaderInjectionError(ValueError):
    """A header value with a line break or other control character."""


def _made(guide: Guide) -> str:
    line = f"Made on {guide.created.day} {guide.created:%B %Y}."
    return line + (f" Knowledge version {guide.knowledge_version}." if guide.knowledge_version else "")


def _fill(text: str, indent: str) -> str:
    # Each line of a note is wrapped on its own so the user's line breaks survive.
    return "\n".join(textwrap.fill(line, 76, initial_indent=indent, subsequent_indent=indent) or indent.rstrip()
                     for line in text.split("\n"))


def guide_text(guide: Guide, link: str | None = None) -> str:
    out = [TITLE, _made(guide), "", "Take this to your next visit. Tick each question once it has been answered.", ""]
    out.append("QUESTIONS AND NOTES")
    n = 0
    for item in guide.items:
        if item.kind == "question":
            n += 1
            prefix = f"{n:>3}. [ ] "
            out.append(prefix + _fill(item.text, " " * len(prefix)).lstrip())
        else:
            out.append(_fill("Note: " + item.text, " " * 9))
    if not guide.items:
        out.append("  No questions added yet.")
    if guide.options_summary:
        out += ["", "TREATMENT OPTIONS YOU CHOSE TO INCLUDE"]
        for option in guide.options_summary:
            out.append(textwrap.fill(f"- {option.title} ({option.tier_label})", 76, subsequent_indent="  "))
            if option.drugs:
                out.append(_fill(f"Medicines: {option.drugs}", "    "))
    out += ["", _fill(DISCLAIMER, "")]
    if link:
        out += ["", f"Made with mbcnav: {_checked_link(link)}"]
    return "\n".join(out) + "\n"


def guide_html(guide: Guide, link: str | None = None) -> str:
    """A plain HTML version for mail readers; every piece of user text is escaped."""
    parts = [f"<h1 style=\"font-size:20px\">{TITLE}</h1>", f"<p style=\"color:#555\">{escape(_made(guide))}</p>",
             "<h2 style=\"font-size:16px\">Questions and notes</h2>"]
    n = 0
    for item in guide.items:
        text = escape(item.text).replace("\n", "<br>")
        if item.kind == "question":
            n += 1
            parts.append(f"<p>{n}. &#9744; {text}</p>")
        else:
            parts.append(f"<p style=\"margin-left:2em;color:#555;border-left:3px solid #aaa;padding-left:8px\">"
                         f"<b>Note:</b> {text}</p>")
    if not guide.items:
        parts.append("<p>No questions added yet.</p>")
    if guide.options_summary:
        parts.append("<h2 style=\"font-size:16px\">Treatment options you chose to include</h2><ul>")
        for option in guide.options_summary:
            drugs = f"<br>Medicines: {escape(option.drugs)}" if option.drugs else ""
            parts.append(f"<li><b>{escape(option.title)}</b> ({option.tier_label}){drugs}</li>")
        parts.append("</ul>")
    parts.append(f"<p style=\"color:#555;font-size:13px\">{escape(DISCLAIMER)}</p>")
    if link:
        safe = escape(_checked_link(link))
        parts.append(f"<p style=\"font-size:13px\">Made with mbcnav: <a href=\"{safe}\">{safe}</a></p>")
    body = "\n".join(parts)
    return f"<!doctype html>\n<html><body style=\"font-family:sans-serif;max-width:40em\">\n{body}\n</body></html>\n"


def check_header(name: str, value: str) -> str:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise HeaderInjectionError(f"{name}: line breaks and control characters are not allowed")
    return value


def guide_email(guide: Guide, recipient: str, sender_address: str, *, reply_to: str | None = None,
                link: str | None = None) -> EmailMessage:
    """The email for `recipient`: fixed subject, fixed sender, body = the guide only.

    `recipient` must already be validated (Outbox.enqueue does it); headers are still checked here
    so no caller can inject one.
    """
    message = EmailMessage(policy=POLICY)
    message["From"] = check_header("from", sender_address)
    message["To"] = check_header("recipient", recipient)
    if reply_to:
        message["Reply-To"] = check_header("reply_to", reply_to)
    message["Subject"] = SUBJECT
    message.set_content(guide_text(guide, link))
    message.add_alternative(guide_html(guide, link), subtype="html")
    message.add_attachment(guide_pdf(guide), maintype="application", subtype="pdf", filename=PDF_NAME)
    return message


def _checked_link(link: str) -> str:
    if not _LINK.match(link):
        raise ValueError("link: must be an http(s) URL without spaces or control characters")
    return link
