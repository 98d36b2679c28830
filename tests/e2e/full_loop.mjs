// Drives the built page in headless Chromium for tests/e2e/test_full_loop.py, which starts the proxy
// and the fakes and checks what they received. Prints one JSON line of what the page showed.
//
// SCENARIO:
// - full-loop (default): "React to pictures" off, a photo picked and a picture dropped off target, then the
//   person speaks (the fake "hears" SAID) and the answer comes back on screen and spoken.
// - react: a picture shared mid-call, nobody speaking: the page's own message starts the turn and the answer
//   comes on screen; measured from the upload's 201 to the answer's words on screen.
// - remove-end-start: two pictures at once (one reaction); the four screenshots mid-call; End → Start keeps them
//   and the new conversation's first turn carries them; then one removed before a spoken turn.
// - black-hole: the fake goes silent with the socket open; the page must report it and reconnect, the
//   transcript kept and the picture sent again (a spoken turn in the new conversation).
// - mic-refused: Chromium without the fake permission prompt, so the microphone is refused.
//
// Env: PAGE_URL, FAKE_URL (the fake ElevenLabs: /_fake/turn, /_fake/conversation, /_fake/black-hole),
// IMAGE_PATH, SECOND_IMAGE_PATH, SAID (what the person says), SAID_AFTER_REMOVAL, EXPECT_ANSWER, ARTIFACTS_DIR,
// SCREENSHOTS ("1": the 1280x800 and 390x844, light and dark, screenshots), SECRETS (comma-separated, must
// never reach the page), CHROMIUM (default /usr/bin/chromium), FRONTEND_DIR (where playwright-core is installed).
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const env = process.env;
const require = createRequire(path.join(env.FRONTEND_DIR, "package.json"));
const { chromium } = require("playwright-core");

const STEP_MS = 20_000;
const PHONE = { width: 390, height: 844 };
const SCREENSHOT_SIZES = [{ width: 1280, height: 800 }, PHONE];
const LIVE = '[data-status="speaking"], [data-status="listening"]';
const secrets = (env.SECRETS ?? "").split(",").filter(Boolean);
const leaks = [];
const consoleLines = [];
const steps = [];

function step(name) {
  steps.push(`${new Date().toISOString()} ${name}`);
}

const scenario = env.SCENARIO ?? "full-loop";
const result = { scenario, steps };
const browser = await chromium.launch({
  executablePath: env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    // the fake prompt says yes; without it headless Chromium refuses the microphone like a person would
    ...(scenario === "mic-refused" ? ["--deny-permission-prompts"] : ["--use-fake-ui-for-media-stream"]),
  ],
});

// ---- the fake ElevenLabs' control routes ----

async function fake(route, init) {
  const response = await fetch(env.FAKE_URL + route, init);
  const body = await response.json();
  if (!response.ok) throw new Error(`the fake answered ${route} with ${response.status}: ${JSON.stringify(body)}`);
  return body;
}

/** The person says `text`: the fake "hears" it and runs the turn (it answers once the agent has spoken). */
async function say(text) {
  const turn = await fake("/_fake/turn", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text }),
  });
  step(`the fake heard "${text}"`);
  return turn;
}

