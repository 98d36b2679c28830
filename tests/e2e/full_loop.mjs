// Drives the built page in headless Chromium for tests/e2e/test_full_loop.py, which starts the proxy
// and the fakes and checks what they received. Prints one JSON line of what the page showed.
//
// SCENARIO=full-loop (default) runs the whole conversation; SCENARIO=mic-refused starts Chromium
// without the fake permission prompt, so the microphone is refused, and checks what the page says.
//
// Env: PAGE_URL, IMAGE_PATH, TURN_URL (the fake ElevenLabs' "the person said this" endpoint),
// SAID (the sentence), EXPECT_ANSWER, ARTIFACTS_DIR, SECRETS (comma-separated, must never reach the page),
// CHROMIUM (default /usr/bin/chromium), FRONTEND_DIR (where playwright-core is installed).
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const env = process.env;
const require = createRequire(path.join(env.FRONTEND_DIR, "package.json"));
const { chromium } = require("playwright-core");

const STEP_MS = 20_000;
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
async function micRefused(page) {
  await page.getByRole("alert").waitFor();
  result.alert = await page.getByRole("alert").textContent();
  result.status = await page.getByRole("status").getAttribute("data-status");
  await screenshot(page, "mic-refused.png");
  await accessibility(page, "after the refusal");
}

async function fullLoop(page) {
  await page.locator('[data-status="speaking"], [data-status="listening"]').waitFor();
  step("connected");
  // The first message is spoken: the agent's turn shows up and the speaking indicator with it.
  await page.locator('.turn[data-role="agent"]').first().waitFor();
  await page.locator('[data-status="listening"]').waitFor();
  step("first message heard, listening");

  await page.getByLabel("Choose pictures").setInputFiles(env.IMAGE_PATH);
  const uploaded = page.getByRole("list", { name: "Shared pictures" }).locator('.thumbnail[data-state="uploaded"]');
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

  const turn = await fetch(env.TURN_URL, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ text: env.SAID }),
  });
  result.turn = await turn.json();
  if (!turn.ok) throw new Error(`the fake could not run the turn: ${JSON.stringify(result.turn)}`);
  step("turn done at the fake");

  await page.locator(".turn[data-role='user']", { hasText: env.SAID }).waitFor();
  await page.locator(".turn[data-role='agent']", { hasText: env.EXPECT_ANSWER }).waitFor();
  step("answer in the transcript");
  await page.locator('[data-status="speaking"]').waitFor();
  step("agent speaking");
  await screenshot(page, "full-loop.png");
  await accessibility(page, "mid-conversation");

  result.transcript = await page.locator(".turn").evaluateAll((turns) =>
    turns.map((t) => ({ role: t.dataset.role, text: t.querySelector(".turn-text")?.textContent })));
  result.thumbnailStates = await page.locator(".thumbnail").evaluateAll((items) => items.map((i) => i.dataset.state));
  result.horizontalOverflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);

  await page.getByRole("button", { name: "End conversation" }).click();
  await page.getByRole("status").getByText("Not connected").waitFor();
  step("disconnected");
}

// axe-core's WCAG rules on the page as it is now; serious and critical findings fail the run.
async function accessibility(page, when) {
  // Evaluated through the DevTools protocol, which the page's Content-Security-Policy does not govern: a
  // script tag would be refused (inline scripts are not allowed), and the page's own CSP stays enforced.
  await page.evaluate(readFileSync(require.resolve("axe-core/axe.min.js"), "utf8"));
  const found = await page.evaluate(async () => {
    const report = await window.axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "best-practice"] });
    return report.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")) }));
  });
  result.axe_runs = [...(result.axe_runs ?? []), when];
  result.accessibility = [...(result.accessibility ?? []), ...found.map((v) => ({ when, ...v }))];
}

async function screenshot(page, name) {
  mkdirSync(env.ARTIFACTS_DIR, { recursive: true });
  await page.screenshot({ path: path.join(env.ARTIFACTS_DIR, name), fullPage: true });
}

let exitCode = 0;
try {
  // A phone-sized window: the page must work there.
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
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
  await page.getByRole("status").getByText("Not connected").waitFor();
  await accessibility(page, "before connecting");
  await page.getByRole("button", { name: "Start conversation" }).click();
  await (scenario === "mic-refused" ? micRefused(page) : fullLoop(page));
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
