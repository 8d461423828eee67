#!/usr/bin/env python3
"""Drives Waybill's operator console (`waybill ui`) in headless Chromium through selenium.

Run by the Swift test ConsoleBrowserTests, which starts a worker pool with sagas in every state and the console,
then passes what it expects:

    console_check.py --url http://127.0.0.1:PORT --token TOKEN --screenshots DIR --expect JSON

`--expect` names the sagas: {"workflow": W, "completed": ID, "compensated": ID, "compensating": ID,
"running": ID, "suspended": ID, "cancel": ID, "code": FAILURE_CODE, "deadLetterReason": TEXT}.

Every page is opened in the browser and its content checked; one repair (cancel) is done after signing in with the
token, and one is tried without signing in, which the console must refuse. Screenshots of every page go to DIR.
Prints "console check passed" and exits 0, or names the first check that failed and exits 1.
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait


class CheckFailed(Exception):
    pass


def check(condition, what):
    if not condition:
        raise CheckFailed(what)
    print(f"ok: {what}", flush=True)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("WAYBILL_TEST_CHROMIUM", "/usr/bin/chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1400"):
        options.add_argument(argument)
    service = Service(executable_path=os.environ.get("WAYBILL_TEST_CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(options=options, service=service)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--screenshots", required=True)
    parser.add_argument("--expect", required=True)
    arguments = parser.parse_args()
    expect = json.loads(arguments.expect)
    base = arguments.url.rstrip("/")
    os.makedirs(arguments.screenshots, exist_ok=True)
    workflow = expect["workflow"]

    def saga_path(saga_id):
        return f"/sagas/{urllib.parse.quote(workflow, safe='')}/{urllib.parse.quote(saga_id, safe='')}"

    driver = browser()
    wait = WebDriverWait(driver, 30)

    def open_page(path):
        driver.get(base + path)
        wait.until(expected_conditions.presence_of_element_located((By.TAG_NAME, "main")))

    def text(selector):
        return driver.find_element(By.CSS_SELECTOR, selector).text

    def shot(name):
        path = os.path.join(arguments.screenshots, name + ".png")
        driver.save_screenshot(path)
        print(f"screenshot: {path}", flush=True)

    try:
        # Overview: counts by state, the active sagas by workflow, throughput, workers.
        open_page("/")
        counts = {
            card.get_attribute("id").removeprefix("count-"): int(card.find_element(By.TAG_NAME, "b").text)
            for card in driver.find_elements(By.CSS_SELECTOR, "#status-counts .card")
        }
        check(
            counts.get("completed", 0) >= 1 and counts.get("compensated", 0) >= 1
            and counts.get("running", 0) >= 1 and counts.get("compensating", 0) >= 1
            and counts.get("suspended", 0) >= 2,
            f"overview counts every state: {counts}",
        )
        check(workflow in text("#active-by-workflow"), "overview lists the workflow's active sagas")
        check(driver.find_elements(By.ID, "throughput-chart"), "overview draws the throughput chart")
        check("running" in text("#workers"), "overview lists the running worker")
        check(text("#access") == "Sign in to repair", "a visitor is not signed in")
        shot("overview")

        # Stuck board, grouped by failure code.
        open_page("/stuck")
        groups = {section.get_attribute("data-key"): section.text for section in
                  driver.find_elements(By.CSS_SELECTOR, "section.group")}
        check(expect["code"] in groups, f"the stuck board has a group for {expect['code']}: {list(groups)}")
        check(
            expect["suspended"] in groups[expect["code"]] and expect["cancel"] in groups[expect["code"]],
            "the failure code's group lists both suspended sagas",
        )
        shot("stuck")

        # Search by order id lands on the saga page: the completed saga's timeline.
        box = driver.find_element(By.NAME, "q")
        box.send_keys(expect["completed"])
        box.submit()
        wait.until(expected_conditions.presence_of_element_located((By.ID, "saga-title")))
        check(expect["completed"] in text("#saga-title") and "completed" in text("#saga-title"),
              "search by order id opens the completed saga")
        timeline = text("#timeline")
        for step in ("accept", "reserve", "ship", "invoice"):
            check(step in timeline, f"the timeline shows step {step}")
        check("succeeded" in timeline and "took" in timeline, "the timeline shows outcomes and durations")
        check(expect["completed"] in text("#input"), "the saga page shows the input")
        check("order.accepted" in text("#journal") or "start" in text("#journal"), "the saga page shows the journal")
        shot("saga-completed")

        # The compensated saga: forward failure, then the compensation.
        open_page(saga_path(expect["compensated"]))
        check("compensated" in text("#saga-title"), "the compensated saga's page")
        check("undone" in text("#timeline"), "the timeline shows the undone step")
        check(expect["code_compensated"] in text("#failure-code"), "the saga page names the failure code")
        check("undone" in text("#compensation"), "the compensation section")
        shot("saga-compensated")

        open_page(saga_path(expect["compensating"]))
        check("compensating" in text("#saga-title"), "the compensating saga's page")
        check("undo command" in text("#timeline"), "the compensating saga waits for its undo command")
        shot("saga-compensating")

        open_page(saga_path(expect["running"]))
        check("running" in text("#saga-title") and "waiting for reply" in text("#timeline"),
              "the running saga waits for a reply")
        shot("saga-running")

        open_page(saga_path(expect["suspended"]))
        check("suspended" in text("#saga-title"), "the suspended saga's page")
        check("read-only" not in text("#repairs") and "Sign in" in text("#repairs"),
              "a visitor is offered sign-in, not repairs")
        shot("saga-suspended")

        open_page("/sagas?status=suspended")
        listed = text("#sagas")
        check(expect["suspended"] in listed and expect["cancel"] in listed, "the list filters by status")
        shot("sagas-suspended")

        open_page("/dead-letters")
        check(expect["deadLetterReason"] in text("#dead-letters"), "the dead letters show the refused start's reason")
        shot("dead-letters")

        # A repair without signing in is refused: a form posted from the console's own page, without the session.
        open_page(saga_path(expect["suspended"]))
        driver.execute_script(
            """
            const form = document.createElement('form');
            form.method = 'post';
            form.action = arguments[0];
            for (const [name, value] of [['action', 'cancel'], ['reason', 'not signed in']]) {
                const input = document.createElement('input');
                input.name = name; input.value = value; form.appendChild(input);
            }
            document.body.appendChild(form);
            form.submit();
            """,
            saga_path(expect["suspended"]) + "/repair",
        )
        wait.until(expected_conditions.presence_of_element_located((By.ID, "message")))
        check("Sign in with the operator token" in text("#message"), "a repair without signing in is refused")
        shot("repair-refused")
        request = urllib.request.Request(
            base + saga_path(expect["suspended"]) + "/repair", data=b"action=cancel&reason=anonymous", method="POST")
        try:
            urllib.request.urlopen(request)
            raise CheckFailed("an anonymous POST was not refused")
        except urllib.error.HTTPError as error:
            check(error.code == 403, f"an anonymous repair POST gets 403 (got {error.code})")

        # Sign in: a wrong token first, then the right one.
        open_page("/login")
        driver.find_element(By.NAME, "actor").send_keys("ui-tester")
        driver.find_element(By.NAME, "token").send_keys("not-the-token-at-all")
        driver.find_element(By.CSS_SELECTOR, "#login button").click()
        wait.until(expected_conditions.presence_of_element_located((By.ID, "login-error")))
        check("not the operator token" in text("#login-error"), "a wrong token is refused")
        driver.find_element(By.NAME, "actor").send_keys("ui-tester")
        driver.find_element(By.NAME, "token").send_keys(arguments.token)
        driver.find_element(By.CSS_SELECTOR, "#login button").click()
        wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "access"), "ui-tester"))
        check("signed in as ui-tester" in text("#access"), "signed in with the token")

        # One repair: cancel a suspended saga, with a reason.
        open_page(saga_path(expect["cancel"]))
        form = driver.find_element(By.ID, "repair-cancel")
        form.find_element(By.NAME, "reason").send_keys("customer called to cancel, ticket UI-7")
        shot("repair-form")
        form.find_element(By.TAG_NAME, "button").click()
        wait.until(expected_conditions.presence_of_element_located((By.ID, "flash")))
        check("cancel by ui-tester: applied" in text("#flash"), f"the cancel was applied: {text('#flash')}")
        check("cancelled" in text("#saga-title"), "the page shows the saga after the repair: cancelled")
        check("ui-tester" in text("#journal") and "ticket UI-7" in text("#journal"),
              "the journal records the actor and the reason")
        shot("repair-applied")
    except CheckFailed as failure:
        try:
            shot("failed")
        except Exception:  # noqa: BLE001 - the failure matters more than its screenshot
            pass
        print(f"FAILED: {failure}", flush=True)
        print(f"page {driver.current_url}:\n{driver.find_element(By.TAG_NAME, 'body').text[:3000]}", flush=True)
        driver.quit()
        return 1
    driver.quit()
    print("console check passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
