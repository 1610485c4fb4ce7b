"""The page in headless Chromium (run by scripts/browser-check.sh with a server already up).

argv: page URL, the server's API key, a scratch folder, and a file to save the desktop screenshot to ("" for none).
Every step prints one line; the first failed check raises and the script exits non-zero.
"""
import json
import os
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

URL, KEY, WORK, SHOT = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PHOTO = os.path.join(ROOT, "Tests/Fixtures/images/photo_512x384.jpg")
GARMENT = os.path.join(ROOT, "Tests/Fixtures/fmnist/test00000-ankle-boot.png")
PRETRAINED, CLASSIFIER = "bootmae-vit-tiny-fmnist", "bootmae-vit-tiny-fmnist-cls"
PHOTO_MODEL = "bootmae-vit-photo-64"
CORRUPT = os.path.join(ROOT, "Tests/Fixtures/images/corrupt.png")
TOK7, TOK16 = "peco-tokenizer-fixture-7", "peco-tokenizer-fixture-16"  # written by browser-check.sh
started = time.time()


def step(text):
    print(f"browser-check: {time.time() - started:5.1f} s  {text}", flush=True)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1500",
            "--hide-scrollbars", "--force-color-profile=srgb", "--disable-extensions"):
    options.add_argument(arg)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
driver.set_page_load_timeout(30)
wait = WebDriverWait(driver, 30, poll_frequency=0.1)


def by_id(i):
    return driver.find_element(By.ID, i)


def text_of(i):
    return by_id(i).get_attribute("textContent")


def card_done(card):
    wait.until(lambda d: by_id(card).get_attribute("data-state") in ("done", "error"))
    check(by_id(card).get_attribute("data-state") == "done", f"{card}: the call failed: {text_of('error')}")


def run_copied(name):
    """Click the card's "Copy as curl", run the copied command in a shell, return its JSON answer."""
    driver.execute_script("document.getElementById('copied').textContent = ''")
    driver.find_element(By.CSS_SELECTOR, f"button.copy[data-call={name}]").click()
    wait.until(lambda d: text_of("copied").startswith("Copied"))
    command = driver.execute_script(f"return state.curls.{name}")
    answer = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30,
                            env={**os.environ, "BOOTMAE_API_KEY": KEY})
    try:
        return command, json.loads(answer.stdout)
    except ValueError:
        raise AssertionError(f"the copied curl command answers {answer.stdout[:200]!r} {answer.stderr[:200]!r}")


def check_code_grid(model, grid, size):
    """The Tokens card of `model` against the API's own answer (the copied curl command): every cell
    shows its patch's code, the decoded image is the answer's PNG and has loaded, the facts say the numbers."""
    card_done("tok-card")
    command, answer = run_copied("tok")
    check("/v1/tokens?decode=true" in command and answer.get("model") == model, f"curl: {command[:200]}")
    check(answer["grid"] == grid and answer["codebook_size"] == 64, {k: v for k, v in answer.items() if k != "data"})
    item = answer["data"][0]
    cells = driver.find_elements(By.CSS_SELECTOR, "#tok-grid button")
    check(len(cells) == grid * grid, f"{len(cells)} cells for a {grid}×{grid} grid")
    shown = [int(c.get_attribute("textContent")) for c in cells]
    check(shown == item["codes"], f"the grid shows {shown[:12]}…, the answer has {item['codes'][:12]}…")
    check([int(c.get_attribute("data-code")) for c in cells] == item["codes"], "cells' data-code")
    check([int(x) for x in text_of("tok-text").split()] == item["codes"], "'Codes as text' holds the same codes")
    decoded = driver.execute_script("const i = document.getElementById('t-decoded');"
                                    "return [i.complete, i.naturalWidth, i.naturalHeight, i.src]")
    check(decoded[0] and decoded[1] == size and decoded[2] == size, f"decoded image loaded at {decoded[1]}×{decoded[2]}")
    check(decoded[3] == "data:image/png;base64," + item["decoded"], "the decoded panel is the answer's PNG")
    original = driver.execute_script("const i = document.getElementById('t-original'); return [i.complete, i.naturalWidth]")
    check(original == [True, size], f"model-input panel {original}")
    facts = text_of("tok-facts")
    check(f"{grid} × {grid} = {grid * grid} codes" in facts and "64 codes; this image uses " + str(len(set(item["codes"]))) in facts
          and f"PSNR {item['psnr']:.2f} dB" in facts, facts)
    counts = {c: item["codes"].count(c) for c in set(item["codes"])}
    top = max(counts.items(), key=lambda kv: (kv[1], -kv[0]))
    legend = driver.find_elements(By.CSS_SELECTOR, "#tok-legend button")
    check(legend and legend[0].get_attribute("textContent") == f"{top[0]} ×{top[1]}", f"legend starts {legend[0].get_attribute('textContent')!r}, expected code {top}")
    check(text_of("tok-warnings") == "".join(f"{w['code']}: {w['message']}" for w in item["warnings"]), text_of("tok-warnings"))
    return item, facts


