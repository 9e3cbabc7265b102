"""The import page of ``importstate serve`` in a real browser: Debian's chromium, by Playwright.

Without chromium the browser tests skip, but under ``CI=true`` they fail
instead (``.ci/run`` installs it). Screenshots of each page go to
``test-artifacts/page/``.
"""

import json
import os
import shutil
from pathlib import Path

import httpx
import pytest
from http_server import Server, add_user, headers
from playwright.sync_api import sync_playwright

from importstate.loaders.samples import write_csv_export

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts" / "page"
PASSWORD = "page-test-password"  # noqa: S105 - a test account's
# Per batch of 50 users: the big import runs long enough to be cancelled from the page.
BATCH_DELAY = 0.25
PHONE = {"width": 375, "height": 812}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return tmp_path_factory.mktemp("page") / "imports.db"


@pytest.fixture(scope="module")
def import_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("import-dir")


@pytest.fixture(scope="module")
def server(db, import_dir):
    add_user(db, "admin", "run-import", "view-import-operations", password=PASSWORD)
    options = ["--import-dir", str(import_dir)]
    with Server(db, batch_delay=BATCH_DELAY, options=options) as running:
        yield running


@pytest.fixture(scope="module")
def api(server, db):
    credentials = add_user(db, "checker", "run-import", "view-import-operations")
    with httpx.Client(base_url=server.url + "/api/v1/", headers=headers(credentials),
                      timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (apt-get install chromium); CI must run"
                        " the browser tests")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(base_url=server.url, accept_downloads=True)
    context.set_default_timeout(20_000)
    opened = context.new_page()
    errors = []
    # A bound method cannot be a Playwright listener: it tags the function it is given.
    opened.on("pageerror", lambda error: errors.append(error))  # noqa: PLW0108
    yield opened
    context.close()
    assert not errors, errors


def screenshot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def log_in(page, path="/"):
    page.goto(path)
    page.get_by_label("User", exact=True).fill("admin")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.locator("#app").wait_for(state="visible")


def upload(page, path):
    page.get_by_label("Importer").select_option("csv")
    page.get_by_label("File to upload").set_input_files(path)
    page.get_by_role("button", name="Load the file").click()
    page.locator("#selection-form").wait_for(state="visible")
    page.locator("#users-list input").first.wait_for()


def wait_for_state(page, state, seconds=30):
    page.wait_for_function(
        "state => document.getElementById('state').textContent === state", arg=state,
        timeout=seconds * 1000,
    )


def highlighted(page, state):
    """The states whose nodes the diagram fills with a colour, once it says it shows ``state``."""
    page.wait_for_function(
        "state => document.querySelector('#diagram svg')?.dataset.highlighted === state",
        arg=state,
    )
    return page.evaluate("""() => {
        const nodes = document.querySelectorAll('#diagram svg g.node');
        return Array.from(nodes)
            .filter(node => node.querySelector('[fill]').getAttribute('fill') !== 'white')
            .map(node => node.querySelector('title').textContent);
    }""")


def test_the_page_is_served_without_credentials_and_runs_no_foreign_code(server):
    for path in ("/", "/import"):
        answer = httpx.get(server.url + path)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        assert '<script src="/page/page.js"' in answer.text
    assert httpx.get(server.url + "/page/page.js").status_code == 200
    assert httpx.get(server.url + "/page/page.css").status_code == 200
    # The page is public; the API behind it is not.
    assert httpx.get(server.url + "/api/v1/import.status").status_code == 401


def test_the_page_shows_nothing_but_the_login_until_logged_in(page):
    page.goto("/import")
    assert page.locator("#login").is_visible()
    assert not page.locator("#app").is_visible()
    page.get_by_label("User", exact=True).fill("admin")
    page.get_by_label("Password", exact=True).fill("wrong")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("alert").get_by_text("Wrong user or password.").wait_for()
    assert not page.locator("#app").is_visible()
    log_in(page, "/import")
    assert "authToken" not in page.url
    assert page.evaluate("sessionStorage.getItem('importstate.authToken')")
    page.get_by_role("button", name="Log out").click()
    page.locator("#login").wait_for(state="visible")
    assert page.evaluate("sessionStorage.getItem('importstate.authToken')") is None


def test_a_csv_zip_is_uploaded_chosen_from_imported_and_shown_done(page, api, tmp_path):
    export = tmp_path / "export.zip"
    write_csv_export(export, users=6, channels=3, messages=40)
    log_in(page)
    upload(page, export)
    assert page.locator("#users-total").text_content() == "6"
    assert page.locator("#channels-total").text_content() == "4"  # and the direct messages
    page.get_by_label("Select all users").uncheck()
    assert page.locator("#users-chosen").text_content() == "0"
    assert page.locator("#users-list input:checked").count() == 0
    page.get_by_label("Select all users").check()
    assert page.locator("#users-list input:checked").count() == 6
    page.get_by_label("user3 (user3@example.com)").uncheck()
    assert page.locator("#users-chosen").text_content() == "5"
    assert not page.locator("#users-all").is_checked()
    screenshot(page, "selection")
    page.get_by_role("button", name="Start the import").click()
    wait_for_state(page, "done")

    status = api.get("import.status").json()
    assert status["state"] == "done"
    count = status["operation"]["count"]
    assert count["users"] == 5
    shown = page.locator("#counts").text_content()
    assert shown == (f"{count['completed']} imported, {count.get('error', 0)} failed,"
                     f" {count['total']} in all")
    assert page.locator("#figures-users").text_content() == "5 of 5"
    assert page.locator("#bar-users").get_attribute("max") == "5"
    assert page.locator("#step").text_content() == status["operation"]["status"]
    assert highlighted(page, "done") == ["done"]
    assert page.locator("#diagram svg").get_attribute("aria-label").endswith("is done.")
    latest = page.locator("#latest-table tbody tr").first
    assert status["operation"]["_id"] in latest.text_content()

    # The unticked user's messages fail, and the page lists them as the API does.
    failures = api.get("importstate.failures").json()["failures"]
    assert len(failures) == count["error"] > 0
    rows = page.locator("#failures-table tbody tr")
    rows.nth(len(failures) - 1).wait_for()
    assert rows.count() == len(failures)
    assert "user3" in rows.first.locator("td").nth(2).text_content()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download as JSON Lines").click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert [json.loads(line) for line in lines] == failures
    screenshot(page, "done")


