// /terminal: the till. Every request goes to the existing /v1/pos routes, signed in this browser
// (sign.js) with the key pairing made (store.js). Each money action gets one Idempotency-Key when
// the clerk asks for it, reused on every retry of that same action: a double tap or a network retry
// never acts twice. Offline, awards and redemptions up to the city's offline floor are checked with
// the cached card keys and revocations (cards.js), queued in IndexedDB with the time of the sale,
// and uploaded through /v1/pos/offline when the network is back, each item's outcome shown.

import { all, device as storedDevice, forgetDevice, get, put, remove } from "./store.js";
import { idempotencyKey, signedFetch } from "./sign.js";
import { checkCard } from "./cards.js";

const messages = JSON.parse(document.getElementById("terminal-messages").textContent);
const floors = JSON.parse(document.getElementById("terminal-floors").textContent);
const lang = document.documentElement.lang || "fr";
const numbers = new Intl.NumberFormat(`${lang}-CA`);
const times = new Intl.DateTimeFormat(`${lang}-CA`, { hour: "2-digit", minute: "2-digit" });
const MAX_BATCH = 500;
const UNPAIRED = new Set(["unknown_key"]); // revoked or never registered: back to pairing

const $ = (id) => document.getElementById(id);
const say = (template, values = {}) => template.replace(/\{(\w+)\}/g, (_, name) => values[name]);
const points = (amount) => say(messages.points, { points: numbers.format(amount) });

const terminal = await storedDevice();
if (!terminal) window.location.replace("/terminal/pair");

let card = null; // the token read, and its city once known
let hold = null; // the open hold: { id, points }
let intent = null; // { signature, key } of the action asked for and not yet answered
let lastAction = null; // to try the same action again, with the same key

function keyFor(signature) {
  if (!intent || intent.signature !== signature) intent = { signature, key: idempotencyKey() };
  return intent.key;
}

function unpaired() {
  forgetDevice().finally(() => {
    showResult(false, messages.refused, "", messages.unpaired);
    setTimeout(() => window.location.assign("/terminal/pair"), 1500); // time to read it
  });
}

function showResult(ok, title, amount, detail, retry = false) {
  const box = $("till-result");
  box.hidden = false;
  box.classList.toggle("ok", ok);
  box.classList.toggle("failed", !ok);
  $("till-result-title").textContent = title;
  $("till-result-amount").textContent = amount;
  $("till-result-detail").textContent = detail;
  $("till-retry").hidden = !retry;
  box.focus();
}

function busy(on) {
  for (const button of document.querySelectorAll("#till button")) button.disabled = on;
}

// One request of the till. `offline(key)` queues it instead when the network is down (if it can be
// done offline); `done(body)` shows the answer. The buttons are disabled only while the request is
// out: today's list is refreshed after, in the background, so that the next sale (and Enter in its
// field, which a disabled submit button would swallow) is never held up by it.
async function act(signature, method, target, body, done, offline = null) {
  const key = keyFor(signature);
  lastAction = () => act(signature, method, target, body, done, offline);
  busy(true);
  try {
    if (!navigator.onLine) throw new TypeError("offline");
    const answer = await signedFetch(terminal, method, target, body, key);
    intent = null;
    if (UNPAIRED.has(answer.body?.code)) return unpaired();
    if (answer.status >= 400) return showResult(false, answer.body.title, "", answer.body.detail);
    await done(answer.body);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    if (offline && (await offline(key))) intent = null;
    else if (!offline) showResult(false, messages.refused, "", messages.network, true);
  } finally {
    busy(false);
    showNetwork();
  }
}

// --- offline: cached card checks and the queue -----------------------------------------------

async function refreshCardCache() {
  const keys = await signedFetch(terminal, "GET", "/v1/pos/cards/keys");
  const revoked = await signedFetch(terminal, "GET", "/v1/pos/cards/revocations?since_us=0");
  if (UNPAIRED.has(keys.body?.code)) return unpaired();
  if (keys.status === 200 && revoked.status === 200) {
    await put("cache", "cards", { keys: keys.body.keys, revoked: revoked.body.revoked.map((r) => r.id),
      city: revoked.body.city, at: Date.now() });
  }
}

async function checkedOffline() {
  const cache = await get("cache", "cards");
  const claims = card && cache ? await checkCard(card.token, cache, cache.city) : null;
  if (!claims) showResult(false, messages.refused, "", messages.card_refused_offline);
  return claims ? cache.city : null;
}

async function enqueue(key, item, amountText) {
  // Signed later, at upload, by the key that made it only (key_id): never by a later pairing's key,
  // which may be another merchant's.
  await put("queue", key, { idempotency_key: key, card: card.token, ...item, occurred_at_us: Date.now() * 1000,
    key_id: terminal.keyId });
  await showQueue(); // the list first, so that what the result announces is already listed
  showResult(true, messages.queued, amountText, "");
  return true;
}

