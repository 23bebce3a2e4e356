"""Opens an `analyze --report` page in headless Chromium (chromedriver), saves a screenshot and
checks that the page's script ran without error and that the expected workload ranks first.

usage: report_browser.py REPORT.html SCREENSHOT.png EXPECTED_TOP_WORKLOAD_ID
Exit 0 when every check passes; otherwise prints why and exits 1.
"""
import os
import shutil
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def main() -> int:
    report, screenshot, expected = sys.argv[1:4]
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(arg)
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The Debian driver; never let selenium download one.
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=opts, service=service)
    problems = []
    try:
        # Record uncaught errors and CSP violations from the first script on.
        driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument",
            {
                "source": "window.__errors = [];"
                "window.addEventListener('error', e => window.__errors.push(String(e.message || e)));"
                "document.addEventListener('securitypolicyviolation', e => window.__errors.push('CSP: ' + e.violatedDirective));"
            },
        )
        driver.get("file://" + os.path.abspath(report))
        errors = driver.execute_script("return window.__errors") or []
        problems += [f"script error: {e}" for e in errors]
        severe = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        problems += [f"console: {m}" for m in severe]
        if driver.execute_script("return document.documentElement.dataset.ready") != "1":
            problems.append("the report's script did not run to its end")
        first = driver.find_element(By.CSS_SELECTOR, "#ranked tbody tr")
        shown = first.find_element(By.CSS_SELECTOR, "td[title]").get_attribute("title")
        if shown != expected:
            problems.append(f"top workload is {shown!r}, expected {expected!r}")
        # The script works: sorting by rank descending puts another workload first.
        driver.find_element(By.CSS_SELECTOR, "#ranked thead th").click()
        driver.find_element(By.CSS_SELECTOR, "#ranked thead th").click()
        last_first = driver.find_element(By.CSS_SELECTOR, "#ranked tbody tr td[title]").get_attribute("title")
        if last_first == expected:
            problems.append("sorting the ranked table by rank did not reorder it")
        driver.find_element(By.CSS_SELECTOR, "#ranked thead th").click()
        if not driver.find_elements(By.CSS_SELECTOR, "article.workload"):
            problems.append("no suspicious workload detailed")
        driver.set_window_size(1400, min(driver.execute_script("return document.body.scrollHeight"), 6000))
        driver.save_screenshot(screenshot)
        print(f"screenshot: {screenshot}; top workload: {shown}")
    finally:
        driver.quit()
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