def test_a_file_given_by_url_is_fetched_by_the_server_and_imported_whole(page, api, import_dir):
    export = import_dir / "by-url.zip"
    write_csv_export(export, users=4, channels=1, messages=8)
    log_in(page)
    page.get_by_label("Importer").select_option("csv")
    page.get_by_label("or the URL of a file the server fetches").fill(export.as_uri())
    page.get_by_role("button", name="Load the file").click()
    page.locator("#users-list input").first.wait_for()
    assert page.locator("#users-chosen").text_content() == "4"
    page.get_by_role("button", name="Start the import").click()
    wait_for_state(page, "done")
    status = api.get("import.status").json()
    assert status["operation"]["file"] == "by-url.zip"
    assert status["operation"]["count"]["completed"] == status["operation"]["count"]["total"]
    assert page.locator("#failures-none").text_content() == "None."


def test_a_running_import_is_cancelled_from_the_page(page, api, tmp_path):
    export = tmp_path / "big.zip"
    write_csv_export(export, users=2000, channels=2, messages=10)
    log_in(page)
    upload(page, export)
    page.get_by_role("button", name="Start the import").click()
    wait_for_state(page, "importing")
    page.wait_for_function("() => document.getElementById('rate').textContent.endsWith('/s')")
    assert highlighted(page, "importing") == ["importing"]
    screenshot(page, "importing")
    # A reload keeps the tab logged in and picks the running import up where it is.
    page.reload()
    page.locator("#app").wait_for(state="visible")
    wait_for_state(page, "importing")
    page.get_by_role("button", name="Cancel the import").click()
    wait_for_state(page, "canceled")
    status = api.get("import.status").json()
    assert status["state"] == "canceled"
    assert status["operation"]["count"].get("completed", 0) < 2000
    assert highlighted(page, "canceled") == ["canceled"]
    assert page.get_by_role("button", name="Cancel the import").is_disabled()
    screenshot(page, "canceled")


def test_failed_users_are_listed_with_their_passwords_masked(page, api):
    api.post("import.new").raise_for_status()
    users = [
        {"username": "ann", "emails": ["ann@example.com"], "importIds": ["1"],
         "password": "ann-secret-1"},
        {"username": "ANN", "emails": ["ann2@example.com"], "importIds": ["2"],
         "password": "ann-secret-2"},
    ]
    api.post("import.addUsers", json={"users": users}).raise_for_status()
    api.post("import.run").raise_for_status()
    log_in(page)
    wait_for_state(page, "done")
    table = page.locator("#failures-table")
    table.wait_for()
    assert table.locator("tbody tr").count() == 1
    shown = table.text_content()
    assert "[password]" in shown
    assert "ann-secret" not in shown
    assert "ann-secret" not in json.dumps(api.get("importstate.failures").json())


def test_the_page_passes_axe_and_works_from_the_keyboard_on_a_phone(browser, server, tmp_path):
    context = browser.new_context(base_url=server.url, viewport=PHONE)
    page = context.new_page()
    try:
        page.goto("/")
        assert violations(page) == []
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "login-user"
        page.keyboard.type("admin")
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        page.locator("#app").wait_for(state="visible")
        # The focused control is outlined, so a keyboard user sees where they are.
        page.get_by_role("button", name="Log out").focus()
        page.keyboard.press("Tab")
        page.keyboard.press("Shift+Tab")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert page.evaluate("document.activeElement.id") == "logout"
        assert outline == "solid"
        export = tmp_path / "export.zip"
        write_csv_export(export, users=3, channels=1, messages=5)
        upload(page, export)
        assert violations(page) == []
        # Nothing is wider than the screen, but inside the regions that scroll on their own.
        wide = page.evaluate("""() => Array.from(document.querySelectorAll('body *'))
            .filter(e => !e.parentElement.closest('[role=region]'))
            .filter(e => e.getBoundingClientRect().right > window.innerWidth)
            .map(e => e.id || e.tagName)""")
        assert wide == []
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(page, "phone")
    finally:
        context.close()


def violations(page):
    """What axe-core finds against WCAG 2.1 AA in the page as it is: ``[(rule, [target])]``."""
    # Evaluated, not added as a script tag: the page's policy runs no script but its own.
    if not page.evaluate("() => 'axe' in window"):
        page.evaluate(AXE.read_text() + "\n;undefined")
    found = page.evaluate("""async () => {
        const result = await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21aa']});
        return result.violations.map(v => [v.id, v.nodes.map(n => n.target.join(' '))]);
    }""")
    return [tuple(violation) for violation in found]