def screenshot_variance(png):
    """Luminance variance of a screenshot (0-255 units), computed by drawing it on a canvas in the page."""
    import base64
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const img = new Image();
        img.onload = () => {
          const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
          const g = c.getContext('2d'); g.drawImage(img, 0, 0);
          const px = g.getImageData(0, 0, c.width, c.height).data;
          let n = 0, s = 0, s2 = 0;
          for (let i = 0; i < px.length; i += 4) { const y = 0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]; n++; s += y; s2 += y * y; }
          const m = s / n; done(s2 / n - m * m);
        };
        img.onerror = () => done(-1);
        img.src = 'data:image/png;base64,' + arguments[0];
    """, base64.b64encode(png).decode())


try:
    driver.get(URL)
    check(driver.title == "bootmae-serve", f"title {driver.title!r}")
    step("page loaded")

    # The server wants a key: the page shows the API's own words for the 401.
    wait.until(lambda d: by_id("error").get_attribute("hidden") is None)
    check("missing or invalid API key" in text_of("error"), f"error box: {text_of('error')!r}")
    check("invalid_api_key" in text_of("error"), "the error's code is shown")
    step("401 shown as the API words it")

    key = by_id("api-key")
    key.send_keys(KEY)
    key.send_keys(Keys.TAB)
    wait.until(lambda d: len(Select(by_id("model")).options) >= 2 and by_id("model").get_attribute("value"))

    # Before any model is picked, a colour photo goes to the photograph model (as the server does for a
    # request that names no model) and the page says why.
    check(by_id("model").get_attribute("value") == PRETRAINED, "the default model is selected first")
    by_id("file").send_keys(PHOTO)
    wait.until(lambda d: by_id("model").get_attribute("value") == PHOTO_MODEL)
    check("chosen for this colour image" in text_of("model-info"), text_of("model-info"))
    card_done("recon-card")
    check("converted_to_grayscale" not in text_of("recon-warnings"), text_of("recon-warnings"))
    step("a colour photo switched the page to " + PHOTO_MODEL)

    Select(by_id("model")).select_by_value(PRETRAINED)
    step("models listed after the key was given: " + ", ".join(o.get_attribute("value") for o in Select(by_id("model")).options))

    # A photo: reconstruction panels, the heatmap, warnings about the conversion.
    by_id("file").send_keys(PHOTO)
    card_done("recon-card")
    for panel in ("original", "masked", "reconstruction", "composite", "heatmap"):
        check(by_id("p-" + panel).get_attribute("src").startswith("data:image/png;base64,"), f"panel {panel}")
    first = text_of("recon-curl")
    check('"mask_ratio"' in first and "/v1/reconstructions" in first and "Authorization: Bearer $BOOTMAE_API_KEY" in first, f"curl: {first[:300]}")
    check("converted_to_grayscale" in text_of("recon-warnings") and "cropped" in text_of("recon-warnings"), text_of("recon-warnings"))
    step("photo reconstructed; warnings: " + ", ".join(
        w.split(":")[0] for w in (li.get_attribute("textContent") for li in driver.find_elements(By.CSS_SELECTOR, "#recon-warnings li"))))

    # Toggle a patch by mouse: the request now sends an explicit mask holding that change.
    buttons = driver.find_elements(By.CSS_SELECTOR, "#grid button")
    check(len(buttons) == 49, f"{len(buttons)} patch buttons for the 7×7 grid")
    was = buttons[24].get_attribute("aria-pressed") == "true"
    buttons[24].click()
    wait.until(lambda d: text_of("recon-curl") != first)
    card_done("recon-card")
    second = text_of("recon-curl")
    check('"mask":[' in second and '"mask_ratio"' not in second, f"curl after the toggle: {second[:300]}")
    wait.until(lambda d: (d.find_elements(By.CSS_SELECTOR, "#grid button")[24].get_attribute("aria-pressed") == "true") != was)
    check("explicit" in text_of("recon-stats"), text_of("recon-stats"))
    step(f"patch 24 toggled by click ({'masked' if not was else 'visible'} now); the request sends an explicit mask")

    # "Copy as curl" copies a command that makes the same call: run it and get the same mask back.
    command, echoed = run_copied("recon")
    check(echoed.get("masking") == "explicit" and echoed.get("mask") == driver.execute_script("return state.mask"),
          f"the copied curl command answers {json.dumps(echoed)[:200]!r}")
    step(f"'Copy as curl' ({len(command)} characters) run in a shell: same explicit mask of {len(echoed['mask'])} patches")

    # ...and by keyboard: focus the grid, arrow right, Space.
    buttons = driver.find_elements(By.CSS_SELECTOR, "#grid button")
    was = buttons[25].get_attribute("aria-pressed") == "true"
    buttons[24].send_keys(Keys.ARROW_RIGHT)
    check(driver.switch_to.active_element.get_attribute("data-patch") == "25", "arrow keys move along the grid")
    driver.switch_to.active_element.send_keys(Keys.SPACE)
    wait.until(lambda d: text_of("recon-curl") != second)
    card_done("recon-card")
    wait.until(lambda d: (d.find_elements(By.CSS_SELECTOR, "#grid button")[25].get_attribute("aria-pressed") == "true") != was)
    step("patch 25 toggled from the keyboard")

    # The embedding card: norm, dimension, model id.
    card_done("emb-card")
    facts = text_of("emb-facts")
    check("dimensions128" in facts and "model" + PRETRAINED in facts and "L2 norm" in facts, facts)
    step("embedding facts: " + facts[:120])

    # A Fashion-MNIST garment on the classifier: the labels as bars.
    Select(by_id("model")).select_by_value(CLASSIFIER)
    by_id("file").send_keys(GARMENT)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#cls-list li .label")
               and d.find_elements(By.CSS_SELECTOR, "#cls-list li .label")[0].get_attribute("textContent") == "Ankle boot")
    card_done("cls-card")
    labels = [li.get_attribute("textContent") for li in driver.find_elements(By.CSS_SELECTOR, "#cls-list li")]
    check(len(labels) == 5, labels)
    check(text_of("cls-warnings") == "", f"no warnings for a Fashion-MNIST image: {text_of('cls-warnings')}")
    check("has no pixel decoder" in text_of("recon-note"), text_of("recon-note"))
    step("labels: " + " | ".join(labels[:3]))

    # The Tokens card: hidden work for a model that is not a tokenizer, then a 7×7 tokenizer's grid.
    check(by_id("tok-card").get_attribute("hidden") is None, "the Tokens card shows when a tokenizer is served")
    check("is not a tokenizer" in text_of("tok-note") and TOK7 in text_of("tok-note"), text_of("tok-note"))
    Select(by_id("model")).select_by_value(TOK7)
    item, facts = check_code_grid(TOK7, 7, 28)
    check("is a tokenizer" in text_of("recon-note") and "Tokens below" in text_of("recon-note"), text_of("recon-note"))
    check("no-numbers" not in by_id("tok-grid").get_attribute("class"), "a 7×7 grid shows its numbers")
    step(f"{TOK7}: 7×7 grid shows the answer's codes; {facts[facts.index('codebook'):]}")

    # Keyboard: arrows move in the grid and say the code; Space marks every patch of that code.
    cells = driver.find_elements(By.CSS_SELECTOR, "#tok-grid button")
    cells[0].send_keys(Keys.ARROW_DOWN)
    check(driver.switch_to.active_element.get_attribute("data-patch") == "7", "arrow down moves one row")
    code = item["codes"][7]
    check(f"code {code} — {item['codes'].count(code)} of 49" in text_of("tok-readout"), text_of("tok-readout"))
    driver.switch_to.active_element.send_keys(Keys.SPACE)
    marked = [int(c.get_attribute("data-patch")) for c in driver.find_elements(By.CSS_SELECTOR, "#tok-grid button.marked")]
    check(marked == [i for i, c in enumerate(item["codes"]) if c == code], f"marked {marked}")
    pressed = driver.find_elements(By.CSS_SELECTOR, "#tok-legend button[aria-pressed=true]")
    check(len(pressed) == 1 and pressed[0].get_attribute("data-code") == str(code), "the legend marks the same code")
    driver.switch_to.active_element.send_keys(Keys.SPACE)
    check(not driver.find_elements(By.CSS_SELECTOR, "#tok-grid button.marked"), "Space again clears the mark")
    check(f"code {code} —" in text_of("tok-readout"), f"after the mark: {text_of('tok-readout')}")
    driver.execute_script("document.getElementById('tok-card').scrollIntoView()")
    time.sleep(0.3)
    with open(os.path.join(WORK, "tokens-7.png"), "wb") as f:
        f.write(driver.get_screenshot_as_png())
    step(f"keyboard: patch 7 has code {code}; Space marked its {len(marked)} patches and cleared them")

    # The view's two controls: the numbers go and come back; the colours' opacity follows the slider.
    by_id("tok-numbers").click()
    check("no-numbers" in by_id("tok-grid").get_attribute("class"), "unticking 'code numbers' hides them")
    by_id("tok-numbers").click()
    check("no-numbers" not in by_id("tok-grid").get_attribute("class"), "ticking it shows them again")
    by_id("tok-alpha").send_keys(Keys.HOME)
    alpha = driver.execute_script("return getComputedStyle(document.querySelector('#tok-grid button')).backgroundColor")
    check(alpha.endswith(", 0)") and text_of("tok-alpha-out") == "0%", f"colours at 0%: {alpha}, {text_of('tok-alpha-out')}")
    by_id("tok-alpha").send_keys(Keys.END)
    alpha = driver.execute_script("return getComputedStyle(document.querySelector('#tok-grid button')).backgroundColor")
    check(alpha.startswith("rgb("), f"colours at 100%: {alpha}")
    by_id("tok-alpha").send_keys(*([Keys.ARROW_LEFT] * 8))
    check(text_of("tok-alpha-out") == "60%", text_of("tok-alpha-out"))
    step("numbers toggled; colour opacity 0% → 100% → 60% from the keyboard")

    # A 16×16 grid (64 px RGB): same checks, the conversion's warnings, numbers still legible.
    Select(by_id("model")).select_by_value(TOK16)
    item, facts = check_code_grid(TOK16, 16, 64)
    check("upscaled" in text_of("tok-warnings") and "grayscale_to_rgb" in text_of("tok-warnings"), text_of("tok-warnings"))
    check("no-numbers" not in by_id("tok-grid").get_attribute("class"), "a 16×16 grid still shows its numbers at desktop width")
    cell = driver.execute_script("const b = document.querySelector('#tok-grid button'); const r = b.getBoundingClientRect();"
                                 "return [r.width, parseFloat(getComputedStyle(b).fontSize)]")
    check(cell[1] >= 8, f"16×16 cells {cell[0]:.0f} px with {cell[1]:.1f} px numbers")
    driver.execute_script("document.getElementById('tok-card').scrollIntoView()")
    time.sleep(0.3)
    with open(os.path.join(WORK, "tokens-16.png"), "wb") as f:
        f.write(driver.get_screenshot_as_png())
    step(f"{TOK16}: 16×16 grid shows the answer's codes in {cell[0]:.0f}-px cells, {cell[1]:.1f}-px numbers; warnings: "
         + ", ".join(w["code"] for w in item["warnings"]))

    # A file the server cannot decode: the card fails and the error box says it in the API's words.
    by_id("file").send_keys(CORRUPT)
    wait.until(lambda d: by_id("tok-card").get_attribute("data-state") == "error")
    wait.until(lambda d: by_id("error").get_attribute("hidden") is None)
    check("invalid_image" in text_of("error"), f"error box: {text_of('error')!r}")
    step("a corrupt PNG: " + text_of("error")[:100])
    by_id("file").send_keys(GARMENT)
    card_done("tok-card")

    # Back to the pretrained model with the garment: the picture the README shows.
    Select(by_id("model")).select_by_value(PRETRAINED)
    card_done("recon-card")
    card_done("emb-card")
    driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.3)
    png = driver.get_screenshot_as_png()
    variance = screenshot_variance(png)
    check(variance > 100, f"desktop screenshot looks blank (luminance variance {variance:.1f})")
    with open(os.path.join(WORK, "desktop.png"), "wb") as f:
        f.write(png)
    if SHOT:
        with open(SHOT, "wb") as f:
            f.write(png)
    step(f"desktop screenshot: {len(png)} bytes, luminance variance {variance:.0f}" + (f", saved to {SHOT}" if SHOT else ""))

    # Phone width: nothing wider than the screen, the panels still side by side in two columns.
    driver.set_window_size(390, 844)
    time.sleep(0.5)
    width = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    check(width[0] <= width[1], f"horizontal scrolling at phone width: content {width[0]} px in a {width[1]} px window")
    panel = driver.execute_script("const r = document.getElementById('p-heatmap').getBoundingClientRect(); return [r.left, r.right, r.width]")
    check(panel[0] >= 0 and panel[1] <= width[1] and panel[2] >= 100, f"heatmap panel at phone width: {panel}")
    png = driver.get_screenshot_as_png()
    variance = screenshot_variance(png)
    check(variance > 100, f"phone screenshot looks blank (luminance variance {variance:.1f})")
    with open(os.path.join(WORK, "phone.png"), "wb") as f:
        f.write(png)

    # The Tokens card at phone width: the code grid across the screen, the two images under it.
    Select(by_id("model")).select_by_value(TOK16)
    check_code_grid(TOK16, 16, 64)
    width = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    check(width[0] <= width[1], f"horizontal scrolling at phone width with the tokens: {width}")
    boxes = driver.execute_script("return ['tok-grid', 't-original', 't-decoded'].map((i) => {"
                                  "const r = document.getElementById(i).getBoundingClientRect(); return [r.left, r.right, r.width]; })")
    check(all(b[0] >= 0 and b[1] <= width[1] for b in boxes) and boxes[0][2] >= 250, f"token panels at phone width: {boxes}")
    legible = "no-numbers" not in by_id("tok-grid").get_attribute("class")
    driver.execute_script("document.getElementById('tok-card').scrollIntoView()")
    time.sleep(0.3)
    with open(os.path.join(WORK, "phone-tokens.png"), "wb") as f:
        f.write(driver.get_screenshot_as_png())
    step(f"tokens at phone width: grid {boxes[0][2]:.0f} px wide, numbers {'shown' if legible else 'hidden (cells too small)'}")
    if os.environ.get("BROWSER_CHECK_KEEP"):
        import shutil
        for name in ("desktop.png", "phone.png", "tokens-7.png", "tokens-16.png", "phone-tokens.png"):
            shutil.copy(os.path.join(WORK, name), os.path.join(os.environ["BROWSER_CHECK_KEEP"], name))
    step(f"phone width {width[1]} px: no horizontal scroll, panels {panel[2]:.0f} px wide, screenshot variance {variance:.0f}")
finally:
    driver.quit()
