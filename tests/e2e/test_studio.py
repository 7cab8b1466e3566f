"""The studio in a real browser (Debian's headless Chromium) against the real local stack.

A user's whole path: sign in with an API key, upload a recording through the signed URL, watch the job live over
server-sent events until COMPLETED, then use the result: one lane per speaker, a segment click seeks the player
and moves the playhead, the job shows as COMPLETED in "Your jobs". The result page is saved to .stack/studio.png
(to docs/studio.png, the README's, with SPEAKERLINE_UPDATE_SCREENSHOT=1: a test run leaves tracked files alone).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import JavascriptException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "sample" / "conversation.flac"
SPEAKERS = 3  # the sample's reference RTTM has three speakers
SCREENSHOT = REPO / ("docs" if os.environ.get("SPEAKERLINE_UPDATE_SCREENSHOT") == "1" else ".stack") / "studio.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TERMINAL = ("COMPLETED", "REJECTED", "FAILED", "DELETED")
DIARIZATION_TIMEOUT_S = 600  # CPU diarization on two shared cores

T = TypeVar("T")


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        # A failure, not a skip: `make test` installs them (`make browsers`), so a missing browser is a broken set-up.
        pytest.fail("needs Debian's chromium and chromium-driver: run `make browsers` (apt-get, as root)")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
    ):
        options.add_argument(arg)
    # An explicit driver path: Selenium Manager never runs (nothing is downloaded).
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_window_size(1280, 900)
    try:
        yield driver
    finally:
        driver.quit()


def _until(driver: WebDriver, timeout_s: float, what: str, condition: Callable[[WebDriver], T | None]) -> T:
    """condition's first truthy answer within timeout_s, else a TimeoutException naming `what`."""
    wait = WebDriverWait(driver, timeout_s, poll_frequency=0.25, ignored_exceptions=(JavascriptException,))
    result = wait.until(condition, message=f"timed out waiting for {what}")
    assert result is not None  # until() only returns a truthy answer
    return result


def _seconds(element: WebElement, attribute: str) -> float:
    """A segment's data-start / data-end, in seconds."""
    value = element.get_attribute(attribute)
    assert value is not None, f"no {attribute} on {element.get_attribute('outerHTML')}"
    return float(value)


