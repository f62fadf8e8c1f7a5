"""The web console (/console) in headless Chromium: without the key it says so; with it, it lists
the collections with their counts and schema, runs a text search with explain and shows each hit's
score components, opens a document, runs a vector search, and charts reports (recall against QPS,
per stage). Run by scripts/test_console.sh, which starts the server (QUARRY_URL, QUARRY_KEY)."""

import os

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

URL = os.environ["QUARRY_URL"]
KEY = os.environ["QUARRY_KEY"]
SHOTS = os.environ.get("CONSOLE_ARTIFACTS", "artifacts/console")


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        opts.add_argument(a)
    opts.binary_location = "/usr/bin/chromium"
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    d.implicitly_wait(0)
    yield d
    d.quit()


def wait(d, cond, secs=10):
    return WebDriverWait(d, secs).until(cond)


def shot(d, name):
    os.makedirs(SHOTS, exist_ok=True)
    d.save_screenshot(os.path.join(SHOTS, f"{name}.png"))


def test_console_lists_searches_explains_and_charts(browser):
    d = browser
    d.get(URL + "/console")  # redirects to /console/
    # Without the key, the API refuses and the page says why.
    wait(d, lambda d: "401" in d.find_element(By.ID, "status").text)
    assert d.find_elements(By.CSS_SELECTOR, "#collection-table tbody tr") == []

    d.find_element(By.ID, "api-key").send_keys(KEY)
    d.find_element(By.ID, "key-save").click()
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#collection-table tbody tr")) == 2)
    rows = {r.get_attribute("data-name"): r.text for r in d.find_elements(By.CSS_SELECTOR, "#collection-table tbody tr")}
    assert "text (BM25 only)" in rows["kb"] and rows["kb"].split()[1] == "3", rows
    assert "3-d l2" in rows["vec"] and rows["vec"].split()[1] == "3", rows
    d.find_element(By.CSS_SELECTOR, "#collection-table tr[data-name='kb']").click()
    schema = wait(d, EC.visibility_of_element_located((By.ID, "schema"))).text
    assert '"chunking"' in schema and '"max_tokens": 256' in schema
    shot(d, "1-collections")

    # A text search with explain: ranked hits, each with its score components.
    d.find_element(By.ID, "tab-search").click()
    Select(d.find_element(By.ID, "search-collection")).select_by_value("kb")
    q = d.find_element(By.ID, "search-query")
    q.clear()
    q.send_keys("granite buildings")
    d.find_element(By.ID, "search-run").click()
    wait(d, lambda d: "hits in" in d.find_element(By.ID, "search-info").text)
    hits = d.find_elements(By.CSS_SELECTOR, "#results tbody tr.hit")
    assert hits and "Granite is an igneous rock" in hits[0].text
    hits[0].find_element(By.CSS_SELECTOR, "details summary").click()
    explain = hits[0].find_element(By.CSS_SELECTOR, "ul.explain").text
    assert "bm25 (query 0): rank 1" in explain and "granit=" in explain, explain
    shot(d, "2-search-explain")

    # The hit's document.
    hits[0].find_element(By.CSS_SELECTOR, "a.doc-link").click()
    doc = wait(d, EC.visibility_of_element_located((By.ID, "document-body"))).text
    assert '"source"' in doc and "granite.md" in doc and '"headings"' in doc
    shot(d, "3-document")

    # A vector search: the query [0, 1, 0] is nearest the y axis.
    Select(d.find_element(By.ID, "search-collection")).select_by_value("vec")
    q = d.find_element(By.ID, "search-query")
    q.clear()
    q.send_keys("[0, 1, 0]")
    d.find_element(By.ID, "search-run").click()
    wait(d, lambda d: "y axis" in (d.find_elements(By.CSS_SELECTOR, "#results tbody tr.hit") or [None])[0].text
         if d.find_elements(By.CSS_SELECTOR, "#results tbody tr.hit") else False)
    first = d.find_elements(By.CSS_SELECTOR, "#results tbody tr.hit")[0].text.split()
    assert first[:2] == ["1", "2"], first

    # A bad filter is the user's error, shown.
    f = d.find_element(By.ID, "search-filter")
    f.send_keys("{not json")
    d.find_element(By.ID, "search-run").click()
    wait(d, lambda d: "filter" in d.find_element(By.ID, "status").text)
    f.clear()

    # Reports: recall-QPS points and per-stage bars.
    d.find_element(By.ID, "tab-reports").click()
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#report-select option")) == 2)
    Select(d.find_element(By.ID, "report-select")).select_by_value("hnsw-wndict-384.jsonl")
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#report-scatter svg circle.point")) >= 2)
    assert "rows" in d.find_element(By.ID, "report-info").text
    shot(d, "4-report-recall-qps")
    Select(d.find_element(By.ID, "report-select")).select_by_value("beir-scifact.jsonl")
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#report-bars svg rect.bar")) >= 1)
    labels = " ".join(t.text for t in d.find_elements(By.CSS_SELECTOR, "#report-bars svg text"))
    assert "ndcg" in labels.lower(), labels
    shot(d, "5-report-stages")
