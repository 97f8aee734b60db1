"""Who is looking at the page: this browser's anonymous identity, or a Hugging Face sign-in."""

from __future__ import annotations

import uuid

import gradio as gr

from auth.access import Access
from auth.callers import Caller


def visitor_state(access: Access) -> gr.BrowserState:
    """This browser's anonymous identity (AUTH_MODE public/private), encrypted so it can't be forged."""
    return gr.BrowserState("", storage_key="glassbox-visitor", secret=access.secret)


def caller_of(access: Access, visitor: str, profile: gr.OAuthProfile | None) -> Caller:
    """Who this page is: signed in with Hugging Face (on a Space with OAuth), else its browser."""
    # No id yet (the page is still loading): a fresh one, which owns nothing and is never shared.
    return access.page_caller(visitor or uuid.uuid4().hex, profile.username if profile else None)