def _js(driver: WebDriver, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def _sign_in(driver: WebDriver, key: str) -> None:
    field = _until(driver, 15, "the sign-in form", lambda d: _visible(d, "api-key"))
    field.clear()
    field.send_keys(key)
    driver.find_element(By.ID, "sign-in").click()


def _visible(driver: WebDriver, element_id: str) -> WebElement | None:
    found = driver.find_elements(By.ID, element_id)
    return found[0] if found and found[0].is_displayed() else None


def _job_status(driver: WebDriver) -> str | None:
    status: str | None = _js(driver, "return document.getElementById('job-panel').dataset.status || null")
    return status


@pytest.mark.timeout(DIARIZATION_TIMEOUT_S + 300)
def test_studio_upload_watch_and_play(api: Any, browser: WebDriver) -> None:
    driver = browser
    driver.get(api.url + "/")

    # A wrong key: the API's problem detail is shown in the alert, the user stays signed out.
    _sign_in(driver, "slk_notakey_0000")
    alert = _until(driver, 15, "the error alert", lambda d: _visible(d, "error"))
    assert alert.get_attribute("role") == "alert"
    assert alert.find_element(By.ID, "error-text").text.strip()
    assert not driver.find_element(By.ID, "app").is_displayed()

    _sign_in(driver, api.key)
    _until(driver, 15, "signed in", lambda d: "Signed in as studio-test" in d.find_element(By.ID, "signed-in-as").text)
    assert not driver.find_element(By.ID, "error").is_displayed()
    assert _js(driver, "return sessionStorage.getItem('speakerline.apiKey')") == api.key

    # Upload: the file input (the drop zone's input), speaker count left empty.
    driver.find_element(By.ID, "file").send_keys(str(SAMPLE))
    assert driver.find_element(By.ID, "num-speakers").get_attribute("value") == ""
    upload = driver.find_element(By.ID, "upload-button")
    _until(driver, 5, "the upload button enabled", lambda _: upload.is_enabled())
    upload.click()

    # The live view: the upload reaches 100 %, the job's steps advance until a terminal state.
    _until(driver, 60, "the job view", lambda d: _visible(d, "job-panel"))
    _until(
        driver,
        120,
        "the upload at 100 %",
        lambda d: d.find_element(By.ID, "upload-percent").text == "100 %" or _visible(d, "error"),
    )
    assert not driver.find_element(By.ID, "error").is_displayed(), driver.find_element(By.ID, "error-text").text
    seen: set[str] = set()

    def terminal(d: WebDriver) -> str | None:
        status = _job_status(d)
        if status:
            seen.add(status)
        return status if status in TERMINAL else None

    status = _until(driver, DIARIZATION_TIMEOUT_S, "a terminal job state", terminal)
    if status != "COMPLETED":
        message = driver.find_element(By.ID, "job-error").text
        pytest.fail(f"the job ended {status}: {message}")
    assert seen - {"PENDING", "COMPLETED"}, f"no intermediate state was shown live: {seen}"
    job_id = driver.find_element(By.ID, "job-id").text
    assert job_id

    # The result: one lane per speaker, each with segments.
    _until(
        driver,
        60,
        "the timeline",
        lambda d: _visible(d, "result") and len(d.find_elements(By.CSS_SELECTOR, "#timeline .lane .segment")) > 0,
    )
    lanes = driver.find_elements(By.CSS_SELECTOR, ".lane")
    assert len(lanes) == SPEAKERS, [lane.get_attribute("data-speaker") for lane in lanes]
    for lane in lanes:
        assert lane.find_elements(By.CSS_SELECTOR, ".segment"), f"lane {lane.get_attribute('data-speaker')} is empty"
    rows = driver.find_elements(By.CSS_SELECTOR, "#speakers tbody tr")
    assert len(rows) == SPEAKERS

    # A click on a segment after 5 s seeks the player there, and the playhead follows.
    later = [s for s in driver.find_elements(By.CSS_SELECTOR, ".segment") if _seconds(s, "data-start") > 5]
    assert later, "no segment starts after 5 s"
    segment = max(later, key=lambda s: _seconds(s, "data-end") - _seconds(s, "data-start"))
    start = _seconds(segment, "data-start")
    playhead = driver.find_element(By.ID, "playhead")
    before = playhead.value_of_css_property("left")
    before_style = _js(driver, "return document.getElementById('playhead').style.left")
    _js(driver, "arguments[0].scrollIntoView({block: 'center'})", segment)
    segment.click()
    _until(
        driver,
        10,
        f"the player at {start} s",
        lambda d: abs(float(_js(d, "return document.getElementById('player').currentTime")) - start) < 0.5,
    )
    assert _js(driver, "return document.getElementById('playhead').style.left") != before_style
    assert playhead.value_of_css_property("left") != before

    # "Your jobs" lists the job as COMPLETED.
    _until(
        driver,
        30,
        "the job COMPLETED in the list",
        lambda d: d.find_elements(By.CSS_SELECTOR, f'#jobs li[data-job-id="{job_id}"][data-status="COMPLETED"]'),
    )
    assert not driver.find_element(By.ID, "error").is_displayed(), driver.find_element(By.ID, "error-text").text

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    _js(driver, "document.getElementById('job-panel').scrollIntoView({block: 'start'})")
    _js(driver, "document.activeElement && document.activeElement.blur()")
    assert driver.save_screenshot(str(SCREENSHOT))

    # Sign out forgets the key; another producer does not see the job.
    driver.find_element(By.ID, "sign-out").click()
    _until(driver, 10, "the sign-in form", lambda d: _visible(d, "api-key"))
    assert _js(driver, "return sessionStorage.getItem('speakerline.apiKey')") is None
    _sign_in(driver, api.other_key)
    _until(
        driver,
        15,
        "signed in as the other producer",
        lambda d: (
            d.find_element(By.ID, "signed-in-as").text.startswith("Signed in as ")
            and "studio-test" not in d.find_element(By.ID, "signed-in-as").text
        ),
    )
    _until(
        driver,
        15,
        "the other producer's job list",
        lambda d: d.find_element(By.ID, "jobs").get_attribute("aria-busy") is None,
    )
    assert not driver.find_elements(By.CSS_SELECTOR, f'#jobs li[data-job-id="{job_id}"]')
