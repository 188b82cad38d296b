"""A real SMTP server for the notify tests, run as its own process: ``python smtp_server.py``.

aiosmtpd on 127.0.0.1 (port chosen by the kernel, printed as the first line of stdout), with
STARTTLS required before anything else (certificate and key given by the test) and AUTH
(PLAIN/LOGIN) required before MAIL. Every accepted message is saved in ``--maildir`` as
``<n>.eml`` plus ``<n>.json`` (envelope sender, recipients, authenticated user, whether TLS was on),
so that the test can parse exactly what the server received.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class SaveHandler:
    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.count += 1
        (self.maildir / f"{self.count}.eml").write_bytes(envelope.original_content or envelope.content)
        (self.maildir / f"{self.count}.json").write_text(json.dumps({
            "mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
            "login": session.auth_data.decode() if session.authenticated else None,
            "tls": session.ssl is not None,
        }))
        return "250 OK saved"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--maildir", required=True, type=Path)
    args = parser.parse_args()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)

    def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == (
            args.user, args.password)
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)

    handler = SaveHandler(args.maildir)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="localhost", tls_context=context, require_starttls=True,
                         auth_required=True, auth_require_tls=True, authenticator=authenticate),
            "127.0.0.1", 0,
        )
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
