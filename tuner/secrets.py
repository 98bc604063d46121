"""Keep secrets out of everything tuner prints, logs or stores.

Storage URLs and tracking URIs may carry passwords (``postgresql://u:pw@host/db``)
or tokens in query strings; these helpers mask them before any text leaves tuner.
"""

from __future__ import annotations

import re

__all__ = ["mask_secrets", "mask_url"]

# scheme://user:password@host  →  scheme://user:***@host
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")
# ?password=...&token=...  →  ?password=***
_QUERY = re.compile(
    r"(?P<key>(?:password|passwd|pwd|token|secret|access_key|api_key|apikey)=)(?P<val>[^&\s]+)",
    re.IGNORECASE,
)


def mask_url(url: str) -> str:
    """``url`` with any password or token replaced by ``***``."""
    return mask_secrets(url)


def mask_secrets(text: str) -> str:
    """``text`` with every URL password and secret query parameter masked."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _QUERY.sub(lambda m: f"{m['key']}***", text)