async function until(check, what, timeoutMs = STEP_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// ---- what the page shows ----

const transcript = (page) => page.locator(".turn").evaluateAll((turns) =>
  turns.map((t) => ({ role: t.dataset.role, text: t.querySelector(".turn-text")?.textContent })));

const thumbnails = (page) => page.locator(".thumbnail").evaluateAll((items) => items.map((item) => ({
  name: item.querySelector("img")?.alt ?? item.querySelector("[role=img]")?.getAttribute("aria-label"),
  state: item.dataset.state,
  seen: item.dataset.seen,
})));

const pictureCount = (page) => page.getByTestId("dropzone").locator(".pictures-count").textContent();

const thumbnail = (page, selector = "") => page.getByRole("list", { name: "Shared pictures" })
  .locator(`.thumbnail${selector}`);

/** The agent's answer is on screen `count` times (the same words answer every turn). */
async function answers(page, count) {
  await page.locator(".turn[data-role='agent']", { hasText: env.EXPECT_ANSWER }).nth(count - 1).waitFor();
}

/** Connected and the first message heard: the agent's turn shown, then listening. */
async function live(page) {
  await page.locator(LIVE).waitFor();
  step("connected");
  await page.locator('.turn[data-role="agent"]').first().waitFor();
  await page.locator('[data-status="listening"]').waitFor();
  step("first message heard, listening");
}

async function start(page) {
  await page.getByRole("button", { name: "Start conversation" }).click();
}

async function end(page) {
  await page.getByRole("button", { name: "End conversation" }).click();
  await page.getByRole("status").getByText("Not connected").waitFor();
  step("disconnected");
}

/** Epoch milliseconds (the page's clock) at which an element matching `selector` first shows `text`. */
async function watchText(page, key, selector, text) {
  await page.evaluate(([key, selector, text]) => {
    const seen = (window.__glimpseSeen ??= {});
    const check = () => {
      if (seen[key] || ![...document.querySelectorAll(selector)].some((e) => e.textContent.includes(text))) return;
      seen[key] = performance.timeOrigin + performance.now();
      observer.disconnect();
    };
    const observer = new MutationObserver(check);
    observer.observe(document.body, { subtree: true, childList: true, characterData: true });
    check();
  }, [key, selector, text]);
}

const watched = (page, key) => page.evaluate((key) => window.__glimpseSeen?.[key] ?? null, key);

/** Every change of the status indicator, with its epoch milliseconds. */
async function watchStatus(page) {
  await page.evaluate(() => {
    const changes = (window.__glimpseStatus = []);
    let last = null;
    const check = () => {
      const status = document.querySelector("[role=status]")?.dataset.status ?? null;
      if (status === last) return;
      last = status;
      changes.push({ status, at: performance.timeOrigin + performance.now() });
    };
    new MutationObserver(check).observe(document.body, {
      subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"],
    });
    check();
  });
}

/** The page's performance marks, as epoch milliseconds. */
const marks = (page) => page.evaluate(() => performance.getEntriesByType("mark")
  .map((mark) => ({ name: mark.name, at: performance.timeOrigin + mark.startTime })));

// ---- scenarios ----

async function micRefused(page) {
  await start(page);
  await page.getByRole("alert").waitFor();
  result.alert = await page.getByRole("alert").textContent();
  result.status = await page.getByRole("status").getAttribute("data-status");
  await screenshot(page, "mic-refused.png");
  await accessibility(page, "after the refusal");
}

async function fullLoop(page) {
  // The spoken turn alone carries the pictures: the page must not start one of its own for them.
  await page.getByRole("checkbox", { name: "React to pictures" }).uncheck();
  result.reactToPictures = await page.getByRole("checkbox", { name: "React to pictures" }).isChecked();
  await start(page);
  await live(page);

  await page.getByLabel("Choose pictures").setInputFiles(env.IMAGE_PATH);
  const uploaded = thumbnail(page, '[data-state="uploaded"]');
  await uploaded.first().waitFor();
  step("photo uploaded");
  // A second picture, dragged in and dropped off target (on the transcript): the page still takes it.
  await page.evaluate(async () => {
    const canvas = Object.assign(document.createElement("canvas"), { width: 400, height: 300 });
    const context = canvas.getContext("2d");
    context.fillStyle = "#1eb41e";
    context.fillRect(0, 0, 400, 300);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    const dataTransfer = new DataTransfer();
    dataTransfer.items.add(new File([blob], "green.png", { type: "image/png" }));
    const target = document.querySelector(".transcript");
    for (const type of ["dragenter", "dragover", "drop"]) {
      target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer }));
    }
  });
  await uploaded.nth(1).waitFor();
  step("dropped picture uploaded");

  result.turn = await say(env.SAID);
  await page.locator(".turn[data-role='user']", { hasText: env.SAID }).waitFor();
  await answers(page, 1);
  step("answer in the transcript");
  await page.locator('[data-status="speaking"]').waitFor();
  step("agent speaking");
  await screenshot(page, "full-loop.png");
  await accessibility(page, "mid-conversation");

  result.transcript = await transcript(page);
  result.thumbnailStates = (await thumbnails(page)).map((t) => t.state);
  result.horizontalOverflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await end(page);
}

