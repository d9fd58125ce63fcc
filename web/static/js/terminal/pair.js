// /terminal/pair: make this device's Ed25519 key pair (WebCrypto, the private key not extractable),
// keep it in IndexedDB, and register the public key with the one-time code (POST /v1/pairing).

import { put } from "./store.js";
import { base64 } from "./sign.js";

const messages = JSON.parse(document.getElementById("terminal-messages").textContent);
const form = document.getElementById("pair-form");
const status = document.getElementById("pair-status");

// Opened from the owner's QR code (/terminal/pair?code=…): the code is filled in, the name is next.
const given = new URLSearchParams(window.location.search).get("code");
if (given && !form.elements.code.value) {
  form.elements.code.value = given.slice(0, form.elements.code.maxLength);
  form.elements.name.focus();
}

function say(text, failed = false) {
  status.textContent = text;
  status.classList.toggle("failed", failed);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  say(messages.working);
  try {
    let keys;
    try {
      keys = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
    } catch {
      say(messages.unsupported, true);
      return;
    }
    const raw = await crypto.subtle.exportKey("raw", keys.publicKey);
    const name = form.elements.name.value.trim();
    const body = { code: form.elements.code.value.trim(), public_key: base64(raw), ...(name ? { name } : {}) };
    let response;
    try {
      response = await fetch("/v1/pairing", {
        method: "POST", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json", Accept: "application/json", "Accept-Language": document.documentElement.lang },
      });
    } catch {
      say(messages.network, true);
      return;
    }
    const answer = await response.json();
    if (response.status !== 201) {
      say(`${answer.title}. ${answer.detail}`, true);
      form.elements.code.focus();
      return;
    }
    await put("device", "terminal", { keyId: answer.terminal_key_id, merchantId: answer.merchant_id, name,
      privateKey: keys.privateKey, publicKey: keys.publicKey });
    say(messages.paired);
    window.location.assign("/terminal");
  } finally {
    button.disabled = false;
  }
});
