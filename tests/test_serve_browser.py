"""The service's page in a real browser: headless Chromium (Debian's
`chromium` and `chromium-driver`, which .ci/run installs) driven by Selenium
opens the page, uploads a PNG through the file input and reads the grid.

A missing browser or driver fails this test (it is not skipped): CI must run
it."""

import os
import shutil

import pytest
import tensorflow as tf

from dhe_tf.runs import run_dir
from dhe_tf.data import datasets

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _browser():
  try:
    from selenium import webdriver  # pylint: disable=g-import-not-at-top
  except ImportError:
    pytest.fail('selenium is missing: pip install -e ".[test]"')
  for path in (CHROMIUM, CHROMEDRIVER):
    if not (os.path.isfile(path) or shutil.which(os.path.basename(path))):
      pytest.fail(f"{path} is missing: apt-get install -y chromium "
                  "chromium-driver (.ci/run does)")
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                   "--disable-dev-shm-usage", "--window-size=1200,900"):
    options.add_argument(argument)
  # The system driver: Selenium Manager would try to download one.
  service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
  return webdriver.Chrome(options=options, service=service)


def test_the_page_shows_the_nearest_images_of_an_upload(search_service,
                                                         tmp_path):
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.support import expected_conditions  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.support.ui import WebDriverWait  # pylint: disable=g-import-not-at-top
  run = run_dir.load_run(search_service["model_dir"])
  first = run_dir.load_data(run.config).split["query"][0]
  images, _ = datasets.load_embedded_arrays()
  picture = tmp_path / "query.png"
  picture.write_bytes(tf.io.encode_png(images[first]).numpy())
  not_an_image = tmp_path / "notes.png"
  not_an_image.write_bytes(b"not an image")
  browser = _browser()
  try:
    wait = WebDriverWait(browser, 30)
    browser.get(search_service["url"] + "/")
    wait.until(lambda b: "100 codes of 12 bits" in b.find_element(
        By.ID, "info").text)
    browser.find_element(By.ID, "k").clear()
    browser.find_element(By.ID, "k").send_keys("6")
    browser.find_element(By.ID, "file").send_keys(str(picture))
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR,
                                             "#results .hit")) == 6)
    hits = browser.find_elements(By.CSS_SELECTOR, "#results .hit")
    # Id 0 is the uploaded image itself: distance 0, and the lowest id
    # among any codes tied with it.
    assert hits[0].get_attribute("data-id") == "0"
    assert hits[0].get_attribute("data-distance") == "0"
    assert "d = 0" in hits[0].text
    distances = [int(hit.get_attribute("data-distance")) for hit in hits]
    assert distances == sorted(distances)
    wait.until(lambda b: b.execute_script(
        "return [...document.querySelectorAll('#results img')].every("
        "img => img.complete && img.naturalWidth === 28)"))
    assert len(browser.find_element(By.ID, "bits").text) == 12
    assert float(browser.find_element(By.ID, "took").text) > 0
    browser.save_screenshot(str(tmp_path / "results.png"))
    # A bad file: an error in the page, no results.
    browser.find_element(By.ID, "file").send_keys(str(not_an_image))
    wait.until(expected_conditions.text_to_be_present_in_element(
        (By.ID, "error"), "Cannot search with notes.png: Not an image"))
    assert not browser.find_elements(By.CSS_SELECTOR, "#results .hit")
    browser.save_screenshot(str(tmp_path / "error.png"))
  finally:
    browser.quit()
  assert (tmp_path / "results.png").stat().st_size > 0
