// Drives a headless Chromium that test/streaming-ingest.test.ts started (with about:blank and a DevTools port) over
// the Chrome DevTools Protocol, with Node's built-in WebSocket and no npm package:
//   node --experimental-websocket test/streaming-probe.mjs CDP_PORT URL OUT_DIR [--status]
// (Node 20 needs the flag; jest's sandbox has no WebSocket, hence a child process.) It opens URL, waits until the
// page's <video id="video"> plays, reads its currentTime twice 2 s apart, takes two screenshots 1 s apart
// (OUT_DIR/shot-1.png, shot-2.png), and prints one JSON line: the times, the video's state, every URL the page
// requested and every Content-Security-Policy violation it reported. With --status it only waits (up to 5 s) for the
// page's status line and prints that and the requests.
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const [cdpPort, url, outDir, mode] = process.argv.slice(2);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let page;
for (let i = 0; i < 100 && !page; i++) {
    try {
        const targets = await (await fetch(`http://127.0.0.1:${cdpPort}/json/list`)).json();
        page = targets.find((t) => t.type === "page");
    } catch {
        // Chromium is still starting.
    }
    if (!page) await sleep(100);
}
if (!page) throw new Error(`no page target on the DevTools port ${cdpPort}`);

const ws = new WebSocket(page.webSocketDebuggerUrl);
await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve, { once: true });
    ws.addEventListener("error", reject, { once: true });
});
let lastId = 0;
const pending = new Map();
const requests = [];
ws.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.id && pending.has(message.id)) {
        const { resolve, reject } = pending.get(message.id);
        pending.delete(message.id);
        if (message.error) reject(new Error(`${message.error.message} (${message.error.code})`));
        else resolve(message.result);
    } else if (message.method === "Network.requestWillBeSent") {
        requests.push(message.params.request.url);
    }
});
const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
        const id = ++lastId;
        pending.set(id, { resolve, reject });
        ws.send(JSON.stringify({ id, method, params }));
    });
const evaluate = async (expression) => (await send("Runtime.evaluate", { expression, returnByValue: true })).result.value;

await send("Network.enable");
await send("Page.enable");
await send("Emulation.setDeviceMetricsOverride", { width: 800, height: 600, deviceScaleFactor: 1, mobile: false });
// Injected by the DevTools protocol, not by the page: the page's CSP does not apply to it.
await send("Page.addScriptToEvaluateOnNewDocument", {
    source: "window.__violations = []; document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));",
});
const started = Date.now();
await send("Page.navigate", { url });

if (mode === "--status") {
    const status = () => evaluate("(() => { const s = document.getElementById('status'); return s && !s.hidden ? s.textContent : ''; })()");
    let text = "";
    while (!(text = await status()) && Date.now() - started < 5000) await sleep(100);
    console.log(JSON.stringify({ status: text, requests }));
    process.exit(0);
}

const currentTime = () => evaluate("document.getElementById('video') ? document.getElementById('video').currentTime : -1");
let t1 = -1;
while ((t1 = await currentTime()) < 0.2 && Date.now() - started < 20000) await sleep(200);
const playingAfterMs = Date.now() - started;
await sleep(2000);
const t2 = await currentTime();
const shot = async (name) => {
    const { data } = await send("Page.captureScreenshot", { format: "png" });
    writeFileSync(join(outDir, name), Buffer.from(data, "base64"));
};
await shot("shot-1.png");
await sleep(1000);
await shot("shot-2.png");
const state = await evaluate(`(() => {
    const v = document.getElementById('video');
    const s = document.getElementById('status');
    return { src: v.currentSrc, width: v.videoWidth, height: v.videoHeight, paused: v.paused,
             hlsJs: !!(window.Hls && window.Hls.isSupported()), status: s.hidden ? '' : s.textContent,
             violations: window.__violations };
})()`);
console.log(JSON.stringify({ t1, t2, playingAfterMs, ...state, requests }));
ws.close();
process.exit(0);
