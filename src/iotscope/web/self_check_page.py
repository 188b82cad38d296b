"""The self-check page's text (ja/en): the verdict on the visitor's own address and what to do.

The facts come from :func:`iotscope.notify.check.check_address`, the same function as the
operator's ``iotscope check``; this module only words them for a device owner, in Japanese or
English, as plain HTML with no script and nothing loaded from elsewhere. Every value from the
store is escaped.
"""

from __future__ import annotations

from html import escape

from iotscope.notify.check import ADVICE, CheckResult

LANGUAGES = ("en", "ja")

_TEXT = {
    "en": {
        "title": "Is my device infected?",
        "address": "Your address",
        "seen": "Your address was seen scanning the darknet in the last {days:g} days. A device on your network "
                "is probably infected with IoT malware.",
        "attacked": "Your address answered a denial-of-service attack in the last {days:g} days.",
        "vulnerable": "A device at your address was found with a default password.",
        "clean": "Your address was not seen scanning the darknet in the last {days:g} days, and no device with a "
                 "default password was found at it.",
        "scan_row": "{first} – {last}: {packets} packets, ports {ports}, tool: {tool}",
        "found_row": "port {port}/{protocol} ({tag}), found {seen}",
        "todo": "What to do",
        "no_tool": "not recognised",
        "only_own": "This page can only check the address you are connecting from.",
    },
    "ja": {
        "title": "IoT機器の感染チェック",
        "address": "あなたのIPアドレス",
        "seen": "あなたのIPアドレスから、過去{days:g}日以内にダークネットへのスキャンが観測されました。"
                "ネットワーク内の機器がIoTマルウェアに感染している可能性があります。",
        "attacked": "あなたのIPアドレスは、過去{days:g}日以内にDoS攻撃を受けた応答が観測されました。",
        "vulnerable": "あなたのIPアドレスの機器で、初期設定のままのパスワードが見つかりました。",
        "clean": "あなたのIPアドレスからは、過去{days:g}日以内にダークネットへのスキャンは観測されておらず、"
                 "初期パスワードのままの機器も見つかっていません。",
        "scan_row": "{first} – {last}: {packets}パケット、ポート {ports}、ツール: {tool}",
        "found_row": "ポート {port}/{protocol}（{tag}）、{seen} に確認",
        "todo": "対処方法",
        "no_tool": "不明",
        "only_own": "このページでは、接続元のIPアドレスのみ確認できます。",
    },
}

_ADVICE_JA = {
    "scan": "機器を再起動してください（多くのIoTマルウェアはメモリ上にのみ存在します）。その後すぐにパスワードを変更し、"
            "ファームウェアを更新し、不要なtelnet/SSH/リモート管理を無効にしてください。",
    "backscatter": "このアドレスは送信元を偽装したDoS攻撃に応答していました。ご契約のプロバイダに調査を依頼してください。",
    "vulnerable": "初期パスワードを、所有者だけが知る長いパスワードに変更し、ファームウェアを更新してください。",
    "contact": "該当する機器が見つからない場合は、上記の日時を添えて、IPアドレスを割り当てたプロバイダ（ISP）に連絡してください。",
}
_ADVICE_KEY = {text: key for key, text in ADVICE.items()}


def language(query: str | None, accept_language: str | None) -> str:
    """``?lang=`` if it names a language, else the first of ja/en in Accept-Language by weight, else en."""
    if query in LANGUAGES:
        return query
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and weight > 0:
            ranked.append((-weight, index, primary))
    return min(ranked)[2] if ranked else "en"


def _when(moment: object) -> str:
    return escape(str(moment)[:19].replace("T", " ")) + " UTC"


def verdict(result: CheckResult) -> str:
    """``seen`` (scanning), ``vulnerable``, ``attacked`` or ``clean``: the page's machine-readable verdict."""
    if any(h.role == "scan" for h in result.darknet):
        return "seen"
    if result.vulnerable:
        return "vulnerable"
    return "attacked" if result.darknet else "clean"


def render(result: CheckResult, lang: str, days: float) -> str:
    """The whole page for ``result`` in ``lang``."""
    text = _TEXT[lang]
    found = verdict(result)
    body = [f'<p>{text["address"]}: <strong id="address">{escape(result.address)}</strong></p>']
    scans = [h for h in result.darknet if h.role == "scan"]
    if scans:
        body.append(f'<p class="bad">{text["seen"].format(days=days)}</p><ul id="scans">')
        for h in scans:
            body.append("<li>" + text["scan_row"].format(
                first=_when(h.first_seen), last=_when(h.last_seen), packets=f"{h.packets:,}",
                ports=escape(", ".join(str(p) for p in h.port_numbers[:10])),
                tool=escape(h.tool or text["no_tool"])) + "</li>")
        body.append("</ul>")
    if any(h.role == "backscatter" for h in result.darknet):
        body.append(f'<p class="bad">{text["attacked"].format(days=days)}</p>')
    if result.vulnerable:
        body.append(f'<p class="bad">{text["vulnerable"]}</p><ul id="vulnerable">')
        for r in result.vulnerable:
            body.append("<li>" + text["found_row"].format(
                port=escape(str(r["port"])), protocol=escape(str(r["protocol"])), tag=escape(str(r["tag"])),
                seen=_when(r["ts"])) + "</li>")
        body.append("</ul>")
    if found == "clean":
        body.append(f'<p class="good">{text["clean"].format(days=days)}</p>')
    advice = result.advice
    if advice:
        if lang == "ja":
            advice = [_ADVICE_JA[_ADVICE_KEY[a]] for a in advice]
        body.append(f'<h2>{text["todo"]}</h2><ol id="advice">' + "".join(f"<li>{escape(a)}</li>" for a in advice)
                    + "</ol>")
    body.append(f'<p class="muted">{text["only_own"]}</p>')
    other = "ja" if lang == "en" else "en"
    return (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{text["title"]}</title><style>body{{font:16px/1.5 system-ui,sans-serif;max-width:44em;'
            'margin:2em auto;padding:0 1em}.bad{color:#a00;font-weight:bold}.good{color:#060;font-weight:bold}'
            '.muted{color:#666;font-size:14px}</style></head>'
            f'<body><h1>{text["title"]}</h1><main id="verdict" data-verdict="{found}">' + "".join(body)
            + f'</main><p><a href="?lang={other}">{"日本語" if other == "ja" else "English"}</a></p></body></html>')