async function showQueue() {
  const queued = await all("queue");
  $("queue").hidden = queued.length === 0 && $("queue-list").children.length === 0;
  for (const item of queued) {
    if (document.querySelector(`[data-queued="${item.idempotency_key}"]`)) continue;
    const line = document.createElement("li");
    line.dataset.queued = item.idempotency_key;
    line.dataset.outcome = "waiting";
    const what = item.points ? messages.what_redemption : messages.what_purchase_award;
    const amount = item.points ? points(item.points) : dollars(item.purchase_cents);
    line.textContent = `${what} · ${amount} · ${say(messages.sold_at, { time: times.format(item.occurred_at_us / 1000) })}`;
    if (item.key_id !== terminal.keyId) {
      line.dataset.outcome = "stranded";
      line.append(` — ${messages.stranded}`);
    }
    $("queue-list").append(line);
  }
  showNetwork();
}

async function upload() {
  const queued = (await all("queue")).filter((item) => item.key_id === terminal.keyId).slice(0, MAX_BATCH);
  if (!queued.length || !navigator.onLine) return;
  const items = queued.map(({ key_id, ...item }) => item);
  let answer;
  try {
    answer = await signedFetch(terminal, "POST", "/v1/pos/offline", { items });
  } catch {
    return; // still offline: the queue stays
  }
  if (UNPAIRED.has(answer.body?.code)) return unpaired();
  if (answer.status !== 200) return;
  for (const result of answer.body.results) {
    await remove("queue", result.idempotency_key);
    const line = document.querySelector(`[data-queued="${result.idempotency_key}"]`);
    if (!line) continue;
    line.dataset.outcome = result.status;
    const outcome = document.createElement("strong");
    outcome.textContent = ` — ${messages[`outcome_${result.status}`]}${result.detail ? ` (${result.detail})` : ""}`;
    line.append(outcome);
  }
  await showQueue();
  await showToday();
}

async function showNetwork() {
  const waiting = (await all("queue")).length;
  $("till-network").textContent = [navigator.onLine ? messages.online : messages.offline,
    waiting ? say(messages.queued_count, { count: numbers.format(waiting) }) : ""].join(" ").trim();
  $("till-network").classList.toggle("offline", !navigator.onLine);
}

// --- the card ------------------------------------------------------------------------------

async function readCard(token) {
  card = { token };
  hold = null;
  $("hold-panel").hidden = true;
  await act(`identify:${token}`, "POST", "/v1/pos/identify", { card: token }, (identity) => {
    card.city = identity.city;
    $("card-info").textContent = say(messages.card, { points: numbers.format(identity.available_points) });
  }, async () => {
    intent = null;
    const city = await checkedOffline();
    $("card-info").textContent = city ? messages.card_offline : messages.card_refused_offline;
    if (city) card.city = city;
    return true;
  });
}

$("card-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("card-code").value.trim();
  if (token) readCard(token);
});

function startCamera() {
  if (!("BarcodeDetector" in window) || !navigator.mediaDevices) return;
  const button = $("card-camera");
  button.hidden = false;
  button.addEventListener("click", async () => {
    const video = $("card-video");
    const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    const scan = async () => {
      const found = await detector.detect(video).catch(() => []);
      if (!found.length) return requestAnimationFrame(scan);
      stream.getTracks().forEach((track) => track.stop());
      video.hidden = true;
      $("card-code").value = found[0].rawValue;
      readCard(found[0].rawValue);
    };
    requestAnimationFrame(scan);
  });
}

function needCard() {
  if (card) return true;
  showResult(false, messages.refused, "", messages.no_card);
  $("card-code").focus();
  return false;
}

// --- award, hold, capture, void, refund ---------------------------------------------------------

function cents(text) {
  const match = /^(\d{1,7})(?:[.,](\d{1,2}))?$/.exec(text.trim());
  return match ? Number(match[1]) * 100 + Number((match[2] || "").padEnd(2, "0")) : null;
}

function dollars(amount) {
  return new Intl.NumberFormat(`${lang}-CA`, { style: "currency", currency: "CAD" }).format(amount / 100);
}

function wholePoints(text) {
  return /^\d{1,9}$/.test(text.trim()) && Number(text) > 0 ? Number(text) : null;
}

