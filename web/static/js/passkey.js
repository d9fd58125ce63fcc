// Passkeys (WebAuthn) on the sign-in page, the step after activation and the security page.
// Each `[data-passkey]` box holds a button: the server gives the ceremony's options (JSON, binary
// fields in base64url) and keeps its challenge for this browser; the device answers, and the answer
// goes back as JSON. Where the browser has no WebAuthn the buttons stay hidden and say why.

const decode = (text) => {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
};

const encode = (buffer) => {
  let binary = "";
  for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
};

const csrfToken = () => document.querySelector('input[name="_csrf_token"]')?.value ?? "";

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken() },
    body: JSON.stringify(body ?? {}),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(data.title || response.statusText), { problem: data });
  return data;
}

const descriptors = (list) => (list || []).map((item) => ({ ...item, id: decode(item.id) }));

function creationOptions(json) {
  return { ...json, challenge: decode(json.challenge), user: { ...json.user, id: decode(json.user.id) },
           excludeCredentials: descriptors(json.excludeCredentials) };
}

function requestOptions(json) {
  return { ...json, challenge: decode(json.challenge), allowCredentials: descriptors(json.allowCredentials) };
}

function answer(credential) {
  const r = credential.response;
  const response = { clientDataJSON: encode(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = encode(r.attestationObject);
    response.transports = r.getTransports ? r.getTransports() : [];
  } else {
    response.authenticatorData = encode(r.authenticatorData);
    response.signature = encode(r.signature);
    if (r.userHandle) response.userHandle = encode(r.userHandle);
  }
  return { id: credential.id, rawId: encode(credential.rawId), type: credential.type, response,
           clientExtensionResults: credential.getClientExtensionResults(),
           ...(credential.authenticatorAttachment ? { authenticatorAttachment: credential.authenticatorAttachment } : {}) };
}

function refusal(box, error) {
  if (error.problem && error.problem.title) return [error.problem.title, error.problem.detail].filter(Boolean).join(". ");
  if (error.name === "NotAllowedError" || error.name === "AbortError") return box.dataset.cancelled;
  return box.dataset.failed;
}

for (const box of document.querySelectorAll("[data-passkey]")) {
  const status = document.getElementById(box.dataset.status);
  if (!window.PublicKeyCredential || !navigator.credentials) {
    status.textContent = status.dataset.unsupported;
    continue;
  }
  box.hidden = false;
  const button = box.querySelector("button");
  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = box.dataset.working;
    try {
      const options = await post(box.dataset.options);
      const credential = box.dataset.passkey === "register"
        ? await navigator.credentials.create({ publicKey: creationOptions(options) })
        : await navigator.credentials.get({ publicKey: requestOptions(options) });
      const done = await post(box.dataset.verify, { credential: answer(credential), next: box.dataset.next });
      status.textContent = box.dataset.done;
      window.location.assign(done.next);
    } catch (error) {
      status.textContent = refusal(box, error);
      button.disabled = false;
      button.focus();
    }
  });
}