async function react(page) {
  await start(page);
  await live(page);
  await watchText(page, "answer", ".turn[data-role='agent'] .turn-text", env.EXPECT_ANSWER);
  result.choseAt = Date.now();
  await page.getByLabel("Choose pictures").setInputFiles(env.IMAGE_PATH);
  await thumbnail(page, '[data-state="uploaded"]').waitFor();
  step("photo uploaded");
  // Nobody speaks: the page's own message has to start the turn.
  await answers(page, 1);
  step("answer on screen");
  await thumbnail(page, '[data-seen="true"]').waitFor();
  step("picture seen");

  const all = await marks(page);
  const shared = all.filter((m) => m.name === "glimpse:picture-shared");
  const words = all.filter((m) => m.name === "glimpse:agent-words" && shared.length && m.at >= shared[0].at);
  const onScreen = await watched(page, "answer");
  result.timing = {
    pictureSharedAt: shared[0]?.at ?? null, sharedMarks: shared.length,
    agentWordsAt: words[0]?.at ?? null, answerOnScreenAt: onScreen,
    uploadToAgentWordsMs: shared.length && words.length ? words[0].at - shared[0].at : null,
    uploadToScreenMs: shared.length && onScreen ? onScreen - shared[0].at : null,
  };
  await accessibility(page, "mid-call with a picture");
  result.transcript = await transcript(page);
  result.thumbnails = await thumbnails(page);
  result.pictureCount = await pictureCount(page);
  result.horizontalOverflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await end(page);
}

async function removeEndStart(page) {
  await start(page);
  await live(page);
  // Two pictures chosen together: one turn of the page's own for both, once both are up.
  await page.getByLabel("Choose pictures").setInputFiles([env.IMAGE_PATH, env.SECOND_IMAGE_PATH]);
  await answers(page, 1);
  await thumbnail(page, '[data-seen="true"]').nth(1).waitFor();
  step("both pictures answered and seen");
  result.firstConversation = { transcript: await transcript(page), thumbnails: await thumbnails(page) };
  await accessibility(page, "mid-call with pictures");
  if (env.SCREENSHOTS) await screenshots(page, "mid-call");

  await end(page);
  result.afterEnd = { thumbnails: await thumbnails(page), pictureCount: await pictureCount(page) };
  await screenshot(page, "after-end.png");

  await start(page);
  await live(page);
  await thumbnail(page, '[data-state="uploaded"]').nth(1).waitFor();
  step("both pictures uploaded to the new conversation");
  // Whatever the page does with pictures it shares again: a turn of its own, or nothing until the person speaks.
  await new Promise((resolve) => setTimeout(resolve, 600));
  const before = await fake("/_fake/conversation");
  result.secondConversationTurnsBeforeSpeaking = before.turns.length;
  if (before.turns.length === 0) await say(env.SAID);
  await answers(page, 1);
  await thumbnail(page, '[data-seen="true"]').nth(1).waitFor();
  step("the new conversation's first turn answered, both seen");
  result.secondConversation = { transcript: await transcript(page), thumbnails: await thumbnails(page) };

  const photoName = path.basename(env.IMAGE_PATH);
  await page.getByRole("button", { name: `Remove picture ${photoName}` }).click();
  await until(async () => (await page.locator(".thumbnail").count()) === 1, "the removed picture to go");
  await page.getByTestId("dropzone").getByText("1 of 8 pictures").waitFor();
  step("photo removed");
  result.afterRemoval = { thumbnails: await thumbnails(page), pictureCount: await pictureCount(page) };
  await say(env.SAID_AFTER_REMOVAL);
  await page.locator(".turn[data-role='user']", { hasText: env.SAID_AFTER_REMOVAL }).waitFor();
  await answers(page, 2);
  step("answered after the removal");
  result.transcript = await transcript(page);
  await end(page);
}