$("award-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const amount = cents($("award-amount").value);
  if (amount === null || amount === 0) return showResult(false, messages.refused, "", messages.bad_amount);
  if (!needCard()) return;
  const body = { card: card.token, purchase_cents: amount };
  act(`award:${card.token}:${amount}`, "POST", "/v1/pos/awards", body, async (award) => {
    showResult(true, messages.awarded, points(award.points), dollars(amount));
    $("award-amount").value = "";
    showToday();
  }, async (key) => (await checkedOffline()) && enqueue(key, { purchase_cents: amount }, dollars(amount)));
});

$("hold-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const wanted = wholePoints($("hold-points").value);
  if (wanted === null) return showResult(false, messages.refused, "", messages.bad_points);
  if (!needCard()) return;
  act(`hold:${card.token}:${wanted}`, "POST", "/v1/pos/holds", { card: card.token, points: wanted }, (held) => {
    hold = { id: held.hold_id, points: held.points };
    $("hold-panel").hidden = false;
    $("hold-info").textContent = say(messages.hold_info, { points: numbers.format(held.points) });
    $("capture-points").value = String(held.points);
    showResult(true, messages.held, points(held.points), "");
  }, async (key) => {
    // Offline there is no hold: the payment is one redemption, at most the city's offline floor.
    const city = await checkedOffline();
    if (!city) return true;
    if (wanted > (floors[city] ?? 0)) {
      showResult(false, messages.refused, "", say(messages.over_floor, { points: numbers.format(floors[city] ?? 0) }));
      return true;
    }
    return enqueue(key, { points: wanted }, points(wanted));
  });
});

$("capture-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const taken = wholePoints($("capture-points").value);
  if (!hold) return;
  if (taken === null) return showResult(false, messages.refused, "", messages.bad_points);
  act(`capture:${hold.id}`, "POST", `/v1/pos/holds/${hold.id}/capture`, { points: taken }, async (captured) => {
    hold = null;
    $("hold-panel").hidden = true;
    showResult(true, messages.captured, points(captured.points), "");
    showToday();
  });
});

$("hold-void").addEventListener("click", () => {
  if (!hold) return;
  act(`void:${hold.id}`, "POST", `/v1/pos/holds/${hold.id}/void`, undefined, (voided) => {
    hold = null;
    $("hold-panel").hidden = true;
    showResult(true, messages.voided, points(voided.points), "");
  });
});

$("till-retry").addEventListener("click", () => lastAction && lastAction());

// --- today's sales (the terminal's statement) ---------------------------------------------------

const REFUNDABLE = new Set(["purchase_award", "redemption"]);

async function showToday() {
  if (!navigator.onLine) return;
  const midnight = new Date();
  midnight.setHours(0, 0, 0, 0);
  let answer;
  try {
    answer = await signedFetch(terminal, "GET", `/v1/pos/statement?since_us=${midnight.getTime() * 1000}&limit=50`);
  } catch {
    return;
  }
  if (UNPAIRED.has(answer.body?.code)) return unpaired();
  if (answer.status !== 200) return;
  const list = $("today-list");
  list.replaceChildren();
  const refunded = new Set(answer.body.entries.filter((line) => line.ref).map((line) => line.ref));
  for (const line of answer.body.entries) {
    const item = document.createElement("li");
    item.dataset.what = line.what;
    const sold = line.occurred_at_us ? ` · ${say(messages.sold_at, { time: times.format(line.occurred_at_us / 1000) })}` : "";
    const text = document.createElement("span");
    text.textContent = `${times.format(line.time_us / 1000)} · ${messages[`what_${line.what}`] ?? messages.what_other} · ${points(line.amount)}${sold}`;
    item.append(text);
    if (REFUNDABLE.has(line.what) && !refunded.has(line.transfer_id)) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary";
      button.textContent = messages.refund;
      button.setAttribute("aria-label", `${messages.refund}: ${text.textContent}`);
      button.addEventListener("click", () => act(`refund:${line.transfer_id}`, "POST", "/v1/pos/refunds",
        { transfer_id: line.transfer_id }, async (refund) => {
          showResult(true, messages.refunded, points(refund.points), "");
          showToday();
        }));
      item.append(" ", button);
    }
    list.append(item);
  }
  if (!answer.body.entries.length) list.append(Object.assign(document.createElement("li"), { textContent: messages.none_today }));
}

$("today-refresh").addEventListener("click", showToday);

// --- start --------------------------------------------------------------------------------------

if (terminal) {
  $("till").hidden = false;
  $("till-loading").hidden = true;
  startCamera();
  window.addEventListener("online", async () => {
    await showNetwork();
    await upload();
  });
  window.addEventListener("offline", showNetwork);
  await showQueue();
  if (navigator.onLine) {
    try {
      await refreshCardCache();
      await upload();
      await showToday();
    } catch {
      // the network dropped while opening: the till works from the cache
    }
  }
  $("card-code").focus();
}
