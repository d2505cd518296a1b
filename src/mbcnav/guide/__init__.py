"""Doctor Discussion Guide: model, saved links, PDF/text/email export and a durable email outbox."""

from __future__ import annotations

from mbcnav.guide.db import make_engine, migrate, sqlite_url
from mbcnav.guide.export import guide_email, guide_html, guide_pdf, guide_text
from mbcnav.guide.model import Guide, GuideError, GuideItem, OptionSummary, parse_guide
from mbcnav.guide.outbox import InvalidRecipient, MessageStatus, Outbox, normalise_address
from mbcnav.guide.sender import Sender
from mbcnav.guide.store import GuideStore
from mbcnav.guide.suggest import SuggestedQuestion, option_summaries, suggested_questions
from mbcnav.guide.transport import EmlFolderTransport, PermanentDeliveryError, SmtpTransport, Transport

__all__ = [
    "EmlFolderTransport", "Guide", "GuideError", "GuideItem", "GuideStore", "InvalidRecipient", "MessageStatus",
    "OptionSummary", "Outbox", "PermanentDeliveryError", "Sender", "SmtpTransport", "SuggestedQuestion", "Transport",
    "guide_email", "guide_html", "guide_pdf", "guide_text", "make_engine", "migrate", "normalise_address",
    "option_summaries", "parse_guide", "sqlite_url", "suggested_questions",
]