async function blackHole(page) {
  await start(page);
  await live(page);
  await page.getByLabel("Choose pictures").setInputFiles(env.IMAGE_PATH);
  await answers(page, 1);
  await thumbnail(page, '[data-seen="true"]').waitFor();
  step("picture answered");
  // The page watches liveness once the server has pinged twice: wait until the fake has had the pongs.
  await until(async () => (await fake("/_fake/conversation")).pongs >= 3, "three pongs");
  step("pinged and answered");
  await watchStatus(page);
  // The reconnect's session request is held while the page shows it is reconnecting (screenshot, axe).
  let release;
  const held = new Promise((resolve) => {
    release = resolve;
  });
  await page.route((url) => url.pathname === "/v1/session", async (route) => {
    await held;
    await route.continue();
  });

  const holed = await fake("/_fake/black-hole", { method: "POST" });
  result.blackHoledAt = holed.black_holed_at * 1000;
  step("black-holed");
  await page.locator('[data-status="reconnecting"], [data-status="lost"]').waitFor({ timeout: 25_000 });
  step("reported");
  result.reportedStatus = await page.getByRole("status").getAttribute("data-status");
  result.whileReconnecting = {
    statusText: await page.getByRole("status").textContent(),
    transcript: await transcript(page),
    thumbnails: await thumbnails(page),
  };
  await screenshot(page, "reconnecting-390x844-light.png");
  await accessibility(page, "reconnecting");
  result.releasedAt = Date.now();
  release();
  await page.locator(LIVE).waitFor();
  result.reconnectedAt = Date.now();
  step("reconnected");
  result.statusChanges = await page.evaluate(() => window.__glimpseStatus);
  await thumbnail(page, '[data-state="uploaded"]').waitFor();
  step("picture uploaded again");
  await page.locator('[data-status="listening"]').waitFor();
  await say(env.SAID);
  await page.locator(".turn[data-role='user']", { hasText: env.SAID }).waitFor();
  await answers(page, 2);
  step("answered in the new conversation");
  result.transcript = await transcript(page);
  result.thumbnails = await thumbnails(page);
  await end(page);
}

// ---- checks and pictures of the page ----

// axe-core's WCAG rules on the page as it is now; serious and critical findings fail the run.
async function accessibility(page, when) {
  // Evaluated through the DevTools protocol, which the page's Content-Security-Policy does not govern: a
  // script tag would be refused (inline scripts are not allowed), and the page's own CSP stays enforced.
  await page.evaluate(readFileSync(require.resolve("axe-core/axe.min.js"), "utf8"));
  const found = await page.evaluate(async () => {
    const report = await window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "best-practice"] });
    return report.violations.map((v) => ({
      id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")),
      why: v.nodes.map((n) => n.failureSummary).slice(0, 3),
    }));
  });
  result.axe_runs = [...(result.axe_runs ?? []), when];
  result.accessibility = [...(result.accessibility ?? []), ...found.map((v) => ({ when, ...v }))];
}

async function screenshot(page, name, options = {}) {
  mkdirSync(env.ARTIFACTS_DIR, { recursive: true });
  await page.screenshot({ path: path.join(env.ARTIFACTS_DIR, name), fullPage: true, ...options });
}

