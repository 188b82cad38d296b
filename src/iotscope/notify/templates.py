"""The words of every mail and notice, in Japanese and English, as Jinja2 templates.

Templates live in ``notify/templates/`` as ``<name>.<language>.<txt|html>.j2``, so a translator
edits text, not code. Each template sets its subject with ``{% set subject = "..." %}``. HTML
templates are autoescaped (a device banner in a notice is text, never markup); text templates
are not, and get only values the survey already made printable (:func:`iotscope.survey.findings.sanitize`).
"""

from __future__ import annotations

from dataclasses import dataclass

import jinja2

from iotscope.notify.errors import NotifyError
from iotscope.notify.orgs import LANGUAGES

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("iotscope.notify", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
    undefined=jinja2.StrictUndefined,  # a missing value is a bug in the caller, not an empty line
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str


def render(name: str, language: str, fmt: str = "txt", **context: object) -> Rendered:
    """Render ``<name>.<language>.<fmt>.j2`` with ``context``; its subject and its text."""
    if language not in LANGUAGES:
        raise NotifyError(f"no {language!r} templates (languages: {', '.join(LANGUAGES)})")
    template = _ENVIRONMENT.get_template(f"{name}.{language}.{fmt}.j2")
    body = template.render(**context)
    subject = str(template.make_module(context).subject)
    return Rendered(" ".join(subject.split()), body)
