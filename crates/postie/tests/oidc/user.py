"""The person at the browser, for postie fetch's sign-in tests: opens URL, then submits each
page's form the way a person would (the device code typed in, any login and password on
oidc-provider's development login page, Continue on the consent and confirmation pages),
following redirects, until a page has no form left. That last page may be postie's own
loopback listener, reached by the final redirect. Prints the last URL and page.

    python3 user.py CA_FILE URL [USER_CODE]
"""

import html.parser
import http.cookiejar
import ssl
import sys
import urllib.parse
import urllib.request

# More forms than any sign-in shows (code, confirm, login, consent): a loop is a failure.
MAX_PAGES = 10


class FirstForm(html.parser.HTMLParser):
    """The first POST form of a page: its action and the inputs inside it."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.fields = {}
        self.inside = False
        self.done = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if self.done:
            return
        if tag == "form" and attrs.get("method", "").lower() == "post":
            self.action = attrs.get("action")
            self.inside = True
        elif tag == "input" and self.inside and "name" in attrs:
            self.fields[attrs["name"]] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form" and self.inside:
            self.inside = False
            self.done = True


def main():
    ca_file, url = sys.argv[1], sys.argv[2]
    typed = {"login": "alice", "password": "any"}
    if len(sys.argv) > 3:
        typed["user_code"] = sys.argv[3]
    context = ssl.create_default_context(cafile=ca_file)
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
        urllib.request.HTTPSHandler(context=context),
    )
    response = opener.open(url)
    for _ in range(MAX_PAGES):
        page = response.read().decode("utf-8", "replace")
        form = FirstForm()
        form.feed(page)
        if form.action is None:
            print(response.geturl())
            print(page)
            return
        fields = form.fields
        for name, value in typed.items():
            if name in fields and not fields[name]:
                fields[name] = value
        target = urllib.parse.urljoin(response.geturl(), form.action)
        data = urllib.parse.urlencode(fields).encode()
        response = opener.open(target, data=data)
    sys.exit(f"still a form after {MAX_PAGES} pages: {response.geturl()}")


main()