/** The page as it is now on a laptop and on a phone, light and dark: PNGs the size of the window (CSS pixels). */
async function screenshots(page, name) {
  result.screenshots = result.screenshots ?? [];
  for (const size of SCREENSHOT_SIZES) {
    await page.setViewportSize(size);
    for (const colorScheme of ["light", "dark"]) {
      await page.emulateMedia({ colorScheme });
      await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
      const file = `${name}-${size.width}x${size.height}-${colorScheme}.png`;
      await screenshot(page, file, { scale: "css", animations: "disabled" });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
      result.screenshots.push({ file, ...size, colorScheme, horizontalOverflow: overflow });
      if (colorScheme === "dark" && size === PHONE) await accessibility(page, `${name}, dark`);
    }
  }
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize(PHONE);
}

// No ElevenLabs agent and no LLM on the server (issue 20): the page offers typing, says the demo model answers, a
// picture is dropped anywhere on the page, a typed question goes to the proxy's own chat route, and the demo
// model's answer streams into the transcript.
async function typedDemo(page) {
  await page.getByText("Demo mode:").waitFor();
  step("demo mode said");
  await page.getByRole("checkbox", { name: "React to pictures" }).uncheck();  // one turn: the typed question
  await page.evaluate(async ([red, green, blue]) => {
    const canvas = Object.assign(document.createElement("canvas"), { width: 400, height: 300 });
    const context = canvas.getContext("2d");
    context.fillStyle = `rgb(${red}, ${green}, ${blue})`;
    context.fillRect(0, 0, 400, 300);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    const dataTransfer = new DataTransfer();
    dataTransfer.items.add(new File([blob], "colour.png", { type: "image/png" }));
    for (const type of ["dragenter", "dragover", "drop"]) {
      document.body.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer }));
    }
  }, JSON.parse(env.PICTURE_RGB));
  await thumbnail(page, '[data-state="uploaded"]').waitFor();
  step("picture uploaded");
  await page.getByRole("textbox", { name: "Message" }).fill(env.SAID);
  await page.getByRole("button", { name: "Send" }).click();
  step("question sent");
  await page.locator(".turn[data-role='agent']", { hasText: "demo model" }).waitFor();
  await page.locator(".turn[data-role='agent'][aria-busy='true']").waitFor({ state: "detached" });
  step("answer streamed");
  await accessibility(page, "typed answer");
  await screenshot(page, "typed-demo-390x844.png");
  result.transcript = await transcript(page);
  result.status = await page.getByRole("status").getAttribute("data-status");
}

const SCENARIOS = {
  "full-loop": fullLoop, react, "remove-end-start": removeEndStart, "black-hole": blackHole,
  "mic-refused": micRefused, "typed-demo": typedDemo,
};

let exitCode = 0;
try {
  const run = SCENARIOS[scenario];
  if (!run) throw new Error(`unknown SCENARIO ${scenario}`);
  // A phone-sized window: the page must work there.
  const context = await browser.newContext({ viewport: PHONE, deviceScaleFactor: 2, colorScheme: "light" });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("console", (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => consoleLines.push(`pageerror: ${error.message}`));
  page.on("response", async (response) => {
    if (!response.url().startsWith(env.PAGE_URL)) return;
    try {
      const body = await response.text();
      for (const secret of secrets) if (body.includes(secret)) leaks.push(response.url());
    } catch {
      // bodies of redirects and aborted requests are not readable; nothing to check there
    }
  });

  await page.goto(env.PAGE_URL);
  step("page loaded");
  // a server with voice offers Start; one without (typed-demo) offers the message box
  await (scenario === "typed-demo" ? page.getByRole("textbox", { name: "Message" })
    : page.getByRole("status").getByText("Not connected")).waitFor();
  await accessibility(page, "before connecting");
  await run(page);
  await context.close();
} catch (error) {
  exitCode = 1;
  result.error = String(error?.stack ?? error);
} finally {
  await browser.close();
}
result.leaks = leaks;
result.console = consoleLines;
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(exitCode);
